"""Test support for the storage layer: a real qemu-storage-daemon, real qemu-io through NBD."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from ovsd.storage.daemon import DriverDaemon
from ovsd.storage.launcher import command_line, nbd_uri, wait_for_session
from ovsd.storage.qmp import QMPProtocol
from tests.support import free_port

MiB = 1024 * 1024


def short_dir() -> str:
    """A directory whose paths fit a unix socket (pytest's tmp_path can be too long)."""
    return tempfile.mkdtemp(prefix="ovsd-st-", dir="/tmp")


class Daemon:
    """One qemu-storage-daemon started by hand, with its QMP session and a DriverDaemon on it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "qmp.sock")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.session: QMPProtocol | None = None
        self.driver: DriverDaemon | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def start(self) -> DriverDaemon:
        argv = command_line(self.socket, "127.0.0.1", self.port)
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = await wait_for_session(reactor, self.socket, 10.0,
                                              on_event=lambda n, d, t: self.events.append((n, d)))
        self.driver = DriverDaemon(self.session, reactor)
        return self.driver

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def stop(self) -> None:
        if self.session is not None:
            self.session.close()
        self.kill(signal.SIGKILL)

    def uri(self, export: str) -> str:
        return nbd_uri("127.0.0.1", self.port, export)

    def image(self, name: str) -> str:
        return os.path.join(self.directory, name)


async def daemon_in(directory: str) -> AsyncIterator[Daemon]:
    daemon = Daemon(directory)
    await daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def cleanup(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


async def qemu_io(uri: str, *commands: str, read_only: bool = False) -> tuple[int, str]:
    """Run qemu-io on an NBD URI; (exit code, its output). Off the reactor thread (a child process)."""
    args = ["-f", "raw"] + (["-r"] if read_only else [])
    for command in commands:
        args += ["-c", command]
    out, err, code = await getProcessOutputAndValue(shutil.which("qemu-io") or "qemu-io", [*args, uri],
                                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                                    reactor=reactor)
    return int(code), (out + err).decode("utf-8", "replace")


async def qemu_io_file(path: str, *commands: str) -> None:
    """qemu-io on a qcow2 file no daemon holds; fails the test on any error or pattern mismatch."""
    args = ["-f", "qcow2"]
    for command in commands:
        args += ["-c", command]
    out, err, code = await getProcessOutputAndValue(shutil.which("qemu-io") or "qemu-io", [*args, path],
                                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                                    reactor=reactor)
    assert code == 0 and b"Pattern verification failed" not in out, (out + err).decode()


async def assert_pattern(uri: str, pattern: int, offset: int, length: int) -> None:
    code, output = await qemu_io(uri, f"read -P {pattern:#x} {offset} {length}", read_only=True)
    assert code == 0 and "Pattern verification failed" not in output, output


async def write(uri: str, pattern: int, offset: int, length: int) -> None:
    # qemu-io flushes before it exits: what it wrote is acknowledged and durable in the image
    code, output = await qemu_io(uri, f"write -P {pattern:#x} {offset} {length}", "flush")
    assert code == 0 and "wrote" in output, output
