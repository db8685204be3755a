"""The store connection: replies reach the command that asked, errors stay with their command, and a
server that stops answering fails the waiting commands with StoreUnavailable instead of hanging them."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from ovsd.store.connection import Store, StoreUnavailable
from ovsd.store.embedded import EmbeddedStoreServer
from ovsd.store.errors import StoreReplyError


@pytest_twisted.ensureDeferred
async def test_concurrent_commands_each_get_their_own_reply(store: Store) -> None:
    await store.pipeline([("SET", f"k{i}", f"v{i}") for i in range(300)])
    replies = await defer.gatherResults([defer.ensureDeferred(store.execute("GET", f"k{i}")) for i in range(300)])
    assert replies == [f"v{i}" for i in range(300)]


@pytest_twisted.ensureDeferred
async def test_an_error_reply_fails_only_its_own_command(store: Store) -> None:
    await store.execute("SET", "text", "é")
    with pytest.raises(StoreReplyError, match="not an integer"):
        await store.pipeline([("GET", "text"), ("INCR", "text"), ("GET", "text")])
    assert await store.execute("GET", "text") == "é"
    assert await store.execute("HSET", "h", "a", 1, "b", 2.5) == 2
    assert await store.execute("HGETALL", "h") == ["a", "1", "b", "2.5"]
    assert await store.execute("GET", "missing") is None


@pytest_twisted.ensureDeferred
async def test_a_silent_server_fails_waiting_commands_then_the_store_recovers(
    store_server: EmbeddedStoreServer,
) -> None:
    silent = Store("embedded", store_server.store_dir, reactor, poolsize=2)
    silent.command_timeout = 0.3
    silent.startService()
    try:
        await silent.wait_until_available(interval=0.05)
        # another client makes the server hold every command for 1.5 s (it answers none meanwhile)
        await silent.execute("CLIENT", "PAUSE", 1500, "ALL")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await silent.execute("GET", "anything")
        assert time.monotonic() - started < 1.2, "the command waited for the pause instead of its timeout"
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await silent.execute("PING") == "PONG"
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store never came back"
                d: defer.Deferred[None] = defer.Deferred()
                reactor.callLater(0.1, d.callback, None)
                await d
    finally:
        await silent.stopService()
