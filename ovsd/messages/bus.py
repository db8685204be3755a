"""The message bus of one process: ONE blocking reader of the log, and the long-polls it wakes.

The reader follows ``msg:log`` with XREAD BLOCK on a connection of its own (a blocked read holds its
connection; the shared pool must stay free) and hands each batch to the waiters of the types in it. A
long-poll first reads the log itself (one Lua call, shared by the long-polls that arrive together), so a
client that is behind is answered at once; only a client that is up to date registers a waiter. Nothing
polls: the blocking read is the only loop.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.messages.log import Message, from_entry, last_id
from ovsd.messages.subscriptions import SUBSCRIPTION_TTL, SubscriberView, read_many
from ovsd.messages.waiters import WaiterRegistry
from ovsd.store import keys
from ovsd.store.blocking import BlockingReader
from ovsd.store.connection import Store, StoreUnavailable

log = Logger()

MAX_WAIT = 60.0
# a wait re-reads the log when the reader moved past what it read; under a flood of messages of other
# types it gives up after this many reads and answers "nothing yet" with how far it looked (still exact)
_MAX_CATCH_UP = 10


def answer(messages: list[Message], last_message_id: int, types: list[str], missed: bool = False) -> dict[str, Any]:
    """The long-poll's body (contract §8)."""
    body: dict[str, Any] = {"messages": messages, "last_message_id": last_message_id, "subscriptions": types}
    if missed:
        body["missed"] = True
    return body


