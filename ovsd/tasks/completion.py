"""Waking whoever waits for a task, on any node, the moment it finishes, without polling its record.

Every finish (worker outcome, revoke, fail-fast) appends the task id to the ``tasks:done`` stream in the
same atomic step that writes the record. Each process runs at most one blocking reader of that stream (on
its own connection) and fires the Deferreds registered for the ids it sees. A waiter registers BEFORE it
reads the record, and the reader's position was fixed before that, so a finish is either visible in the
record or still ahead of the reader: never lost in between.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from ovsd.store import keys
from ovsd.store.blocking import BlockingReader
from ovsd.store.connection import Store, StoreUnavailable
from ovsd.store.errors import StoreReplyError
from ovsd.tasks.records import pairs

log = Logger()


class CompletionWatcher:
    """The one reader of the done stream of this process and the waiters it wakes."""

    block_ms = 5000
    retry_delay = 0.5

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiters: dict[str, list[defer.Deferred[bool]]] = {}
        self._start_lock = defer.DeferredLock()
        self._connection: BlockingReader | None = None
        self._position: str | None = None
        self._loop: defer.Deferred[None] | None = None
        self._stopped = False

    async def watch(self, task_id: str) -> defer.Deferred[bool]:
        """A Deferred that fires True once ``task_id`` finished, False when the reader lost track (look again).

        Call it before reading the record. Cancelling the Deferred forgets the waiter.
        """
        await self._start_lock.run(self._ensure_reading)

        def forget(d: defer.Deferred[bool]) -> None:
            waiting = self._waiters.get(task_id, [])
            if d in waiting:
                waiting.remove(d)
            if not waiting:
                self._waiters.pop(task_id, None)

        d: defer.Deferred[bool] = defer.Deferred(forget)
        self._waiters.setdefault(task_id, []).append(d)
        return d

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def waiting(self) -> int:
        """How many waits are in progress (for statistics)."""
        return sum(len(w) for w in self._waiters.values())

    async def _ensure_reading(self) -> None:
        if self._stopped:
            raise StoreUnavailable("the task waiter is stopped")
        if self._loop is not None:
            return
        # where the stream ends now: everything after it is news
        last = await self.store.execute("XREVRANGE", keys.TASKS_DONE, "+", "-", "COUNT", 1)
        self._position = last[0][0] if last else "0-0"
        self._connection = BlockingReader(
            self.store, "task waiter", self.block_ms / 1000 + self.store.command_timeout,
            retry_initial=self.retry_delay,
        )
        self._connection.start()
        self._loop = defer.ensureDeferred(self._read())

    async def _read(self) -> None:
        connection = self._connection
        assert connection is not None
        while not self._stopped:
            try:
                reply = await connection.execute(
                    "XREAD", "COUNT", 1000, "BLOCK", self.block_ms, "STREAMS", keys.TASKS_DONE, self._position,
                )
            except (StoreUnavailable, StoreReplyError) as e:
                if self._stopped:
                    return
                # news may have been missed while the connection was down: every waiter looks again
                log.warn("task waiter: {error}; waiters look again", error=str(e))
                self._wake_all()
                await connection.back_off()
                continue
            except defer.CancelledError:
                raise
            except Exception:
                log.failure("task waiter: unexpected reply; waiters look again")
                self._wake_all()
                await connection.back_off()
                continue
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    self._position = entry_id
                    task_id = pairs(fields).get("id")
                    for d in self._waiters.pop(task_id or "", ()):
                        d.callback(True)

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for ds in waiters.values():
            for d in ds:
                d.callback(False)

    async def stop(self) -> None:
        self._stopped = True
        self._wake_all()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.stop()
        loop, self._loop = self._loop, None
        if loop is not None:
            await loop
