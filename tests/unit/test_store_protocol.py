"""The store connection's command path under every failure it can meet: a reply never reaches a command
other than the one that asked, and a failure drops the connection instead of shifting the replies.

The connection is driven over an in-memory transport so that each failure (an unencodable command, a write
that raises, a reply nobody asked for, a protocol error, a connection lost mid-pipeline, a caller that gave
up) can be injected at an exact point; tests/unit/test_store_connection.py does the same against a real
server where a server can produce the failure.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ovsd.store.errors import StoreCommandError, StoreReplyError, StoreUnavailable
from ovsd.store.protocol import StoreProtocol


def bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Outcome:
    """What one command's Deferred ended with."""

    def __init__(self, d: defer.Deferred[Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.fired = False
        d.addCallbacks(self._ok, self._failed)

    def _ok(self, value: Any) -> None:
        self.fired, self.value = True, value

    def _failed(self, failure: Failure) -> None:
        self.fired, self.error = True, failure.value


class Link:
    """A StoreProtocol past its handshake on an in-memory transport: what it writes, what it is fed."""

    def __init__(self) -> None:
        self.lost: list[StoreProtocol] = []
        self.conn = StoreProtocol(Clock(), on_lost=self.lost.append)
        self.transport = StringTransport()
        self.conn.makeConnection(self.transport)
        assert self.transport.value() == b"*1\r\n$4\r\nPING\r\n"
        self.conn.dataReceived(b"+PONG\r\n")
        assert self.conn.ready.called
        self.transport.clear()

    def send(self, *command: Any) -> Outcome:
        return Outcome(self.conn.send_one(command))

    @property
    def dropped(self) -> bool:
        return self.transport.disconnecting or bool(self.lost)

    def lose(self) -> None:
        """What the reactor does after abortConnection: tell the protocol the connection is gone."""
        self.conn.connectionLost(Failure(ConnectionError("closed")))


def test_replies_go_to_their_commands_in_order_whatever_the_read_boundaries() -> None:
    link = Link()
    outcomes = [link.send("GET", f"k{i}") for i in range(5)]
    stream = b"".join(bulk(f"v{i}") for i in range(5))
    for i in range(0, len(stream), 3):  # replies cut at arbitrary points
        link.conn.dataReceived(stream[i:i + 3])
    assert [o.value for o in outcomes] == [f"v{i}" for i in range(5)]


def test_an_unencodable_command_fails_alone_before_it_takes_a_reply_slot() -> None:
    link = Link()
    first = link.send("GET", "a")
    for bad in ("x\ud800y", None, ["list"], object()):
        with pytest.raises(StoreCommandError):
            link.conn.send_one(("SET", "k", bad))
    with pytest.raises(StoreCommandError):  # a batch with one bad command sends none of them
        link.conn.send([("SET", "b", "1"), ("SET", "c", "\udfff")])
    last = link.send("GET", "b")
    assert link.transport.value() == b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"
    link.conn.dataReceived(bulk("A") + bulk("B"))
    assert (first.value, last.value) == ("A", "B")
    assert not link.dropped


def test_commands_that_break_one_reply_per_command_are_refused() -> None:
    link = Link()
    for command in (("SUBSCRIBE", "c"), ("monitor",), ("CLIENT", "REPLY", "OFF"), ("HELLO", "3"), ("RESET",)):
        with pytest.raises(StoreCommandError):
            link.conn.send_one(command)
    assert link.transport.value() == b""
    ok = link.send("CLIENT", "PAUSE", 10)  # other CLIENT sub-commands answer once, like any command
    link.conn.dataReceived(b"+OK\r\n")
    assert ok.value == "OK"


def test_an_error_reply_fails_only_its_command() -> None:
    link = Link()
    a, b, c = link.send("GET", "t"), link.send("INCR", "t"), link.send("GET", "t")
    link.conn.dataReceived(bulk("x") + b"-ERR value is not an integer\r\n" + bulk("x"))
    assert (a.value, c.value) == ("x", "x")
    assert isinstance(b.error, StoreReplyError) and "not an integer" in str(b.error)
    assert not link.dropped


def test_a_caller_that_gave_up_keeps_its_slot_so_later_replies_still_line_up() -> None:
    link = Link()
    d = link.conn.send_one(("GET", "slow"))
    gave_up = Outcome(d)
    after = link.send("GET", "next")
    d.cancel()
    assert isinstance(gave_up.error, defer.CancelledError)
    link.conn.dataReceived(bulk("slow-value") + bulk("next-value"))
    assert after.value == "next-value"
    assert not link.dropped


def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    link = Link()
    link.conn.dataReceived(bulk("stray"))
    assert link.dropped
    with pytest.raises(StoreUnavailable):
        link.conn.send_one(("GET", "k"))


def test_a_protocol_error_fails_every_command_in_flight_and_delivers_nothing_after_it() -> None:
    link = Link()
    outcomes = [link.send("GET", f"k{i}") for i in range(4)]
    link.conn.dataReceived(bulk("v0") + b"!garbage\r\n" + bulk("v2") + bulk("v3"))
    assert outcomes[0].value == "v0"
    for o in outcomes[1:]:
        assert isinstance(o.error, StoreUnavailable), "a reply after the error reached a command"
    assert link.dropped


def test_a_connection_lost_mid_pipeline_fails_what_is_in_flight_and_nothing_is_delivered_later() -> None:
    link = Link()
    outcomes = [link.send("GET", f"k{i}") for i in range(6)]
    link.conn.dataReceived(bulk("v0") + bulk("v1")[:3])  # half of the second reply, then the link dies
    link.lose()
    assert outcomes[0].value == "v0"
    assert all(isinstance(o.error, StoreUnavailable) for o in outcomes[1:])
    link.conn.dataReceived(bulk("v1")[3:] + bulk("v2"))  # late bytes from a dead connection go nowhere
    assert all(isinstance(o.error, StoreUnavailable) for o in outcomes[1:])
    with pytest.raises(StoreUnavailable):
        link.conn.send_one(("GET", "k"))


def test_a_write_that_raises_drops_the_connection_and_fails_its_commands() -> None:
    link = Link()
    before = link.send("GET", "a")

    def broken_write(data: bytes) -> None:
        raise OSError("short write")

    link.transport.write = broken_write  # type: ignore[method-assign]
    during = link.send("GET", "b")
    assert isinstance(before.error, StoreUnavailable) and isinstance(during.error, StoreUnavailable)
    assert link.dropped


def test_a_callback_that_drops_the_connection_stops_delivery_of_the_rest() -> None:
    link = Link()
    first = link.conn.send_one(("GET", "a"))
    second = link.send("GET", "b")
    first.addCallback(lambda _: link.lose())
    link.conn.dataReceived(bulk("A") + bulk("B"))
    assert isinstance(second.error, StoreUnavailable)


def test_bytes_that_are_not_utf8_are_replaced_and_the_next_reply_is_still_its_own() -> None:
    link = Link()
    odd, after = link.send("GET", "odd"), link.send("GET", "after")
    link.conn.dataReceived(b"$3\r\n\xff\xfea\r\n" + bulk("fine"))
    assert odd.value == "\ufffd\ufffda" and after.value == "fine"
    assert not link.dropped


def test_a_handshake_that_is_refused_never_makes_the_connection_ready() -> None:
    lost: list[StoreProtocol] = []
    ready: list[StoreProtocol] = []
    conn = StoreProtocol(Clock(), [("AUTH", "wrong")], on_ready=ready.append, on_lost=lost.append)
    transport = StringTransport()
    conn.makeConnection(transport)
    refused = Outcome(conn.ready)
    conn.dataReceived(b"-WRONGPASS invalid username-password pair\r\n+PONG\r\n")
    assert isinstance(refused.error, StoreUnavailable) and "WRONGPASS" in str(refused.error)
    assert not ready and transport.disconnecting
