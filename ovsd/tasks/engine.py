"""What the API and the controllers call: enqueue a task, revoke it, read it, wait for it, list the work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet import reactor as global_reactor
from twisted.logger import Logger

from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.tasks import scripts
from ovsd.tasks.completion import CompletionWatcher
from ovsd.tasks.records import FINISHED, FINISHED_TTL, PENDING, REVOKED, STARTED, decode, pairs, worker_name
from ovsd.tasks.registry import Route, TaskRegistry

log = Logger()

CompletionHook = Callable[[str, dict[str, Any]], Awaitable[None]]

#: the worker name under which tasks of the shared queue that no worker has taken yet are listed
SHARED_WORKER = worker_name("any")

_INFO_FIELDS = ("id", "name", "args", "kwargs", "status", "node", "time_created", "time_start", "worker")


class NodeUnavailable(Exception):
    """The node that must run a task is down: the task was recorded FAILURE at once (API: 503)."""

    def __init__(self, machine_id: str, task_id: str) -> None:
        super().__init__(f"node_unavailable: {machine_id}")
        self.machine_id = machine_id
        self.task_id = task_id


async def is_node_alive(store: Store, machine_id: str) -> bool:
    """Whether a node is up: its agent keeps ``node:<machine_id>:live`` alive with a TTL."""
    return bool(await store.execute("EXISTS", keys.node_live(machine_id)))


class TaskEngine(Service):
    """The task operations of one node. Its only resource is the waiter's connection, closed on stop."""

    name = "tasks"

    def __init__(
        self, store: Store, registry: TaskRegistry, machine_id: str, clock: Any = None,
        on_complete: CompletionHook | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.machine_id = machine_id
        self.clock = clock if clock is not None else global_reactor
        self.on_complete = on_complete
        self._watcher = CompletionWatcher(store)

    @property
    def waiting(self) -> int:
        """How many ``wait`` calls are blocked right now in this process (for statistics)."""
        return self._watcher.waiting

    def startService(self) -> None:
        super().startService()
        if self._watcher.stopped:  # started again after a stop
            self._watcher = CompletionWatcher(self.store)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return defer.ensureDeferred(self._watcher.stop())

    # --- enqueue / revoke ------------------------------------------------------------------------------
    def _target(self, name: str, route: Route, node: str | None) -> str | None:
        """The machine_id whose queue gets the task, or None for the shared queue."""
        if route is Route.STORAGEROUTER:
            if not node:
                raise ValueError(f"task {name} runs on a StorageRouter: give its machine_id")
            return node
        if route is Route.THIS_NODE:
            if node not in (None, self.machine_id):
                raise ValueError(f"task {name} runs on the node that enqueues it, not on {node}")
            return self.machine_id
        if node is not None:
            raise ValueError(f"task {name} runs on any node: it takes no node")
        return None

    async def enqueue(self, name: str, kwargs: dict[str, Any] | None = None, node: str | None = None) -> str:
        """Queue a task and return its id at once.

        ``node`` is the machine_id of the StorageRouter that must run it (Route.STORAGEROUTER only).
        UnknownTask for an undeclared name, ValueError for a wrong ``node``, TypeError for kwargs that are
        not JSON; NodeUnavailable when that node is down (the record is then FAILURE already).
        """
        definition = self.registry.get(name)
        target = self._target(name, definition.route, node)
        task_id = str(uuid.uuid4())
        task_keys = [keys.task(task_id), keys.task_queue(target) if target else keys.SHARED_QUEUE,
                     keys.TASKS_UNFINISHED, keys.TASKS_DONE]
        # this node is alive by definition (it is the one asking), even before its agent first says so
        if target is not None and target != self.machine_id:
            task_keys.append(keys.node_live(target))
        queued = await self.store.script(scripts.ENQUEUE, task_keys, [
            task_id, name, "[]", json.dumps(kwargs or {}), target or "", repr(self.clock.seconds()), FINISHED_TTL,
        ])
        if not queued:
            assert target is not None
            log.warn("task {task_id} ({name}) refused: node {node} is down", task_id=task_id, name=name, node=target)
            await self._completed(task_id)
            raise NodeUnavailable(target, task_id)
        return task_id

    async def revoke(self, task_id: str) -> bool:
        """Revoke a task that has not started; False if it is unknown, running or finished."""
        revoked = await self.store.script(
            scripts.REVOKE, [keys.task(task_id), keys.TASKS_UNFINISHED, keys.TASKS_REVOKED, keys.TASKS_DONE],
            [task_id, repr(self.clock.seconds()), FINISHED_TTL],
        )
        if revoked:
            await self._completed(task_id)
        return bool(revoked)

    async def _completed(self, task_id: str) -> None:
        if self.on_complete is None:
            return
        record = await self.get(task_id)
        if record is not None:
            try:
                await self.on_complete(task_id, record)
            except Exception:
                log.failure("task {task_id}: completion hook failed", task_id=task_id)

    # --- reading ---------------------------------------------------------------------------------------
    async def get(self, task_id: str) -> dict[str, Any] | None:
        """The task record, or None for an unknown (or expired) id."""
        fields = pairs(await self.store.execute("HGETALL", keys.task(task_id)))
        if "status" not in fields:
            return None
        return decode(fields)

    async def wait(self, task_id: str, timeout: float) -> dict[str, Any] | None:
        """The record once the task finished, or as it is after ``timeout`` seconds; None if unknown.

        Blocks on the completion stream (any node may have run the task), never polls the record.
        """
        status = await self._status(task_id)
        if status is None or status in FINISHED or timeout <= 0:
            return await self.get(task_id)
        deadline = self.clock.seconds() + timeout
        while True:
            woken = await self._watcher.watch(task_id)
            status = await self._status(task_id)
            remaining = deadline - self.clock.seconds()
            if status is None or status in FINISHED or remaining <= 0:
                woken.addErrback(lambda _: None)
                woken.cancel()
                return await self.get(task_id)
            woken.addTimeout(remaining, self.clock)
            try:
                finished = await woken
            except defer.TimeoutError:
                return await self.get(task_id)
            if finished:
                return await self.get(task_id)

    async def _status(self, task_id: str) -> str | None:
        status = await self.store.execute("HGET", keys.task(task_id), "status")
        return str(status) if status is not None else None

    async def overview(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """The original's worker inspection: active (STARTED), reserved (PENDING on a node's queue),
        scheduled (PENDING on the shared queue, under ``ovsd@any``), revoked (REVOKED, still kept);
        each keyed by worker name, every known worker present."""
        unfinished, _, revoked, workers = await self.store.pipeline([
            ("SMEMBERS", keys.TASKS_UNFINISHED),
            ("ZREMRANGEBYSCORE", keys.TASKS_REVOKED, "-inf", repr(self.clock.seconds() - FINISHED_TTL)),
            ("ZRANGE", keys.TASKS_REVOKED, 0, -1),
            ("HGETALL", keys.TASK_WORKERS),
        ])
        names = pairs(workers)
        ids = list(unfinished or ()) + [i for i in revoked or () if i not in set(unfinished or ())]
        rows = await self.store.pipeline([("HMGET", keys.task(i), *_INFO_FIELDS) for i in ids])
        result: dict[str, dict[str, list[dict[str, Any]]]] = {
            kind: {name: [] for name in names.values()} for kind in ("active", "scheduled", "reserved", "revoked")
        }
        gone = [i for i, row in zip(ids, rows, strict=True) if not row or not row[4]]
        if gone:  # records deleted behind our back (never by us): forget them
            await self.store.execute("SREM", keys.TASKS_UNFINISHED, *gone)
        for row in sorted((r for r in rows if r and r[4]), key=lambda r: float(r[6] or 0)):
            info = decode(dict(zip(_INFO_FIELDS, row, strict=True)))
            node = info["node"]
            owner = names.get(node, worker_name(node)) if node else SHARED_WORKER
            kind = {STARTED: "active", REVOKED: "revoked"}.get(info["status"])
            if info["status"] == PENDING:
                kind = "reserved" if node else "scheduled"
            if kind is None:  # finished since the index was read
                continue
            worker = info["worker"] or owner
            result[kind].setdefault(worker, []).append({
                "id": info["id"], "name": info["name"], "args": info["args"], "kwargs": info["kwargs"],
                "time_start": info["time_start"], "worker": worker,
            })
        return result

