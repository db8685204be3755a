"""The worker service: consumes this node's task queue and the shared one, runs up to ``concurrency`` tasks.

Both queues are streams with one consumer group; the consumer name is the node's machine_id, so after a
crash the entries delivered to it are still its own: at start they are claimed back (an idempotent task
runs again, another ends FAILURE "interrupted"). Entries of the shared queue left by a dead node are taken
over by whichever worker sees them idle for ``claim_idle`` seconds; a live worker keeps the entries it
holds from looking idle. The blocking read has a connection of its own (``ovsd.store.blocking``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.context import NodeContext
from ovsd.store import keys
from ovsd.store.blocking import BlockingReader
from ovsd.store.connection import Store, StoreUnavailable
from ovsd.store.errors import StoreReplyError
from ovsd.tasks import scripts
from ovsd.tasks.engine import CompletionHook
from ovsd.tasks.execution import TaskExecution
from ovsd.tasks.records import pairs, worker_name
from ovsd.tasks.registry import TaskRegistry

log = Logger()

#: the consumer group of every task queue
GROUP = "workers"

HeartbeatHook = Callable[[], Coroutine[Any, Any, None]]

Entry = tuple[str, str, dict[str, str]]  # (queue, entry id, fields)


class TaskWorker(Service):
    """Runs the tasks queued for this node and for any node."""

    name = "worker"
    block_ms = 5000
    retry_delay = 0.5

    def __init__(
        self, context: NodeContext, store: Store, reactor: Any, registry: TaskRegistry, *, machine_id: str,
        node_name: str, concurrency: int, clock: Any = None, on_complete: CompletionHook | None = None,
        on_heartbeat: HeartbeatHook | None = None, heartbeat_interval: float = 5.0, claim_idle: float = 60.0,
        stop_grace: float = 10.0,
    ) -> None:
        """``context`` is only handed on to the task functions (``TaskContext.node``). ``clock`` times task
        timeouts and heartbeats (the reactor when None); reconnection and stop delays use the reactor."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.reactor = reactor
        self.machine_id = machine_id
        self.concurrency = concurrency
        self.registry = registry
        self.clock = clock if clock is not None else reactor
        self.on_heartbeat = on_heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.claim_idle = claim_idle
        self.stop_grace = stop_grace
        self.worker = worker_name(node_name)
        self.queue = keys.task_queue(machine_id)
        self.execution = TaskExecution(
            context, store, reactor, registry, self.worker, GROUP, self.clock, on_complete, self._stopping_now,
        )
        self._slots = defer.DeferredSemaphore(concurrency)
        self._held: dict[str, tuple[str, defer.Deferred[None]]] = {}  # entry id -> (queue, its run)
        self._connection: BlockingReader | None = None
        self._loop: defer.Deferred[None] | None = None
        self._timers: list[task.LoopingCall] = []
        self._stopping = False
        self._reading = False

    # --- state -----------------------------------------------------------------------------------------
    @property
    def running_tasks(self) -> int:
        """Tasks being run right now (for statistics)."""
        # the reading loop holds a slot while it blocks on the queues: that slot runs no task
        return self.concurrency - self._slots.tokens - (1 if self._reading else 0)

    def _stopping_now(self) -> bool:
        return self._stopping

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._connection = BlockingReader(
            self.store, f"task worker {self.machine_id}", self.block_ms / 1000 + self.store.command_timeout,
            retry_initial=self.retry_delay,
        )
        self._connection.start()
        self._loop = defer.ensureDeferred(self._consume())
        self._loop.addErrback(self._consuming_failed)
        if self.on_heartbeat is not None:
            self._start_timer(self._beat, self.heartbeat_interval, self.clock)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return defer.ensureDeferred(self._stop())

    def _consuming_failed(self, failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            # the heartbeat stops with the loop, so the node shows the worker as failing
            log.failure("task worker {worker} stopped consuming", failure, worker=self.worker)

    def _start_timer(self, action: Callable[[], Coroutine[Any, Any, None]], interval: float, clock: Any) -> None:
        timer = task.LoopingCall(lambda: defer.ensureDeferred(action()))
        timer.clock = clock
        timer.start(interval, now=True)
        self._timers.append(timer)

    async def _stop(self) -> None:
        self._stopping = True
        for timer in self._timers:
            if timer.running:
                timer.stop()
        self._timers = []
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()  # a read in progress is dropped: its entries stay pending and are claimed back
            await loop
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.stop()
        # tasks in progress may finish within the grace; then they are cancelled (recorded "interrupted"
        # unless idempotent, which run again when the node is back)
        runs = [run for _, run in self._held.values()]
        if runs:
            def interrupt() -> None:
                for _, run in list(self._held.values()):
                    run.cancel()

            timer = self.reactor.callLater(self.stop_grace, interrupt)
            await defer.DeferredList(runs, consumeErrors=True)
            if timer.active():
                timer.cancel()

    async def _beat(self) -> None:
        # the heartbeat proves the consuming loop is alive: no beat once it is gone
        if self.on_heartbeat is None or self._loop is None or self._loop.called:
            return
        try:
            await self.on_heartbeat()
        except Exception:
            log.failure("worker heartbeat failed")

    async def _pause(self) -> None:
        if self._connection is not None:
            await self._connection.back_off()

    # --- consuming -------------------------------------------------------------------------------------
    async def _consume(self) -> None:
        while not self._stopping:
            try:
                await self._prepare()
                break
            except (StoreUnavailable, StoreReplyError) as e:
                if self._stopping:
                    return
                log.warn("task worker not ready: {error}", error=str(e))
                await self._pause()
        if self._stopping:
            return
        self._start_timer(self._maintain, max(self.claim_idle / 3, 0.05), self.reactor)
        log.info("task worker {worker} consuming {queue} and {shared} ({concurrency} at once)", worker=self.worker,
                 queue=self.queue, shared=keys.SHARED_QUEUE, concurrency=self.concurrency)
        while not self._stopping:
            await self._slots.acquire()
            self._reading = True
            try:
                entries = await self._read(self._slots.tokens + 1)
            except (StoreUnavailable, StoreReplyError) as e:
                self._slots.release()
                if self._stopping:
                    return
                log.warn("task worker read failed: {error}", error=str(e))
                await self._pause()
                if "NOGROUP" in str(e):  # the store lost its data: make the groups again
                    try:
                        await self._groups()
                    except (StoreUnavailable, StoreReplyError) as again:
                        log.warn("task worker cannot make its consumer groups: {error}", error=str(again))
                continue
            except defer.CancelledError:
                self._slots.release()
                raise
            except Exception:
                self._slots.release()
                log.failure("task worker read failed")
                await self._pause()
                continue
            finally:
                self._reading = False
            if not entries:
                self._slots.release()
                continue
            for n, entry in enumerate(entries):
                self._dispatch(entry, recovering=False, acquired=n == 0)

    async def _read(self, count: int) -> list[Entry]:
        assert self._connection is not None
        reply = await self._connection.execute(
            "XREADGROUP", "GROUP", GROUP, self.machine_id, "COUNT", count, "BLOCK", self.block_ms,
            "STREAMS", self.queue, keys.SHARED_QUEUE, ">", ">",
        )
        return [(queue, entry_id, pairs(fields)) for queue, entries in reply or () for entry_id, fields in entries]

    async def _groups(self) -> None:
        for queue in (self.queue, keys.SHARED_QUEUE):
            try:
                # from 0: entries queued before this node's worker first started are its work too
                await self.store.execute("XGROUP", "CREATE", queue, GROUP, "0", "MKSTREAM")
            except StoreReplyError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def _prepare(self) -> None:
        """Consumer groups, our worker name for the overview, and the entries we held when we stopped."""
        await self._groups()
        await self.store.execute("HSET", keys.TASK_WORKERS, self.machine_id, self.worker)
        for queue in (self.queue, keys.SHARED_QUEUE):
            after = "0"
            while True:
                reply = await self.store.execute(
                    "XREADGROUP", "GROUP", GROUP, self.machine_id, "COUNT", 100, "STREAMS", queue, after,
                )
                entries = reply[0][1] if reply else []
                if not entries:
                    break
                for entry_id, fields in entries:
                    after = entry_id
                    if entry_id not in self._held:
                        log.info("task worker: claiming back {entry} of {queue}", entry=entry_id, queue=queue)
                        self._dispatch((queue, entry_id, pairs(fields)), recovering=True, acquired=False)

    async def _maintain(self) -> None:
        """Keep the shared entries we hold fresh; take over those a dead worker left idle."""
        try:
            held = [entry_id for entry_id, (queue, _) in self._held.items() if queue == keys.SHARED_QUEUE]
            if held:
                await self.store.script(scripts.TOUCH, [keys.SHARED_QUEUE], [GROUP, self.machine_id, *held])
            free = self._slots.tokens
            if not free or self._stopping:
                return
            _, claimed, *_ = await self.store.execute(
                "XAUTOCLAIM", keys.SHARED_QUEUE, GROUP, self.machine_id, int(self.claim_idle * 1000), "0-0",
                "COUNT", free,
            )
            for entry_id, fields in claimed:
                if entry_id not in self._held and fields is not None:
                    log.info("task worker: taking over abandoned {entry}", entry=entry_id)
                    self._dispatch((keys.SHARED_QUEUE, entry_id, pairs(fields)), recovering=True, acquired=False)
        except (StoreUnavailable, StoreReplyError) as e:
            log.warn("task worker maintenance failed: {error}", error=str(e))

    # --- running ---------------------------------------------------------------------------------------
    def _dispatch(self, entry: Entry, *, recovering: bool, acquired: bool) -> None:
        """Run one delivered entry in a slot (waiting for one unless ``acquired``)."""
        queue, entry_id, fields = entry

        async def run() -> None:
            if not acquired:
                await self._slots.acquire()
            if self._stopping:  # not started: the entry stays pending and is claimed back at the next start
                self._slots.release()
                return
            try:
                await self.execution.handle(queue, entry_id, fields.get("id"), recovering)
            finally:
                self._slots.release()

        def done(result: Any) -> None:
            self._held.pop(entry_id, None)
            if isinstance(result, Failure) and not result.check(defer.CancelledError):
                log.failure("task worker: entry {entry} of {queue}", result, entry=entry_id, queue=queue)

        d = defer.ensureDeferred(run())
        if not d.called:
            self._held[entry_id] = (queue, d)
        d.addBoth(done)
