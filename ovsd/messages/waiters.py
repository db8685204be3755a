"""The long-polls a process holds, indexed by message type, and their deadlines.

Tens of thousands of waiters are normal (one per open GUI per node), so a waiter is a Deferred with three
attributes; deadlines share one timer per tick of ``resolution`` seconds instead of one timer each; a
batch of messages is handed out in one pass over the waiters of the types it contains.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from ovsd.messages.log import Message

# what a released waiter gets: (messages of its types, the id up to which it has seen all, missed)
Delivery = tuple[list[Message], int, bool]


class Waiter(defer.Deferred[Delivery | None]):
    """One long-poll in flight: fires with a Delivery, or None at its deadline; cancel it to drop it."""

    types: tuple[str, ...]
    after: int
    tick: int
    held = True  # in the registry's index (False once released or dropped)


class WaiterRegistry:
    """Holds the waiters of this process and releases them."""

    def __init__(self, clock: IReactorTime, resolution: float = 0.05, release_slice: int = 500) -> None:
        self.clock = clock
        self.resolution = resolution
        self.release_slice = release_slice
        self.count = 0
        self._by_type: dict[str, set[Waiter]] = {}
        self._ticks: dict[int, set[Waiter]] = {}
        self._timers: dict[int, IDelayedCall] = {}

    def add(self, types: tuple[str, ...], after: int, timeout: float) -> Waiter:
        """A waiter for messages of ``types`` with id > ``after``, released at the latest after ``timeout``."""
        waiter = Waiter(self._cancelled)
        waiter.types = types
        waiter.after = after
        for t in types:
            self._by_type.setdefault(t, set()).add(waiter)
        self._schedule(waiter, timeout)
        self.count += 1
        return waiter

    def lowest_after(self) -> int | None:
        """The oldest position any waiter still needs (a reader that lost its place resumes there)."""
        return min((w.after for ws in self._ticks.values() for w in ws), default=None)

    # --- releasing ---------------------------------------------------------------------------------------
    def deliver(self, messages: list[Message], last_id: int, gap_below: int | None = None) -> int:
        """Release every waiter that wants one of ``messages`` (ascending ids, everything up to
        ``last_id`` considered). ``gap_below``: ids below it after the previous batch were lost, so a
        waiter that needed them is released with ``missed``. Returns how many were released."""
        by_type: dict[str, list[Message]] = {}
        for m in messages:
            by_type.setdefault(m["type"], []).append(m)
        first_id = messages[0]["id"] if messages else last_id + 1
        shared: dict[tuple[str, ...], list[Message]] = {}  # most waiters are behind the whole batch
        released: list[tuple[Waiter, Delivery]] = []
        for message_type in by_type:
            waiters = self._by_type.pop(message_type, None)
            if not waiters:
                continue
            keep: set[Waiter] = set()
            for waiter in waiters:
                missed = gap_below is not None and waiter.after + 1 < gap_below
                if waiter.after < first_id:
                    wanted = shared.get(waiter.types)
                    if wanted is None:
                        wanted = shared[waiter.types] = [m for m in messages if m["type"] in waiter.types]
                else:
                    wanted = [m for m in messages if m["id"] > waiter.after and m["type"] in waiter.types]
                if wanted or missed:
                    self._forget(waiter, skip_type=message_type)
                    released.append((waiter, (wanted, last_id, missed)))
                else:
                    keep.add(waiter)
            if keep:
                self._by_type[message_type] = keep
        if gap_below is not None:
            released += self._take_all(lambda w: w.after + 1 < gap_below, last_id)
        # fire only once the index is consistent: a callback may well start the next wait at once
        self._fire(released)
        return len(released)

    def _fire(self, released: list[tuple[Waiter, Delivery]]) -> None:
        """Fire a slice of released waiters now and the rest on the next reactor turns.

        Answering one waiter costs about 0.1 ms of CPU; firing 10,000 in one pass would write the first
        answer only after the last was built. In slices, answers leave (and clients read them) while the
        next ones are built.
        """
        now, rest = released[:self.release_slice], released[self.release_slice:]
        for waiter, delivery in now:
            if not waiter.called:  # a waiter cancelled since it was released stays silent
                waiter.callback(delivery)
        if rest:
            self.clock.callLater(0, self._fire, rest)

    def release_all(self, last_id: int, missed: bool) -> int:
        """Release every waiter with no messages (the log went back, or the bus stops)."""
        released = self._take_all(lambda w: True, last_id, missed)
        for waiter, delivery in released:
            waiter.callback(delivery)
        return len(released)

    def _take_all(
        self, which: Callable[[Waiter], bool], last_id: int, missed: bool = True,
    ) -> list[tuple[Waiter, Delivery]]:
        chosen = [w for ws in self._ticks.values() for w in ws if which(w)]
        for waiter in chosen:
            self._forget(waiter)
        return [(w, ([], last_id, missed)) for w in chosen]

    # --- bookkeeping -------------------------------------------------------------------------------------
    def _forget(self, waiter: Waiter, skip_type: str | None = None) -> None:
        if not waiter.held:
            return  # released already (and cancelled before its slice fired)
        waiter.held = False
        for t in waiter.types:
            if t == skip_type:
                continue
            bucket = self._by_type.get(t)
            if bucket is not None:
                bucket.discard(waiter)
                if not bucket:
                    del self._by_type[t]
        self._unschedule(waiter)
        self.count -= 1

    def _cancelled(self, waiter: defer.Deferred[Delivery | None]) -> None:
        # the caller went away (an HTTP client disconnected): nothing may keep the waiter alive
        assert isinstance(waiter, Waiter)
        self._forget(waiter)

    def _schedule(self, waiter: Waiter, timeout: float) -> None:
        now = self.clock.seconds()
        tick = math.ceil((now + timeout) / self.resolution)
        bucket = self._ticks.get(tick)
        if bucket is None:
            bucket = self._ticks[tick] = set()
            self._timers[tick] = self.clock.callLater(max(0.0, tick * self.resolution - now), self._expire, tick)
        bucket.add(waiter)
        waiter.tick = tick

    def _unschedule(self, waiter: Waiter) -> None:
        bucket = self._ticks.get(waiter.tick)
        if bucket is None:
            return
        bucket.discard(waiter)
        if not bucket:
            del self._ticks[waiter.tick]
            timer = self._timers.pop(waiter.tick, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _expire(self, tick: int) -> None:
        self._timers.pop(tick, None)
        expired = list(self._ticks.get(tick, ()))
        for waiter in expired:
            self._forget(waiter)
        for waiter in expired:
            waiter.callback(None)
