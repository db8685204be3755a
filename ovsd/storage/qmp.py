"""A QMP client on the Twisted reactor: how ovsd talks to a qemu-storage-daemon.

Why not ``qemu.qmp``: it is an asyncio library whose every call must run on an asyncio event loop.
ovsd runs Twisted's reactor (epoll, not the asyncio one), so using it would mean either an asyncio
loop in a thread (every command crossing threads, a second loop to stop cleanly) or installing the
asyncio reactor for the whole daemon (a process-wide choice for a single client). QMP is one JSON
object per line over a unix socket, so a small line protocol is less code than either, runs where the
rest of ovsd runs, and is not one more dependency.

What the protocol guarantees: the greeting is read and ``qmp_capabilities`` sent before a command is
accepted; every command carries an ``id`` and its reply is matched by that id (replies may arrive out
of order and events arrive between them); events go to a callback and to one-shot waiters, never to a
command; each command has a timeout; when the socket drops, every pending command fails with
:class:`QMPDisconnected`; an ``{"error": …}`` reply raises :class:`QMPError` with QEMU's class and desc.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUNIX
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

log = Logger()

#: called with every event: (event name, its data, its timestamp in seconds)
OnEvent = Callable[[str, dict[str, Any], float], None]

#: a reply to query-named-block-nodes with a thousand exports is a few MiB; a line longer than this is
#: not QMP (and would otherwise grow the buffer without bound)
MAX_LINE = 64 * 1024 * 1024

DEFAULT_TIMEOUT = 30.0


class QMPError(Exception):
    """QEMU refused a command: ``error_class`` and ``desc`` are QEMU's own words."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QMPDisconnected(ConnectionError):
    """The daemon's QMP socket is gone: nothing sent on it will be answered."""


class QMPTimeout(TimeoutError):
    """A command got no reply in its time."""


@dataclass
class _Pending:
    command: str
    result: defer.Deferred[Any]
    timer: IDelayedCall | None


