"""One connection to the store: commands packed by hiredis, replies matched to their commands in order.

This is the store's hot path (every API call runs one or more commands through it). txredisapi's command path
built each command in Python and took each reply through a queue, a decoding pass and two chained Deferreds:
on a cached object fetch that was as much CPU as the rest of the request (issue 3 measured the object fetch
at 0.30 of a bare endpoint before, 0.57 after). Here a command is one ``hiredis.pack_command`` and one write,
and a reply is one ``Reader.gets`` and one callback.

Why a reply can never reach the wrong caller (every path by which it could, and what closes it):

- Redis answers the commands of one connection in the order they were sent, exactly one reply each, as long
  as no command changes that rule. The ones that do (pub/sub, MONITOR, CLIENT REPLY, RESET, HELLO, SYNC…)
  are refused before anything is sent (``StoreCommandError``); we speak RESP2, so there are no push replies.
- A slot (the Deferred a reply goes to) is taken only after every command of the call has been packed, in
  the same step as the write. A command that cannot be encoded (a lone surrogate, a ``None``) fails alone,
  before it takes a slot or sends a byte.
- A caller that gives up (a cancelled Deferred) keeps its slot: its reply still arrives and is dropped there,
  so the replies behind it still line up.
- Anything unexpected inside the path (the write raising, a protocol error from the reader, a reply when no
  command waits, a bug of ours) drops the connection: every command in flight on it fails
  ``StoreUnavailable`` and nothing still buffered is delivered. No state survives that could misalign a later
  command: a new connection starts with an empty reader and no slots.
- Replies are decoded as UTF-8 with invalid bytes replaced (``errors="replace"``): ovsd only ever stores valid
  UTF-8 (the encoder refuses anything else), so only bytes written by someone else can be invalid, and such a
  value must not make the reply undeliverable (a decoding error would otherwise leave a slot unanswered).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.store.errors import (
    StoreCommandError,
    StoreError,
    StoreProtocolError,
    StoreReplyError,
    StoreUnavailable,
)

log = Logger()

# Commands after which a connection no longer answers one reply per command, in order.
_ONE_REPLY_RULE_BREAKERS = frozenset({
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "RESET",
    "HELLO", "SYNC", "PSYNC", "QUIT", "CLIENT",
})
# CLIENT is refused only for the sub-commands that change the reply stream (CLIENT PAUSE, LIST… are fine).
_CLIENT_BREAKERS = frozenset({"REPLY", "TRACKING"})


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """The wire bytes of ``commands``; ``StoreCommandError`` (nothing sent) for one that cannot be sent."""
    parts = []
    for command in commands:
        if not command:
            raise StoreCommandError("an empty command")
        name = command[0]
        if isinstance(name, str) and name.upper() in _ONE_REPLY_RULE_BREAKERS:
            sub = command[1] if len(command) > 1 else ""
            if name.upper() != "CLIENT" or (isinstance(sub, str) and sub.upper() in _CLIENT_BREAKERS):
                raise StoreCommandError(f"{name} breaks the one-reply-per-command rule of a shared connection")
        try:
            parts.append(hiredis.pack_command(tuple(command)))
        except UnicodeEncodeError as e:
            raise StoreCommandError(f"{name}: an argument is not valid Unicode ({e.reason})") from None
        except (TypeError, ValueError) as e:
            raise StoreCommandError(f"{name}: {e}") from None
    return b"".join(parts)


class StoreProtocol(Protocol):
    """A store connection: ``send`` commands, each answered by its own Deferred; ``ready`` after the handshake.

    The handshake (AUTH, SELECT, then a PING, so that ready means the server answers) goes through the same
    path as every other command.
    """

    def __init__(
        self,
        clock: IReactorTime,
        handshake: Sequence[Sequence[Any]] = (),
        on_ready: Callable[[StoreProtocol], None] | None = None,
        on_lost: Callable[[StoreProtocol], None] | None = None,
    ) -> None:
        self.clock = clock
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._handshake = [*handshake, ("PING",)]
        self._reader = hiredis.Reader(
            protocolError=StoreProtocolError, replyError=StoreReplyError, encoding="utf-8", errors="replace",
        )
        self._slots: deque[defer.Deferred[Any]] = deque()
        self._lost = True
        self.ready: defer.Deferred[StoreProtocol] = defer.Deferred()
        # when the server last showed progress while commands were outstanding (the pool's watchdog reads it)
        self._waiting_since = 0.0

    # --- connection ------------------------------------------------------------------------------------
    def connectionMade(self) -> None:
        self._lost = False
        try:
            answers = self.send(self._handshake)
        except StoreError as e:
            self._broken(e)
            return
        done = defer.gatherResults(answers, consumeErrors=True)
        done.addCallbacks(self._handshake_done, self._handshake_failed)

    def _handshake_done(self, _: object) -> None:
        if self._lost or self.ready.called:
            return
        if self._on_ready is not None:
            self._on_ready(self)
        self.ready.callback(self)

    def _handshake_failed(self, failure: Failure) -> None:
        error = failure.value.subFailure.value if isinstance(failure.value, defer.FirstError) else failure.value
        if not self.ready.called:
            self.ready.errback(Failure(StoreUnavailable(f"the store refused the connection: {error}")))
        self.abort()

    def connectionLost(self, reason: object = None) -> None:
        self._end(StoreUnavailable("the connection to the store was lost"),
                  StoreUnavailable("the connection to the store was lost during its handshake"))

    def _end(self, in_flight: StoreUnavailable, handshake: StoreUnavailable) -> None:
        """The connection is over: tell the pool, fail every command still waiting and an unfinished handshake.
        Nothing is delivered after this (``dataReceived`` drops what still arrives)."""
        self._lost = True
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(self)
        waiting, self._slots = self._slots, deque()
        for d in waiting:
            if not d.called:
                d.errback(in_flight)
        if not self.ready.called:
            self.ready.errback(Failure(handshake))

    def abort(self) -> None:
        """Drop the connection; what is in flight fails StoreUnavailable (when the transport reports the loss)."""
        transport = self.transport
        if transport is not None:
            # every stream transport we connect over (TCP, UNIX, TLS) is an ITCPTransport with abortConnection
            transport.abortConnection()  # type: ignore[attr-defined]

    # --- commands --------------------------------------------------------------------------------------
    def send(self, commands: Sequence[Sequence[Any]]) -> list[defer.Deferred[Any]]:
        """Send ``commands`` in one write; one Deferred per command, fired with its reply.

        Raises ``StoreCommandError`` (nothing sent, nothing changed) for a command that cannot be sent and
        ``StoreUnavailable`` when the connection is gone.
        """
        payload = pack(commands)  # before any slot is taken: see the module docstring
        answers: list[defer.Deferred[Any]] = [defer.Deferred() for _ in commands]
        self._write(payload, answers)
        return answers

    def send_one(self, command: Sequence[Any]) -> defer.Deferred[Any]:
        """``send`` for one command (the hot path: no lists)."""
        payload = pack((command,))
        d: defer.Deferred[Any] = defer.Deferred()
        self._write(payload, (d,))
        return d

    def _write(self, payload: bytes, answers: Sequence[defer.Deferred[Any]]) -> None:
        """Take the slots of ``answers`` and write ``payload`` in the same step."""
        if self._lost:
            raise StoreUnavailable("the connection to the store was lost")
        if not self._slots:
            self._waiting_since = self.clock.seconds()
        self._slots.extend(answers)
        try:
            self.transport.write(payload)  # type: ignore[union-attr]
        except Exception as e:  # a failed write leaves the stream in an unknown state
            self._broken(e)

    def dataReceived(self, data: bytes) -> None:
        if self._lost:
            return  # bytes of a connection that is over (its reader may hold a broken stream) go nowhere
        try:
            reader = self._reader
            reader.feed(data)
            reply = reader.gets()
            if reply is not False:
                self._waiting_since = self.clock.seconds()
            while reply is not False:
                if self._lost:
                    return  # dropped while delivering (a callback aborted us): nothing more is delivered
                if not self._slots:
                    raise StoreProtocolError("the store sent a reply no command asked for")
                d = self._slots.popleft()
                if not d.called:  # a cancelled caller keeps its slot; its reply ends here
                    if isinstance(reply, StoreReplyError):
                        d.errback(reply)
                    else:
                        d.callback(reply)
                reply = reader.gets()
        except Exception as e:
            self._broken(e)

    def silent_for(self, now: float) -> float:
        """How long commands have waited on this connection without any reply (0 when none wait)."""
        return now - self._waiting_since if self._slots else 0.0

    def _broken(self, error: BaseException) -> None:
        """The command path cannot go on safely: fail everything in flight now and drop the connection."""
        if self._lost:
            return
        log.error("store connection dropped: {error}", error=f"{type(error).__name__}: {error}")
        self._end(StoreUnavailable("the connection to the store was dropped after an error in its command path"),
                  StoreUnavailable(str(error)))
        self.abort()

