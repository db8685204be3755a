"""Subscriptions: accepted types, replacement, expiry refreshed by every call, the per-type index."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor, task

from ovsd.messages.log import EVENT, TASK_COMPLETE, publish
from ovsd.messages.subscriptions import all_subscribed_types, read, subscribe, subscriptions
from ovsd.store import keys
from ovsd.store.connection import Store


async def until(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not met in time")


@pytest_twisted.ensureDeferred
async def test_only_known_types_are_accepted_once_each(store: Store) -> None:
    accepted = await subscribe(store, 1234567890, ["EVENT", "NOPE", 7, "TASK_COMPLETE", "EVENT"])
    assert accepted == [EVENT, TASK_COMPLETE]
    assert await subscriptions(store, 1234567890) == [TASK_COMPLETE, EVENT]


@pytest_twisted.ensureDeferred
async def test_subscribing_replaces_the_types(store: Store) -> None:
    await subscribe(store, 5, [TASK_COMPLETE, EVENT])
    assert await subscribe(store, 5, [EVENT]) == [EVENT]
    assert await subscriptions(store, 5) == [EVENT]
    assert await all_subscribed_types(store) == [EVENT]
    assert await subscribe(store, 5, []) == []
    assert await subscriptions(store, 5) == []
    assert await all_subscribed_types(store) == []


@pytest_twisted.ensureDeferred
async def test_a_subscription_expires_300_s_after_the_last_call_of_its_subscriber(store: Store) -> None:
    await subscribe(store, 42, [EVENT])
    ttl = await store.execute("PTTL", keys.subscription(42))
    assert 299_000 < ttl <= 300_000
    # time passes (pretend 250 s): any call of the subscriber brings the expiry back to 300 s
    for call in (lambda: subscriptions(store, 42), lambda: read(store, 42), lambda: read(store, 42, after=0)):
        await store.execute("PEXPIRE", keys.subscription(42), 50_000)
        await call()
        ttl = await store.execute("PTTL", keys.subscription(42))
        assert 299_000 < ttl <= 300_000
    # another subscriber's calls do not keep it alive
    await store.execute("PEXPIRE", keys.subscription(42), 50_000)
    await subscriptions(store, 43)
    assert await store.execute("PTTL", keys.subscription(42)) <= 50_000


@pytest_twisted.ensureDeferred
async def test_expired_subscribers_leave_the_list_of_subscribed_types(store: Store) -> None:
    await subscribe(store, 1, [EVENT], ttl=300)
    await subscribe(store, 2, [TASK_COMPLETE], ttl=0.05)
    assert await all_subscribed_types(store) == [TASK_COMPLETE, EVENT]

    async def only_events() -> bool:
        return await all_subscribed_types(store) == [EVENT]

    await until(only_events)
    assert await subscriptions(store, 2) == []
    assert await store.execute("ZCARD", keys.message_subscribers(TASK_COMPLETE)) == 0


@pytest_twisted.ensureDeferred
async def test_read_gives_the_subscribers_messages_after_an_id(store: Store) -> None:
    await subscribe(store, 9, [TASK_COMPLETE])
    for n in range(6):
        await publish(store, TASK_COMPLETE if n % 2 else EVENT, {"n": n})
    view = await read(store, 9, after=2)
    assert (view.last_id, view.oldest_id, view.scanned_to, view.types) == (6, 1, 6, [TASK_COMPLETE])
    assert view.messages == [
        {"id": 4, "type": TASK_COMPLETE, "body": {"n": 3}},
        {"id": 6, "type": TASK_COMPLETE, "body": {"n": 5}},
    ]
    # a limited read says how far it looked, so the caller can go on from there
    partial = await read(store, 9, after=0, limit=3)
    assert partial.scanned_to == 3
    assert [m["id"] for m in partial.messages] == [2]
