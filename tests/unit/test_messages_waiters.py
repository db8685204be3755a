"""The waiter registry on a fake clock: deadlines, one release per waiter, cancellation."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure

from ovsd.messages.log import EVENT, TASK_COMPLETE, Message
from ovsd.messages.waiters import WaiterRegistry

BOTH = (TASK_COMPLETE, EVENT)


def msg(message_id: int, message_type: str) -> Message:
    return {"id": message_id, "type": message_type, "body": message_id}


def results(*ds: defer.Deferred[Any]) -> list[object]:
    out: list[object] = []
    for d in ds:
        d.addBoth(out.append)
    return out


def test_a_waiter_answers_none_at_its_deadline_not_before() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock, resolution=0.05)
    got = results(registry.add(BOTH, 0, 2.0))
    clock.advance(1.99)
    assert got == [] and registry.count == 1
    clock.advance(0.06)
    assert got == [None] and registry.count == 0
    assert clock.getDelayedCalls() == []


def test_waiters_with_near_deadlines_share_one_timer() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock, resolution=0.05)
    for n in range(1000):
        registry.add(BOTH, 0, 60.0 + n / 100_000)
    assert len(clock.getDelayedCalls()) <= 2


def test_one_batch_releases_each_waiter_once_with_its_types_only() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock)
    both, events, tasks, ahead = (
        registry.add(BOTH, 0, 60), registry.add((EVENT,), 0, 60), registry.add((TASK_COMPLETE,), 0, 60),
        registry.add((EVENT,), 2, 60),  # has seen message 2 already
    )
    got = [results(d) for d in (both, events, tasks, ahead)]
    batch = [msg(1, EVENT), msg(2, TASK_COMPLETE), msg(3, EVENT)]
    assert registry.deliver(batch, 3) == 4
    assert got[0] == [(batch, 3, False)]
    assert got[1] == [([batch[0], batch[2]], 3, False)]
    assert got[2] == [([batch[1]], 3, False)]
    assert got[3] == [([batch[2]], 3, False)]
    assert registry.count == 0 and clock.getDelayedCalls() == []


def test_a_waiter_stays_when_the_batch_holds_nothing_new_for_it() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock)
    got = results(registry.add((EVENT,), 5, 60))
    assert registry.deliver([msg(4, EVENT), msg(5, TASK_COMPLETE)], 5) == 0
    assert got == [] and registry.count == 1
    registry.deliver([msg(6, EVENT)], 6)
    assert got == [([msg(6, EVENT)], 6, False)]


def test_a_gap_releases_those_who_needed_the_lost_messages_even_of_other_types() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock)
    behind, in_step = registry.add((EVENT,), 3, 60), registry.add((EVENT,), 9, 60)
    got_behind, got_in_step = results(behind), results(in_step)
    # messages 4..9 were trimmed before the reader saw them; 10 is a TASK_COMPLETE
    registry.deliver([msg(10, TASK_COMPLETE)], 10, gap_below=10)
    assert got_behind == [([], 10, True)]
    assert got_in_step == [] and registry.count == 1


def test_cancelling_drops_the_waiter_and_its_timer() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock)
    d = registry.add(BOTH, 0, 60)
    got = results(d)
    d.cancel()
    assert registry.count == 0 and clock.getDelayedCalls() == []
    assert registry.deliver([msg(1, EVENT)], 1) == 0
    assert len(got) == 1 and isinstance(got[0], Failure) and got[0].check(defer.CancelledError)


def test_release_all_and_the_lowest_position() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock)
    assert registry.lowest_after() is None
    got = results(registry.add((EVENT,), 7, 60), registry.add((TASK_COMPLETE,), 4, 60))
    assert registry.lowest_after() == 4
    assert registry.release_all(2, missed=True) == 2
    assert got == [([], 2, True), ([], 2, True)]
    assert registry.count == 0 and clock.getDelayedCalls() == []


def test_a_large_release_fires_in_slices_and_a_waiter_that_leaves_meanwhile_stays_silent() -> None:
    clock = task.Clock()
    registry = WaiterRegistry(clock, release_slice=500)
    waiters = [registry.add((EVENT,), 0, 60) for _ in range(1200)]
    got = [results(w) for w in waiters]
    assert registry.deliver([msg(1, EVENT)], 1) == 1200
    assert registry.count == 0  # all left the index at once: a new wait registers behind the release
    assert sum(1 for g in got if g) == 500
    leaving = next(i for i, g in enumerate(got) if not g)
    waiters[leaving].cancel()
    clock.advance(0)  # the next turns (a Clock runs them all at once)
    assert all(len(g) == 1 for g in got)  # fired once: with the delivery, or with the cancellation
    assert isinstance(got[leaving][0], Failure) and got[leaving][0].check(defer.CancelledError)
    assert sum(1 for g in got if g[0] == ([msg(1, EVENT)], 1, False)) == 1199
    assert registry.count == 0 and clock.getDelayedCalls() == []