class QMPProtocol(LineOnlyReceiver):
    """One QMP session. ``ready`` fires with the greeting once capabilities are negotiated."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, clock: IReactorTime, on_event: OnEvent | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.clock = clock
        self.on_event = on_event
        self.timeout = timeout
        self.ready: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.greeting: dict[str, Any] | None = None
        self.connected_ = False
        self.lost: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._event_waiters: list[tuple[str, Callable[[dict[str, Any]], bool], defer.Deferred[dict[str, Any]]]] = []

    # -- what callers use ------------------------------------------------------------------------

    def execute(self, command: str, arguments: dict[str, Any] | None = None,
                timeout: float | None = None) -> defer.Deferred[Any]:
        """Run one command; fires with its ``return`` value, or fails with QMPError/QMPTimeout/QMPDisconnected."""
        if self.lost is not None:
            return defer.fail(QMPDisconnected(f"{command}: {self.lost}"))
        if self.greeting is None and command != "qmp_capabilities":
            return defer.fail(QMPDisconnected(f"{command}: the QMP session is not negotiated"))
        request_id = f"ovsd-{next(self._ids)}"

        def cancel(_: defer.Deferred[Any]) -> None:
            self._forget(request_id)

        result: defer.Deferred[Any] = defer.Deferred(cancel)
        seconds = self.timeout if timeout is None else timeout
        timer = self.clock.callLater(seconds, self._timed_out, request_id, seconds) if seconds > 0 else None
        self._pending[request_id] = _Pending(command, result, timer)
        message: dict[str, Any] = {"execute": command, "id": request_id}
        if arguments:
            message["arguments"] = arguments
        # compact: QEMU 7.2's monitor reads its input a byte at a time, so every byte is paid for (a replay of
        # 1,000 vDisks sends three commands each)
        self.sendLine(json.dumps(message, separators=(",", ":")).encode())
        return result

    def expect_event(self, name: str, match: Callable[[dict[str, Any]], bool] = lambda _: True,
                     timeout: float | None = None) -> defer.Deferred[dict[str, Any]]:
        """Fires with the data of the next event ``name`` whose data ``match`` accepts.

        Register it before sending the command that causes the event: QEMU may send the event
        before that command's reply.
        """
        waiter: defer.Deferred[dict[str, Any]] = defer.Deferred()
        entry = (name, match, waiter)
        self._event_waiters.append(entry)

        def drop(result: object) -> object:
            if entry in self._event_waiters:
                self._event_waiters.remove(entry)
            return result

        waiter.addBoth(drop)
        if self.lost is not None:
            waiter.errback(QMPDisconnected(f"waiting for {name}: {self.lost}"))
            return waiter
        waiter.addTimeout(self.timeout if timeout is None else timeout, self.clock)
        return waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- the wire --------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected_ = True

    def lineReceived(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.warn("qmp: a line that is not JSON: {line}", line=line[:200].decode("utf-8", "replace"))
            return
        if not isinstance(message, dict):
            return
        if "QMP" in message:
            self._greeted(message["QMP"])
        elif "event" in message:
            self._event(message)
        elif "id" in message:
            self._reply(message)
        else:
            # only commands sent without an id (we never send one) or a parse error of ours answer so
            log.warn("qmp: an answer to no command: {message}", message=str(message)[:300])

    def lineLengthExceeded(self, line: bytes) -> None:
        log.error("qmp: a line of more than {limit} bytes; dropping the session", limit=self.MAX_LENGTH)
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost = f"the QMP socket was closed ({reason.getErrorMessage()})"
        pending, self._pending = self._pending, {}
        for request_id, entry in pending.items():
            if entry.timer is not None and entry.timer.active():
                entry.timer.cancel()
            entry.result.errback(QMPDisconnected(f"{entry.command} (id {request_id}): {self.lost}"))
        for _, _, waiter in list(self._event_waiters):
            if not waiter.called:
                waiter.errback(QMPDisconnected(f"waiting for an event: {self.lost}"))
        if not self.ready.called:
            self.ready.errback(QMPDisconnected(f"no QMP session: {self.lost}"))

    # -- inside --------------------------------------------------------------------------------------

    def _greeted(self, greeting: dict[str, Any]) -> None:
        if self.greeting is not None or self.ready.called:
            return

        def negotiated(_: object) -> None:
            self.greeting = greeting
            if not self.ready.called:
                self.ready.callback(greeting)

        def refused(failure: Failure) -> None:
            if not self.ready.called:
                self.ready.errback(failure)

        self.execute("qmp_capabilities").addCallbacks(negotiated, refused)

    def _reply(self, message: dict[str, Any]) -> None:
        request_id = str(message["id"])
        entry = self._pending.pop(request_id, None)
        if entry is None:
            # the answer to a command that timed out or was cancelled
            log.info("qmp: a late reply to {id} dropped", id=request_id)
            return
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {}
            entry.result.errback(QMPError(entry.command, str(error.get("class", "GenericError")),
                                          str(error.get("desc", message["error"]))))
        else:
            entry.result.callback(message.get("return"))

    def _event(self, message: dict[str, Any]) -> None:
        name = str(message["event"])
        data = message.get("data") or {}
        stamp = message.get("timestamp") or {}
        seconds = float(stamp.get("seconds", 0)) + float(stamp.get("microseconds", 0)) / 1e6
        for wanted, match, waiter in list(self._event_waiters):
            if wanted == name and not waiter.called and match(data):
                waiter.callback(data)
        if self.on_event is not None:
            try:
                self.on_event(name, data, seconds)
            except Exception:
                log.failure("qmp: the event callback failed on {event}", event=name)

    def _timed_out(self, request_id: str, seconds: float) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry.timer = None
            entry.result.errback(QMPTimeout(f"{entry.command} (id {request_id}): no reply in {seconds:g}s"))

    def _forget(self, request_id: str) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is not None and entry.timer is not None and entry.timer.active():
            entry.timer.cancel()


async def connect(reactor: IReactorUNIX, path: str, on_event: OnEvent | None = None,
                  timeout: float = DEFAULT_TIMEOUT, handshake_timeout: float = 5.0) -> QMPProtocol:
    """A negotiated QMP session on the unix socket ``path``; QMPDisconnected when none can be had in time."""
    assert IReactorTime.providedBy(reactor)
    clock: IReactorTime = reactor
    session = QMPProtocol(clock, on_event, timeout)
    endpoint = UNIXClientEndpoint(reactor, path, timeout=max(1, int(handshake_timeout)))
    try:
        await connectProtocol(endpoint, session)
    except Exception as e:
        raise QMPDisconnected(f"cannot connect to QMP at {path}: {e}") from None
    ready = session.ready
    ready.addTimeout(handshake_timeout, clock)
    try:
        await ready
    except defer.TimeoutError:
        session.close()
        raise QMPDisconnected(f"no QMP greeting on {path} in {handshake_timeout:g}s") from None
    return session
