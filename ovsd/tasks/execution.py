"""Running one queue entry: mark it STARTED, run its function under its time limit, record the outcome.

The outcome, the index upkeep, the ack and the completion notice are one atomic script, so an entry is
acked only once its outcome is recorded, and a record never says finished while its entry could still run.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet import defer, task
from twisted.logger import Logger

from ovsd.context import NodeContext
from ovsd.store import keys
from ovsd.store.connection import Store, StoreUnavailable
from ovsd.tasks import scripts
from ovsd.tasks.engine import CompletionHook
from ovsd.tasks.records import FAILURE, FINISHED_TTL, INTERRUPTED, STARTED, SUCCESS, decode, pairs
from ovsd.tasks.registry import TaskContext, TaskDefinition, TaskRegistry, UnknownTask

log = Logger()

T = TypeVar("T")

Outcome = tuple[str, str, str]  # (status, field, value): SUCCESS/result/<json> or FAILURE/error/<text>


class TaskExecution:
    """How a worker handles the entries delivered to it."""

    retry_delay = 0.5

    def __init__(
        self, context: NodeContext, store: Store, reactor: Any, registry: TaskRegistry, worker: str, group: str,
        clock: Any, on_complete: CompletionHook | None, stopping: Callable[[], bool],
    ) -> None:
        """``context`` is handed on to the task functions (``TaskContext.node``); ``clock`` times the task limits
        and stamps the records, the reactor paces the retries."""
        self.context = context
        self.store = store
        self.reactor = reactor
        self.registry = registry
        self.worker = worker
        self.group = group
        self.clock = clock
        self.on_complete = on_complete
        self.stopping = stopping

    async def _retrying(self, action: Callable[[], Awaitable[T]]) -> T:
        """Run a store step again while the store is away (not once the worker stops)."""
        while True:
            try:
                return await action()
            except StoreUnavailable as e:
                if self.stopping():
                    raise
                log.warn("task worker: store unavailable ({error}), retrying", error=str(e))
                await task.deferLater(self.reactor, self.retry_delay, lambda: None)

    async def handle(self, queue: str, entry_id: str, task_id: str | None, recovering: bool) -> None:
        """Run the task of one entry, or settle it without running (revoked, gone, interrupted)."""
        if not task_id:
            await self.store.execute("XACK", queue, self.group, entry_id)
            return
        mode = "new"
        if recovering:
            # delivered to this consumer before: STARTED means a run was interrupted
            status, name = await self._retrying(
                lambda: self.store.execute("HMGET", keys.task(task_id), "status", "name"),
            )
            if status == STARTED:
                definition = self._definition(name)
                if definition is None or not definition.idempotent:
                    log.warn("task {task_id} ({name}) was interrupted", task_id=task_id, name=name)
                    await self._finish(queue, entry_id, task_id, (FAILURE, "error", INTERRUPTED))
                    return
                log.info("task {task_id} ({name}) was interrupted: running it again", task_id=task_id, name=name)
                mode = "restart"
        record = await self._start(queue, entry_id, task_id, mode)
        if record is None:
            return
        definition = self._definition(record["name"])
        if definition is None:
            await self._finish(queue, entry_id, task_id, (FAILURE, "error", f"unknown task {record['name']}"))
            return
        try:
            outcome = await self._run(definition, task_id, record["kwargs"])
        except defer.CancelledError:
            # the worker stops: a task that may run again is left to run again at the next start
            if not definition.idempotent:
                await self._finish(queue, entry_id, task_id, (FAILURE, "error", INTERRUPTED))
            raise
        await self._finish(queue, entry_id, task_id, outcome)

    def _definition(self, name: str | None) -> TaskDefinition | None:
        try:
            return self.registry.get(name or "")
        except UnknownTask:
            return None

    async def _start(self, queue: str, entry_id: str, task_id: str, mode: str) -> dict[str, Any] | None:
        """Mark the task STARTED and return its name and kwargs; None when it must not run (revoked,
        finished, gone, run elsewhere)."""
        attempt = {"mode": mode}

        async def start() -> Any:
            try:
                return await self.store.script(scripts.START, [keys.task(task_id), queue], [
                    self.group, entry_id, repr(self.clock.seconds()), self.worker, attempt["mode"],
                ])
            except StoreUnavailable:
                # the script may have run: a STARTED status we then find is our own
                attempt["mode"] = "restart"
                raise

        reply = await self._retrying(start)
        if isinstance(reply, list):
            name, kwargs = reply
            return {"name": name, "kwargs": json.loads(kwargs or "{}")}
        log.info("task {task_id} not run: {status}", task_id=task_id, status=reply)
        return None

    async def _run(self, definition: TaskDefinition, task_id: str, kwargs: dict[str, Any]) -> Outcome:
        async def report(percent: float) -> None:
            value = max(0, min(100, int(percent)))
            await self.store.script(scripts.PROGRESS, [keys.task(task_id)], [value])

        context = TaskContext(self.context, task_id, definition.name, report)
        log.debug("task {task_id} ({name}) started", task_id=task_id, name=definition.name)
        running: defer.Deferred[Any] = defer.ensureDeferred(definition.function(context, **kwargs))
        running.addTimeout(definition.timeout, self.clock)
        try:
            result = await running
        except defer.TimeoutError:
            log.warn("task {task_id} ({name}) timed out", task_id=task_id, name=definition.name)
            return FAILURE, "error", f"timeout: no result within {definition.timeout:g} s"
        except defer.CancelledError:
            raise
        except Exception as e:
            log.failure("task {task_id} ({name}) failed", task_id=task_id, name=definition.name)
            return FAILURE, "error", str(e) or type(e).__name__
        try:
            return SUCCESS, "result", json.dumps(result)
        except (TypeError, ValueError) as e:
            return FAILURE, "error", f"the result is not JSON: {e}"

    async def _finish(self, queue: str, entry_id: str, task_id: str, outcome: Outcome) -> None:
        status, field, value = outcome

        async def finish() -> Any:
            return await self.store.script(
                scripts.FINISH, [keys.task(task_id), queue, keys.TASKS_UNFINISHED, keys.TASKS_DONE],
                [self.group, entry_id, task_id, status, field, value, repr(self.clock.seconds()), FINISHED_TTL,
                 "100" if status == SUCCESS else "", "1" if self.on_complete is not None else "0"],
            )

        written, *fields = await self._retrying(finish)
        log.debug("task {task_id} {status}", task_id=task_id, status=status)
        if written and self.on_complete is not None:
            try:
                await self.on_complete(task_id, decode(pairs(fields[0])))
            except Exception:
                log.failure("task {task_id}: completion hook failed", task_id=task_id)
