"""systemd notification: READY=1, WATCHDOG=1, STOPPING=1 as plain datagrams to NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger()


def send(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; False when not run under systemd (no NOTIFY_SOCKET)."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as e:
        log.warn("cannot notify systemd: {error}", error=str(e))
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half the watchdog timeout systemd asked for, or None without a watchdog."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


class NotifyService(Service):
    """Tells systemd we are ready once `ready` has completed, pings the watchdog, says when we stop."""

    name = "notify"

    def __init__(self, ready: Callable[[], Awaitable[None]], clock: object) -> None:
        self.ready = ready
        self.clock = clock
        self._watchdog: task.LoopingCall | None = None
        self._waiting: defer.Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self._waiting = defer.ensureDeferred(self._become_ready())
        self._waiting.addErrback(lambda f: None if f.check(defer.CancelledError) else log.failure("ready", f))

    async def _become_ready(self) -> None:
        await self.ready()
        send("READY=1\nSTATUS=serving")
        log.info("node ready")
        interval = watchdog_interval()
        if interval:
            # the looping call only runs when the reactor turns, so a stuck reactor misses the pings
            self._watchdog = task.LoopingCall(send, "WATCHDOG=1")
            self._watchdog.clock = self.clock  # type: ignore[assignment]
            self._watchdog.start(interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._waiting is not None and not self._waiting.called:
            self._waiting.cancel()
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        send("STOPPING=1")
