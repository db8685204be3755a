"""The blocking reader's connection: a blocked read stalls nobody else, a stop ends it and any pause at once."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet import defer

from ovsd.store.blocking import BlockingReader
from ovsd.store.connection import Store, StoreUnavailable


@pytest_twisted.ensureDeferred
async def test_a_blocked_read_holds_only_its_own_connection_and_a_stop_ends_it(store: Store) -> None:
    reader = BlockingReader(store, "test reader", reply_timeout=10.0)
    reader.start()
    blocked = defer.ensureDeferred(reader.execute("XREAD", "BLOCK", 5000, "STREAMS", "test:stream", "$"))
    assert await store.execute("XADD", "other:stream", "*", "a", "1")
    assert await store.execute("PING") == "PONG"  # the pool answers while the read blocks
    assert not blocked.called
    started = time.monotonic()
    await reader.stop()
    with pytest.raises(StoreUnavailable):
        await blocked
    assert time.monotonic() - started < 1.0
    with pytest.raises(StoreUnavailable, match="test reader: connection closed"):
        await reader.execute("PING")


@pytest_twisted.ensureDeferred
async def test_the_pause_doubles_up_to_its_bound_resets_and_ends_with_stop(store: Store) -> None:
    reader = BlockingReader(store, "test reader", reply_timeout=10.0, retry_initial=0.1, retry_max=0.3)
    reader.start()
    pauses = []
    for _ in range(4):
        started = time.monotonic()
        await reader.back_off()
        pauses.append(time.monotonic() - started)
    assert pauses[0] >= 0.1 and pauses[1] >= 0.2 and pauses[2] >= 0.3
    assert pauses[3] < 0.5  # bounded: not 0.6
    reader.reset_back_off()
    started = time.monotonic()
    await reader.back_off()
    assert time.monotonic() - started < 0.2

    slow = BlockingReader(store, "slow reader", reply_timeout=10.0, retry_initial=5.0)
    slow.start()
    pausing = defer.ensureDeferred(slow.back_off())
    started = time.monotonic()
    await slow.stop()
    await pausing
    assert time.monotonic() - started < 1.0
    await reader.stop()
