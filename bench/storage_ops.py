"""Benchmark of the storage layer's vDisk operations on a real qemu-storage-daemon (no API, no store).

    .venv/bin/python bench/storage_ops.py        (from the repo root)

Starts one qemu-storage-daemon (QMP on a unix socket, NBD on 127.0.0.1) and drives it through
ovsd.storage (DriverDaemon), timing each call from the reactor:

    vdisk_create_ms   p50 of 20 vDisks of 64 MiB: qemu-img create + blockdev-add + block-export-add
                      (the export answers NBD when the call returns: the daemon's server already listens)
    snapshot_ms       p50 of 20 snapshots of a vDisk holding data (qemu-img create of the new top +
                      blockdev-add + blockdev-snapshot; the export stays up)
    clone_ms          a 4 GiB vDisk holding 512 MiB: an automatic snapshot + a clone on it, exported
                      (clone_only_ms: the clone from an existing snapshot); clone_new_space_kib = the
                      clone image's allocation
    rollback_ms       p50 of 10 rollbacks of that vDisk, the export's removal and re-creation included
    replay_…_s        a fresh daemon: connect + replay of 1,000 vDisk descriptions until all are exported
                      (the daemon's start itself and the agent's store reads are not in it), and its RSS

Prints each figure and a `budget: … -> PASS|FAIL` line per budget of issue 12; exits 1 on any FAIL.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from twisted.internet import defer, task  # noqa: E402

from ovsd.storage import images  # noqa: E402
from ovsd.storage.daemon import DriverDaemon  # noqa: E402
from ovsd.storage.launcher import command_line, nbd_uri, wait_for_session  # noqa: E402
from ovsd.storage.vdisk import VDisk  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
BUDGETS = {"vdisk_create_ms": 300.0, "snapshot_ms": 100.0, "clone_ms": 500.0, "rollback_ms": 500.0,
           "clone_new_space_kib": 4096.0,
           "replay_start_and_1000_exports_s": 5.0}


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return (time.perf_counter() - started) * 1000, result


def qemu_io(target: str, *commands: str, fmt: str = "raw") -> None:
    args = ["qemu-io", "-f", fmt]
    for command in commands:
        args += ["-c", command]
    done = subprocess.run([*args, target], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or "Pattern verification failed" in done.stdout:
        raise RuntimeError(f"qemu-io {commands}: {done.stdout}{done.stderr}")


async def run(reactor: Any, directory: str) -> dict[str, float]:
    port = 20000 + os.getpid() % 20000
    socket = os.path.join(directory, "qmp.sock")
    process = subprocess.Popen(command_line(socket, "127.0.0.1", port), stdout=subprocess.DEVNULL)
    figures: dict[str, float] = {}
    try:
        session = await wait_for_session(reactor, socket, 10.0)
        driver = DriverDaemon(session, reactor)

        def path(name: str) -> str:
            return os.path.join(directory, f"{name}.qcow2")

        creates = []
        for i in range(20):
            ms, _ = await timed(lambda i=i: driver.create(VDisk(guid=f"c{i}", image=path(f"c{i}"), size=64 * MiB)))
            creates.append(ms)
        qemu_io(nbd_uri("127.0.0.1", port, "c19"), "write -P 0x01 0 1M", "read -P 0x01 0 1M")
        figures["vdisk_create_ms"] = statistics.median(creates)

        # the big disk: 512 MiB written into the image before it is served (faster than through NBD)
        big = path("big")
        await images.create(reactor, big, 4 * GiB)
        qemu_io(big, "write -P 0x5a 0 512M", fmt="qcow2")
        await driver.add(VDisk(guid="big", image=big, size=4 * GiB))

        snapshots = []
        for i in range(20):
            qemu_io(nbd_uri("127.0.0.1", port, "big"), f"write -P 0x{i + 16:x} {i}M 1M")
            ms, _ = await timed(lambda: driver.snapshot("big"))
            snapshots.append(ms)
        figures["snapshot_ms"] = statistics.median(snapshots)

        async def auto_clone() -> VDisk:
            _, snapshot = await driver.snapshot("big")
            return await driver.clone(VDisk(guid="clone", image=path("clone"), size=0), snapshot)

        figures["clone_ms"], clone = await timed(auto_clone)
        qemu_io(nbd_uri("127.0.0.1", port, "clone"), "read -P 0x5a 100M 1M")
        figures["clone_new_space_kib"] = (await images.info(reactor, clone.image)).actual_size / 1024
        _, snapshot = await driver.snapshot("big")
        figures["clone_only_ms"], _ = await timed(
            lambda: driver.clone(VDisk(guid="clone2", image=path("clone2"), size=0), snapshot))

        rollbacks = []
        for _ in range(10):
            qemu_io(nbd_uri("127.0.0.1", port, "big"), "write -P 0xee 200M 1M")
            ms, _ = await timed(lambda: driver.rollback("big", snapshot))
            rollbacks.append(ms)
        qemu_io(nbd_uri("127.0.0.1", port, "big"), "read -P 0x5a 200M 1M")
        figures["rollback_ms"] = statistics.median(rollbacks)
        figures["chain_length"] = len(driver.served["big"].chain)
        session.close()
    finally:
        process.kill()
        process.wait()
    figures.update(await replay(reactor, directory))
    return figures


async def replay(reactor: Any, directory: str, count: int = 1000) -> dict[str, float]:
    """A fresh daemon given 1,000 vDisk descriptions: time until every export is there, and its RSS."""
    first = os.path.join(directory, "r0.qcow2")
    await images.create(reactor, first, 64 * MiB)
    vdisks = [VDisk(guid=f"r{i}", image=os.path.join(directory, f"r{i}.qcow2"), size=64 * MiB) for i in range(count)]
    for vdisk in vdisks[1:]:
        shutil.copyfile(first, vdisk.image)
    port = 20000 + (os.getpid() + 1) % 20000
    socket = os.path.join(directory, "qmp2.sock")
    process = subprocess.Popen(command_line(socket, "127.0.0.1", port), stdout=subprocess.DEVNULL)
    try:
        started = time.perf_counter()
        session = await wait_for_session(reactor, socket, 10.0)
        driver = DriverDaemon(session, reactor)
        failures = await driver.replay(vdisks)
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"replay failed for {len(failures)} vDisks: {next(iter(failures.values()))}")
        exported = len(await driver.exports())
        qemu_io(nbd_uri("127.0.0.1", port, f"r{count - 1}"), "read -P 0 0 64k")
        with open(f"/proc/{process.pid}/status") as status:
            rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        session.close()
    finally:
        process.kill()
        process.wait()
    return {"replay_start_and_1000_exports_s": elapsed, "exports_after_replay": exported,
            "daemon_rss_mib_per_1000_exports": rss_kib / 1024 * 1000 / count}


def main() -> int:
    directory = tempfile.mkdtemp(prefix="ovsd-bench-", dir="/tmp")
    outcome: dict[str, Any] = {}

    async def go(reactor: Any) -> None:
        outcome.update(await run(reactor, directory))

    try:
        task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
    except SystemExit as e:
        if e.code:
            return int(e.code)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    status = 0
    for name, value in outcome.items():
        print(f"{name}={value:.{3 if value < 10 else 1}f}")
    for name, budget in BUDGETS.items():
        verdict = "PASS" if outcome.get(name, float("inf")) <= budget else "FAIL"
        status = status or (verdict == "FAIL")
        print(f"budget: {name} <= {budget:g} -> {verdict}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