class MessageBus(Service):
    """Follows the message log and releases this process's long-poll waiters."""

    name = "bus"
    retry_initial = 0.05
    retry_max = 1.0

    def __init__(
        self, store: Store, reactor: Any = None, *, block_seconds: float = 30.0, batch_size: int = 1000,
        scan_limit: int = 1000, subscription_ttl: float = SUBSCRIPTION_TTL, timeout_resolution: float = 0.05,
        read_batch: int = 256,
    ) -> None:
        self.store = store
        self.reactor = reactor or store.reactor
        self.block_seconds = block_seconds
        self.batch_size = batch_size
        self.scan_limit = scan_limit
        self.subscription_ttl = subscription_ttl
        self.read_batch = read_batch
        self.waiters = WaiterRegistry(self.reactor, timeout_resolution)
        # every message up to here went through the reader (None until it knows where the log is)
        self.position: int | None = None
        self._reader: BlockingReader | None = None
        self._following: defer.Deferred[None] | None = None
        self._type_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._reads: _Reads = []
        self._reads_due: IDelayedCall | None = None
        # waits that come before the start are held (the reader serves them once it runs); after the
        # stop they are answered at once
        self._stopped = False

    @property
    def waiter_count(self) -> int:
        """Long-polls this process holds right now."""
        return self.waiters.count

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._stopped = False
        # a blocked read answers after block_seconds: only a connection silent well past that is dead
        self._reader = BlockingReader(self.store, "message bus", self.block_seconds + 10.0,
                                      retry_initial=self.retry_initial, retry_max=self.retry_max)
        self._reader.start()
        self._following = defer.Deferred.fromCoroutine(self._follow())

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._stopped = True
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # answer the long-polls now ("nothing new"), so the API drains at once instead of in 60 s
        self.waiters.release_all(self.position or 0, missed=False)
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()  # fails the blocked XREAD (or ends the pause), which ends the loop
        if self._following is not None:
            await self._following

    # --- the reader ------------------------------------------------------------------------------------
    async def _follow(self) -> None:
        resync = True
        healthy = False
        reader = self._reader
        while self.running and reader is not None and reader.started:
            try:
                if resync:
                    await self._resynchronise(reader)
                    resync = False
                    if not healthy:
                        log.info("message bus follows the log from message {position}", position=self.position)
                    healthy = True
                reply = await reader.execute(
                    "XREAD", "COUNT", self.batch_size, "BLOCK", int(self.block_seconds * 1000),
                    "STREAMS", keys.MESSAGE_LOG, f"{self.position}-0",
                )
            except Exception as e:
                if not self.running:
                    return
                resync = True
                if isinstance(e, StoreUnavailable):
                    if healthy:
                        log.warn("message bus lost the store ({error}); resuming when it is back", error=str(e))
                else:
                    log.failure("message bus reader failed; resuming", Failure())
                healthy = False
                await reader.back_off()
                continue
            reader.reset_back_off()
            if reply:
                self._dispatch(reply[0][1])

    async def _resynchronise(self, reader: BlockingReader) -> None:
        """Find where to read from: at start, after an outage, or after the store lost data."""
        newest = await last_id(reader)
        if self.position is None:
            # waiters registered before the reader knew the log need everything after their position
            lowest = self.waiters.lowest_after()
            self.position = newest if lowest is None else min(newest, lowest)
        elif newest < self.position:
            log.warn(
                "the message log went back from {position} to {newest} (the store lost data); "
                "waiters are told they missed messages", position=self.position, newest=newest,
            )
            self.position = newest
            self.waiters.release_all(newest, missed=True)

    def _dispatch(self, entries: list[Any]) -> None:
        messages: list[Message] = []
        for entry in entries:
            try:
                messages.append(from_entry(entry))
            except (ValueError, KeyError, TypeError):
                log.warn("skipping a malformed message log entry {entry!r}", entry=entry)
        if not messages:
            return
        assert self.position is not None
        first, last = messages[0]["id"], messages[-1]["id"]
        # ids are consecutive: a jump means the entries in between were trimmed before we read them
        gap_below = first if first > self.position + 1 else None
        self.position = max(self.position, last)
        self.waiters.deliver(messages, last, gap_below)

    # --- the long-poll ---------------------------------------------------------------------------------
    async def wait(self, sid: int, message_id: int, timeout: float = MAX_WAIT) -> dict[str, Any]:
        """Messages of the subscriber's types with id > message_id: at once when there are any, else as
        soon as one is published, else none after ``timeout`` seconds (at most 60).

        Cancel the call to abandon it (the API does when its client hangs up): the waiter is dropped at once."""
        timeout = min(max(timeout, 0.0), MAX_WAIT)
        message_id = max(message_id, 0)
        view = await self._read(sid, message_id)
        if message_id > view.last_id or message_id + 1 < view.oldest_id:
            # messages after message_id were trimmed (or the store lost them): the client must resync
            return answer(view.messages, view.scanned_to, view.types, missed=True)
        after = max(message_id, view.scanned_to)
        rounds = 1
        while not view.messages and (view.scanned_to < view.last_id or self._reader_passed(after)):
            if rounds == _MAX_CATCH_UP:
                return answer([], after, view.types)
            view = await self._read(sid, after)
            after = max(after, view.scanned_to)
            rounds += 1
        if view.messages or timeout == 0 or self._stopped:
            return answer(view.messages, after, view.types)
        types = self._type_sets.setdefault(tuple(view.types), tuple(view.types))
        delivery = await self.waiters.add(types, after, timeout)
        if delivery is None:
            # no matching message came: everything the reader has handed out since was looked at
            return answer([], max(after, self.position or 0), view.types)
        messages, last, missed = delivery
        # after a miss the client must start again from the log's present, even if that is behind it
        return answer(messages, last if missed else max(after, last), view.types, missed)

    def _reader_passed(self, after: int) -> bool:
        # the reader handed out messages after what we read, before we could register: read them ourselves
        return self.position is not None and self.position > after

    # --- the reads of the long-polls --------------------------------------------------------------------
    def _read(self, sid: int, after: int) -> defer.Deferred[SubscriberView]:
        """Read the log for one wait. The waits that arrive in one reactor turn share their store calls:
        when thousands of GUIs re-arm after a message, that is a few script calls, not thousands."""
        d: defer.Deferred[SubscriberView] = defer.Deferred()
        self._reads.append((sid, after, d))
        if self._reads_due is None:
            self._reads_due = self.reactor.callLater(0, self._flush_reads)
        return d

    def _flush_reads(self) -> None:
        self._reads_due = None
        pending, self._reads = self._reads, []
        for start in range(0, len(pending), self.read_batch):
            batch = pending[start:start + self.read_batch]
            reading = defer.Deferred.fromCoroutine(read_many(
                self.store, [(sid, after) for sid, after, _ in batch], self.scan_limit, self.subscription_ttl,
            ))
            reading.addCallbacks(_answer_reads, _fail_reads, callbackArgs=(batch,), errbackArgs=(batch,))


_Reads = list[tuple[int, int, defer.Deferred[SubscriberView]]]


def _answer_reads(views: list[SubscriberView], batch: _Reads) -> None:
    for (_, _, d), view in zip(batch, views, strict=True):
        if not d.called:  # a cancelled wait (its client went away) is left alone
            d.callback(view)


def _fail_reads(failure: Failure, batch: _Reads) -> None:
    for _, _, d in batch:
        if not d.called:
            d.errback(failure)
