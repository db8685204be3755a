"""The message bus: long-polls against a real store, one or two "nodes" (MessageBus instances)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from ovsd.messages.bus import MessageBus
from ovsd.messages.events import publish_event, publish_task_complete
from ovsd.messages.log import EVENT, TASK_COMPLETE, Retention, from_entry, publish
from ovsd.messages.subscriptions import subscribe
from ovsd.store import keys
from ovsd.store.connection import Store, StoreUnavailable


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.01, lambda: None)


async def started_bus(store: Store, **kwargs: Any) -> MessageBus:
    bus = MessageBus(store, reactor, **kwargs)
    bus.startService()
    await until(lambda: bus.position is not None)
    return bus


@pytest_twisted.async_yield_fixture
async def bus(store: Store) -> AsyncIterator[MessageBus]:
    b = await started_bus(store)
    yield b
    await b.stopService()


def waiting(coro: Coroutine[Any, Any, Any]) -> defer.Deferred[Any]:
    return defer.ensureDeferred(coro)


async def timed(d: defer.Deferred[Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await d
    return result, time.monotonic() - start


@pytest_twisted.ensureDeferred
async def test_a_waiter_is_released_within_100_ms_of_a_matching_publish(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 7, [TASK_COMPLETE])
    pending = waiting(bus.wait(7, 0, timeout=10))
    await until(lambda: bus.waiter_count == 1)
    message_id = await publish_task_complete(store, "task-a")
    published = time.monotonic()
    result = await pending
    assert time.monotonic() - published < 0.1
    assert result == {
        "messages": [{"id": message_id, "type": TASK_COMPLETE, "body": "task-a"}],
        "last_message_id": message_id,
        "subscriptions": [TASK_COMPLETE],
    }
    assert bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_a_waiter_ignores_other_types_and_answers_nothing_at_its_timeout(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 7, [TASK_COMPLETE])
    pending = waiting(bus.wait(7, 0, timeout=0.5))
    await until(lambda: bus.waiter_count == 1)
    started = time.monotonic()
    other = await publish_event(store, "vdisk_created", {"guid": "d1"})
    result = await pending
    assert time.monotonic() - started >= 0.4  # the EVENT did not release it
    # nothing for it, but it has seen everything up to the EVENT: its next wait starts after it
    assert result == {"messages": [], "last_message_id": other, "subscriptions": [TASK_COMPLETE]}
    assert bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_a_quiet_log_answers_at_the_timeout(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 8, [EVENT, TASK_COMPLETE])
    result, elapsed = await timed(waiting(bus.wait(8, 0, timeout=0.3)))
    assert 0.25 <= elapsed < 1.5
    assert result == {"messages": [], "last_message_id": 0, "subscriptions": [TASK_COMPLETE, EVENT]}
    assert (await timed(waiting(bus.wait(8, 0, timeout=0))))[1] < 0.5


@pytest_twisted.ensureDeferred
async def test_a_client_that_is_behind_gets_its_messages_at_once(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 3, [EVENT])
    await publish_event(store, "vmachine_created", {"guid": "v1"})
    await publish_task_complete(store, "t1")
    await publish_event(store, "vmachine_deleted", {"guid": "v1"})
    result, elapsed = await timed(waiting(bus.wait(3, 0, timeout=30)))
    assert elapsed < 1
    got = [(m["id"], m["body"]["type"]) for m in result["messages"]]
    assert got == [(1, "vmachine_created"), (3, "vmachine_deleted")]
    assert result["last_message_id"] == 3 and "missed" not in result
    assert bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_a_gap_in_the_retained_log_is_reported_as_missed(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 4, [TASK_COMPLETE])
    small = Retention(count=3, seconds=0)
    for n in range(10):
        await publish(store, TASK_COMPLETE, f"t{n}", small)
    result = await waiting(bus.wait(4, 2, timeout=30))
    assert result["missed"] is True
    assert [m["id"] for m in result["messages"]] == [8, 9, 10]  # what is still retained
    assert result["last_message_id"] == 10
    # from the last id it got, the client is in step again
    in_step = await waiting(bus.wait(4, 10, timeout=0))
    assert in_step == {"messages": [], "last_message_id": 10, "subscriptions": [TASK_COMPLETE]}


@pytest_twisted.ensureDeferred
async def test_a_reader_that_comes_late_releases_waiters_that_lost_messages(store: Store) -> None:
    # a node whose reader is not running yet (or is resuming): waits are held, and when the reader
    # finds that what they waited for was trimmed meanwhile, they are told so
    late = MessageBus(store, reactor)
    try:
        await subscribe(store, 5, [TASK_COMPLETE])
        pending = waiting(late.wait(5, 0, timeout=10))
        await until(lambda: late.waiter_count == 1)
        for n in range(10):
            await publish(store, TASK_COMPLETE, f"t{n}", Retention(count=3, seconds=0))
        late.startService()
        result = await pending
        assert result["missed"] is True
        assert [m["id"] for m in result["messages"]] == [8, 9, 10]
        assert result["last_message_id"] == 10
    finally:
        await late.stopService()


@pytest_twisted.ensureDeferred
async def test_a_cancelled_waiter_is_gone_at_once(store: Store, bus: MessageBus) -> None:
    await subscribe(store, 11, [EVENT])
    await subscribe(store, 12, [EVENT, TASK_COMPLETE])
    first = waiting(bus.wait(11, 0, timeout=30))
    second = waiting(bus.wait(12, 0, timeout=30))
    await until(lambda: bus.waiter_count == 2)
    first.cancel()
    second.cancel()
    assert bus.waiter_count == 0
    for d in (first, second):
        with pytest.raises(defer.CancelledError):
            await d
    # nothing is left to be released: a message later wakes no one and nothing breaks
    await publish_event(store, "vdisk_created", {})
    await until(lambda: bus.position == 1)
    assert bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_what_node_a_publishes_wakes_a_subscriber_waiting_on_node_b(store: Store) -> None:
    node_a = await started_bus(store)
    node_b = await started_bus(store)
    try:
        await subscribe(store, 21, [EVENT])
        pending = waiting(node_b.wait(21, 0, timeout=10))
        await until(lambda: node_b.waiter_count == 1)
        message_id = await publish_event(node_a.store, "storagerouter_status_changed", {"guid": "sr1", "status": "OK"})
        result = await pending
        assert result["messages"] == [{
            "id": message_id, "type": EVENT,
            "body": {"type": "storagerouter_status_changed", "metadata": {"guid": "sr1", "status": "OK"}},
        }]
        assert node_a.waiter_count == 0 and node_b.waiter_count == 0
    finally:
        await node_a.stopService()
        await node_b.stopService()


@pytest_twisted.ensureDeferred
async def test_ids_are_unique_and_increasing_under_concurrent_publishing(store: Store, bus: MessageBus) -> None:
    other_node = Store(store.url, store.store_dir, reactor)
    other_node.startService()
    await other_node.wait_until_available(interval=0.05)
    try:
        await subscribe(store, 31, [TASK_COMPLETE])
        seen: list[int] = []

        async def follow() -> None:
            after = 0
            while len(seen) < 200:
                result = await bus.wait(31, after, timeout=10)
                seen.extend(m["id"] for m in result["messages"])
                after = result["last_message_id"]

        follower = waiting(follow())
        publishes = [publish_task_complete(s, f"t{n}") for n in range(100) for s in (store, other_node)]
        ids = await defer.gatherResults([defer.ensureDeferred(p) for p in publishes])
        await follower
        assert sorted(ids) == list(range(1, 201))
        assert seen == list(range(1, 201))  # every id once, in order, as the reader saw them
        entries = await store.execute("XRANGE", keys.MESSAGE_LOG, "-", "+")
        assert [from_entry(e)["id"] for e in entries] == list(range(1, 201))
    finally:
        await other_node.stopService()


@pytest_twisted.ensureDeferred
async def test_stopping_the_bus_answers_its_waiters(store: Store) -> None:
    bus = await started_bus(store)
    await subscribe(store, 41, [EVENT])
    pending = waiting(bus.wait(41, 0, timeout=30))
    await until(lambda: bus.waiter_count == 1)
    _, elapsed = await timed(bus.stopService())
    assert elapsed < 2
    assert (await pending)["messages"] == []
    assert bus.waiter_count == 0


async def script_calls(store: Store) -> int:
    info = await store.execute("INFO", "commandstats")
    calls = 0
    for line in info.splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            calls += int(line.split("calls=")[1].split(",")[0])
    return calls


@pytest_twisted.ensureDeferred
async def test_a_burst_of_waits_shares_its_store_calls(store: Store, bus: MessageBus) -> None:
    # thousands of GUIs re-arm at once after each message: their reads must not cost a call each
    sids = range(100, 400)
    for sid in sids:
        await subscribe(store, sid, [EVENT])
    message_id = await publish_event(store, "vdisk_created", {})
    await store.execute("CONFIG", "RESETSTAT")
    results = await defer.gatherResults([waiting(bus.wait(sid, 0, timeout=30)) for sid in sids])
    assert all([m["id"] for m in r["messages"]] == [message_id] for r in results)
    assert await script_calls(store) <= 4  # 300 waits, batches of 256
    # the refresh of every subscription still happened
    assert all(299_000 < ttl for ttl in await defer.gatherResults([
        defer.ensureDeferred(store.execute("PTTL", keys.subscription(sid))) for sid in sids]))


@pytest_twisted.ensureDeferred
async def test_a_wait_while_the_store_is_down_fails_as_unavailable(store: Store, bus: MessageBus) -> None:
    await store.stopService()
    with pytest.raises(StoreUnavailable):
        await bus.wait(1, 0, timeout=1)
    assert bus.waiter_count == 0
