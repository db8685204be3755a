"""`ovsctl vpool` and `ovsctl vdisk` as an operator runs them against a real `twistd -n ovsd` node: a vPool
whose StorageDriver is a real qemu-storage-daemon, vDisks written and read through their NBD URI with qemu-io.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsd.cli import parse_size
from tests.storage_support import short_dir
from tests.support import TwistdNode, free_port

OVSCTL = Path(sys.executable).parent / "ovsctl"


@pytest.fixture(scope="module")
def node() -> Iterator[TwistdNode]:
    directory = Path(short_dir())  # the driver's QMP socket path must fit a unix socket
    n = TwistdNode(directory / "n", extra={"node": {"name": "node1"}})
    n.start()
    try:
        n.wait_ready()
        yield n
    finally:
        try:
            n.stop()
        finally:
            n.kill()
            shutil.rmtree(directory, ignore_errors=True)


def ovsctl(node: TwistdNode, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OVSD_", "OVSCTL_"))}
    done = subprocess.run([str(OVSCTL), "-c", str(node.config_path), *args], capture_output=True, text=True,
                          timeout=60, env=clean, stdin=subprocess.DEVNULL)
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def field(output: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.+)$", output, re.MULTILINE)
    assert match, (name, output)
    return match.group(1)


def qemu_io(uri: str, *commands: str, read_only: bool = False) -> subprocess.CompletedProcess[str]:
    args = [a for c in commands for a in ("-c", c)]
    return subprocess.run(["qemu-io", "-f", "raw", *(["-r"] if read_only else []), *args, uri],
                          capture_output=True, text=True, timeout=30)


def write(uri: str, pattern: int, length: str = "1M") -> None:
    # qemu-io flushes before it ends: what it wrote is in the image
    done = qemu_io(uri, f"write -P {pattern:#x} 0 {length}", "flush")
    assert done.returncode == 0 and "wrote" in done.stdout, (done.stdout, done.stderr)


def holds(uri: str, pattern: int, length: str = "1M") -> bool:
    done = qemu_io(uri, f"read -P {pattern:#x} 0 {length}", read_only=True)
    assert "read " in done.stdout or "Pattern verification failed" in done.stdout, (done.stdout, done.stderr)
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout


def rows(table: str) -> dict[str, list[str]]:
    """A table's rows by their first column."""
    return {line.split()[0]: line.split() for line in table.splitlines()[1:]}


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line an operator reads when ovsctl refuses (exit 1)."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 or all("%|" in line for line in lines[:-1]), done.stderr  # progress bars may precede
    return lines[-1]


def test_an_operator_adds_a_vpool_and_works_with_vdisks(node: TwistdNode) -> None:
    # a vPool whose NBD port is taken: the task fails, ovsctl says why in one line, nothing is left behind
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        failed = refused(ovsctl(node, "vpool", "add", "pool1", "--port", str(busy), ok=False))
    assert re.fullmatch(rf"ovsctl: task [0-9a-f-]{{36}} FAILURE: port {busy} on 127.0.0.1 is in use", failed), failed
    assert "pool1" not in ovsctl(node, "vpool", "list").stdout

    port = free_port()
    added = ovsctl(node, "vpool", "add", "pool1", "--port", str(port))
    assert added.stdout.startswith("vpool pool1 (LOCAL) running on node1\n"), added.stdout
    assert field(added.stdout, "nbd") == f"127.0.0.1:{port}"
    images = field(added.stdout, "images")
    assert images == str(node.data_dir.resolve() / "vpools" / "pool1" / "images") and os.path.isdir(images)
    assert "100%" in added.stderr and "SUCCESS" in added.stderr  # the task's progress bar
    pools = rows(ovsctl(node, "vpool", "list").stdout)
    assert pools["pool1"][1:3] == ["LOCAL", "RUNNING"] and f"node1:{port}" in pools["pool1"]

    created = ovsctl(node, "vdisk", "create", "disk1", "--vpool", "pool1", "--size", "64M")
    guid = field(created.stdout, "vdisk disk1")
    uri = field(created.stdout, "nbd_uri")
    assert uri == f"nbd://127.0.0.1:{port}/{guid}" and field(created.stdout, "size") == "64 MiB"
    assert os.path.exists(os.path.join(images, f"{guid}.qcow2"))
    write(uri, 0xA1)
    assert holds(uri, 0xA1)

    snapped = ovsctl(node, "vdisk", "snapshot", "disk1", "--name", "before")
    snapshot = field(snapped.stdout, "snapshot before of disk1")
    timestamp = field(snapped.stdout, "timestamp")
    write(uri, 0xB2)
    assert holds(uri, 0xB2) and not holds(uri, 0xA1)

    cloned = ovsctl(node, "vdisk", "clone", guid, "--name", "copy", "--snapshot", snapshot)
    copy_uri = field(cloned.stdout, "nbd_uri")
    assert copy_uri != uri and holds(copy_uri, 0xA1)  # the snapshot's bytes, not the later writes

    ovsctl(node, "vdisk", "rollback", "disk1", "--timestamp", timestamp)
    assert holds(uri, 0xA1)

    disks = rows(ovsctl(node, "vdisk", "list", "--vpool", "pool1").stdout)
    assert disks["disk1"][1] == "pool1" and disks["disk1"][-1] == guid and disks["disk1"][-2] == uri
    assert disks["copy"][-2] == copy_uri and "disk1" in disks["copy"]  # its parent

    # refusals, each one line with the API's reason and exit 1
    assert refused(ovsctl(node, "vdisk", "delete", "disk1", ok=False)) == (
        "ovsctl: 406 not_acceptable: vDisk disk1 has 1 clones or template children: it cannot be deleted")
    assert refused(ovsctl(node, "vdisk", "create", "disk1", "--vpool", "pool1", "--size", "1G", ok=False)) == (
        "ovsctl: 406 not_acceptable: A vDisk with name disk1 already exists in this vPool")
    assert refused(ovsctl(node, "vdisk", "create", "x", "--vpool", "nope", "--size", "1G", ok=False)) == (
        "ovsctl: 404 object_not_found: no vpools with GUID or name 'nope'")

    assert ovsctl(node, "vdisk", "delete", "copy").stdout.strip() == "vdisk copy deleted"
    assert ovsctl(node, "vdisk", "delete", guid).stdout.strip() == "vdisk disk1 deleted"
    assert not os.path.exists(os.path.join(images, f"{guid}.qcow2"))
    assert ovsctl(node, "vdisk", "list").stdout.splitlines()[1:] == []


def test_a_bad_size_is_refused_before_any_call(node: TwistdNode) -> None:
    done = ovsctl(node, "vdisk", "create", "d", "--vpool", "pool1", "--size", "10X", ok=False)
    assert done.returncode == 2 and "'10X' is not a size" in done.stderr


def test_sizes_are_binary_units_as_operators_write_them() -> None:
    assert [parse_size(s) for s in ("10G", "512m", "1.5T", "4096", "64MiB", "2 GB")] == [
        10 * 2**30, 512 * 2**20, 3 * 2**39, 4096, 64 * 2**20, 2 * 2**30]
    for bad in ("0", "10X", "-1G", "G"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
