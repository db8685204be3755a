"""The qemu-storage-daemon as a StorageDriver process: its command line and its readiness check.

:class:`StorageDaemonLauncher` fits the agent's launcher interface (``ovsd.agent.launcher``): it turns a
StorageDriver and its vPool into a ``LaunchSpec`` whose ``ready`` check connects to the daemon's QMP
socket, negotiates, asks ``query-version``, and then hands a :class:`DriverDaemon` to ``on_ready`` (the
agent replays the driver's vDisks there). The supervisor counts the driver RUNNING only when that has
returned, so a driver is never RUNNING with its vDisks missing.

The NBD server listens on the StorageDriver's ``storage_ip`` and ``port`` (one NBD server per daemon).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.internet import task, threads
from twisted.internet.interfaces import IReactorProcess

from ovsd.agent.launcher import LaunchError, LaunchSpec
from ovsd.storage import images, qmp
from ovsd.storage.daemon import DriverDaemon
from ovsd.storage.vdisk import ImageOptions

#: called once a (re)started daemon answers: (StorageDriver guid, the daemon) — replay its vDisks here
OnReady = Callable[[str, DriverDaemon], Awaitable[object]]

#: sockaddr_un.sun_path holds 108 bytes with its terminating NUL
MAX_SOCKET_PATH = 107


def _option(value: str) -> str:
    """A value inside a QEMU option string, where a comma is written twice."""
    return value.replace(",", ",,")


def command_line(qmp_socket: str, nbd_host: str, nbd_port: int | None = None, *,
                 nbd_socket: str | None = None, executable: str = "qemu-storage-daemon") -> list[str]:
    """The daemon's argv: QMP on a unix socket, the NBD server on host:port (or on a unix socket)."""
    if len(qmp_socket.encode()) > MAX_SOCKET_PATH:
        raise LaunchError(f"QMP socket path too long for a unix socket ({len(qmp_socket)} > {MAX_SOCKET_PATH}): "
                          f"{qmp_socket}")
    if nbd_socket is not None:
        nbd = f"addr.type=unix,addr.path={_option(nbd_socket)}"
    else:
        if nbd_port is None:
            raise LaunchError("the NBD server needs a port")
        nbd = f"addr.type=inet,addr.host={_option(nbd_host)},addr.port={int(nbd_port)}"
    return [executable,
            "--chardev", f"socket,id=qmp0,path={_option(qmp_socket)},server=on,wait=off",
            "--monitor", "chardev=qmp0",
            "--nbd-server", nbd]


def nbd_uri(host: str, port: int, export: str) -> str:
    """The URI a hypervisor (or qemu-io) attaches to."""
    address = f"[{host}]" if ":" in host else host
    return f"nbd://{address}:{port}/{export}"


async def wait_for_session(reactor: Any, path: str, timeout: float, on_event: qmp.OnEvent | None = None,
                           command_timeout: float = qmp.DEFAULT_TIMEOUT) -> qmp.QMPProtocol:
    """Connect to a daemon that may still be starting: retry in short steps until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await qmp.connect(reactor, path, on_event, timeout=command_timeout,
                                     handshake_timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        except qmp.QMPDisconnected:
            if time.monotonic() >= deadline:
                raise
            await task.deferLater(reactor, 0.02, lambda: None)


class StorageDaemonLauncher:
    """Launches a StorageDriver of a LOCAL or DISTRIBUTED vPool as a qemu-storage-daemon.

    ``run_dir`` holds one directory per StorageDriver (named by its guid) with its QMP socket; the
    agent creates it (:meth:`prepare`) before the driver is ensured.
    """

    def __init__(self, reactor: IReactorProcess, run_dir: str, on_ready: OnReady | None = None,
                 options: ImageOptions | None = None, connect_timeout: float = 10.0) -> None:
        self.reactor = reactor
        self.run_dir = run_dir
        self.on_ready = on_ready
        self.options = options
        self.connect_timeout = connect_timeout

    def directory(self, storagedriver_guid: str) -> str:
        return os.path.join(self.run_dir, storagedriver_guid)

    def qmp_socket(self, storagedriver_guid: str) -> str:
        return os.path.join(self.directory(storagedriver_guid), "qmp.sock")

    async def prepare(self, storagedriver_guid: str) -> None:
        """Create the driver's directory (in a thread: file work stays out of the reactor)."""
        reactor: Any = self.reactor
        path = self.directory(storagedriver_guid)
        await threads.deferToThreadPool(reactor, reactor.getThreadPool(), os.makedirs, path, 0o700, True)

    def launch_spec(self, storagedriver: Mapping[str, Any], vpool: Mapping[str, Any]) -> LaunchSpec:
        guid = str(storagedriver.get("guid") or "")
        host = storagedriver.get("storage_ip")
        port = storagedriver.get("port")
        for name, value in (("guid", guid), ("storage_ip", host), ("port", port)):
            if value is None or value == "":
                raise LaunchError(f"storagedriver {guid or '?'} has no {name}: the NBD server needs it")
        try:
            executable = images.tool_path("qemu-storage-daemon")
        except images.MissingTool as e:
            raise LaunchError(str(e)) from None
        socket = self.qmp_socket(guid)
        argv = command_line(socket, str(host), int(str(port)), executable=executable)

        async def ready() -> DriverDaemon:
            session = await wait_for_session(self.reactor, socket, self.connect_timeout)
            try:
                await session.execute("query-version")
                daemon = DriverDaemon(session, self.reactor, self.options)
                if self.on_ready is not None:
                    await self.on_ready(guid, daemon)
            except BaseException:
                session.close()
                raise
            return daemon

        return LaunchSpec(argv=argv, control_socket=socket, ready=ready)
