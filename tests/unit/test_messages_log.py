"""The message log: ids, bodies, retention, the event helpers (real store)."""

from __future__ import annotations

import pytest
import pytest_twisted

from ovsd.messages import log as message_log
from ovsd.messages.events import publish_event, publish_task_complete
from ovsd.messages.log import EVENT, TASK_COMPLETE, Retention, from_entry, last_id, publish
from ovsd.store import keys
from ovsd.store.connection import Store


async def retained(store: Store) -> list[int]:
    entries = await store.execute("XRANGE", keys.MESSAGE_LOG, "-", "+")
    return [from_entry(e)["id"] for e in entries]


@pytest_twisted.ensureDeferred
async def test_ids_start_at_one_and_increase_with_the_body_kept(store: Store) -> None:
    assert await last_id(store) == 0
    first = await publish(store, EVENT, {"type": "vdisk_created", "metadata": {"name": "ü"}})
    second = await publish(store, TASK_COMPLETE, "task-1")
    assert (first, second) == (1, 2)
    assert await last_id(store) == 2
    entries = await store.execute("XRANGE", keys.MESSAGE_LOG, "-", "+")
    assert [from_entry(e) for e in entries] == [
        {"id": 1, "type": EVENT, "body": {"type": "vdisk_created", "metadata": {"name": "ü"}}},
        {"id": 2, "type": TASK_COMPLETE, "body": "task-1"},
    ]
    assert [e[0] for e in entries] == ["1-0", "2-0"]


@pytest_twisted.ensureDeferred
async def test_an_unknown_type_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown message type"):
        await publish(store, "GOSSIP", {})
    assert await last_id(store) == 0


@pytest_twisted.ensureDeferred
async def test_young_messages_are_kept_beyond_the_count(store: Store) -> None:
    keep_five_for_a_while = Retention(count=5, seconds=300)
    for _ in range(20):
        await publish(store, TASK_COMPLETE, "t", keep_five_for_a_while)
    assert await retained(store) == list(range(1, 21))


@pytest_twisted.ensureDeferred
async def test_old_messages_beyond_the_count_are_trimmed(store: Store) -> None:
    for _ in range(20):
        await publish(store, TASK_COMPLETE, "t", Retention(count=5, seconds=300))
    # the same log under a window of zero seconds: only the count protects, so only the last 5 remain
    await publish(store, TASK_COMPLETE, "t", Retention(count=5, seconds=0))
    assert await retained(store) == [17, 18, 19, 20, 21]
    for _ in range(3):
        await publish(store, TASK_COMPLETE, "t", Retention(count=5, seconds=0))
    assert await retained(store) == [20, 21, 22, 23, 24]
    assert await last_id(store) == 24


@pytest_twisted.ensureDeferred
async def test_a_large_backlog_is_trimmed_a_bounded_amount_per_publish(store: Store) -> None:
    for _ in range(1500):
        await publish(store, TASK_COMPLETE, "t", Retention(count=1, seconds=300))
    await publish(store, TASK_COMPLETE, "t", Retention(count=1, seconds=0))
    # one publish looks at about 1000 old entries at most, so a huge backlog never stalls the store
    first_pass = await retained(store)
    assert 1000 <= 1501 - len(first_pass) <= 1300 and first_pass[-1] == 1501
    await publish(store, TASK_COMPLETE, "t", Retention(count=1, seconds=0))
    assert await retained(store) == [1502]


def test_retention_refuses_an_empty_log() -> None:
    with pytest.raises(ValueError):
        Retention(count=0)
    assert message_log.DEFAULT_RETENTION == Retention(count=10_000, seconds=300)


@pytest_twisted.ensureDeferred
async def test_events_and_task_completions_have_the_contract_bodies(store: Store) -> None:
    event_id = await publish_event(store, "vmachine_renamed", {"guid": "g1", "name": "vm2"})
    task_id = await publish_task_complete(store, "0f4c-task")
    entries = await store.execute("XRANGE", keys.MESSAGE_LOG, "-", "+")
    assert [from_entry(e) for e in entries] == [
        {"id": event_id, "type": "EVENT",
         "body": {"type": "vmachine_renamed", "metadata": {"guid": "g1", "name": "vm2"}}},
        {"id": task_id, "type": "TASK_COMPLETE", "body": "0f4c-task"},
    ]


@pytest_twisted.ensureDeferred
async def test_a_body_quoting_a_lone_surrogate_still_publishes_readably(store: Store) -> None:
    # an event may quote a name an earlier release stored with a lone surrogate
    await publish(store, EVENT, {"type": "vdisk_created", "metadata": {"name": "x\ud800y"}})
    entries = await store.execute("XRANGE", keys.MESSAGE_LOG, "-", "+")
    assert [from_entry(e)["body"] for e in entries] == [{"type": "vdisk_created", "metadata": {"name": "x\ufffdy"}}]
