"""The worker as a node runs it: real store, real streams; fake time only for time limits and heartbeats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from ovsd.service import build_node
from ovsd.store import keys
from ovsd.store.connection import Store, StoreUnavailable
from ovsd.tasks import Route, TaskContext, TaskEngine, TaskRegistry, TaskWorker
from tests.conftest import node_config
from tests.tasks_support import eventually

MID = "mid-data"  # the machine_id node_config gives the node of data_dir "data"

StartWorker = Callable[..., TaskWorker]


@pytest_twisted.async_yield_fixture
async def start_worker(store: Store, data_dir: Path) -> AsyncIterator[StartWorker]:
    """Start the worker of node ``node`` (machine_id ``mid-<node>``) alone, built as build_node wires it;
    ``clock`` is its time (task limits, heartbeats), ``options`` override its own options."""
    started: list[TaskWorker] = []

    def start(
        registry: TaskRegistry, concurrency: int = 2, clock: Any = None, node: str = "data", **options: Any,
    ) -> TaskWorker:
        config = node_config(data_dir.parent / node)
        built = build_node(config, reactor, clock, store=store, registry=registry, concurrency=concurrency,
                           worker_options=options)
        worker = built.worker
        worker.startService()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.running:
            await worker.stopService()


def engine_for(store: Store, registry: TaskRegistry, clock: Any = reactor) -> TaskEngine:
    engine = TaskEngine(store, registry, MID, clock)
    engine.startService()
    return engine


class Gates:
    """Tasks that run until the test opens their gate; who ran, and how many at once."""

    def __init__(self) -> None:
        self.gates: dict[str, defer.Deferred[None]] = {}
        self.runs: list[str] = []
        self.running = 0
        self.most = 0
        self.cancelled: list[str] = []

    async def hold(self, ctx: TaskContext, key: str, result: Any = None) -> Any:
        self.runs.append(key)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gates.setdefault(key, defer.Deferred())
        except defer.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.running -= 1
        return result

    def open(self, key: str) -> None:
        self.gates.setdefault(key, defer.Deferred()).callback(None)


async def status_of(engine: TaskEngine, task_id: str, status: str) -> bool:
    record = await engine.get(task_id)
    return record is not None and record["status"] == status


@pytest_twisted.ensureDeferred
async def test_a_task_queued_while_the_worker_is_stopped_runs_when_it_starts(
    store: Store, start_worker: StartWorker,
) -> None:
    registry = TaskRegistry()

    @registry.task(name="sr.echo", route=Route.STORAGEROUTER)
    async def echo(ctx: TaskContext, word: str) -> str:
        return word * 2

    engine = engine_for(store, registry)
    try:
        task_id = await engine.enqueue("sr.echo", {"word": "ab"}, node=MID)
        assert (await engine.wait(task_id, 0.2))["status"] == "PENDING"  # type: ignore[index]
        start_worker(registry)
        record = await engine.wait(task_id, 10)
        assert record is not None and record["status"] == "SUCCESS" and record["result"] == "abab"
        assert record["worker"] == "ovsd@data"
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_a_run_reports_progress_records_its_result_and_fires_the_completion_hook(
    store: Store, start_worker: StartWorker,
) -> None:
    gates, registry = Gates(), TaskRegistry()

    @registry.task(name="any.job", route=Route.ANY)
    async def job(ctx: TaskContext, key: str) -> dict[str, Any]:
        await ctx.progress(42.7)
        await gates.hold(ctx, key)
        return {"key": key, "task": ctx.task_id, "node": ctx.node.config.node.name}

    completed: list[tuple[str, dict[str, Any]]] = []

    async def on_complete(task_id: str, record: dict[str, Any]) -> None:
        completed.append((task_id, record))

    # the waiting engine's clock never moves: only the completion notice can end its wait
    engine = engine_for(store, registry, Clock())
    try:
        start_worker(registry, on_complete=on_complete)
        task_id = await engine.enqueue("any.job", {"key": "k"})
        await eventually(lambda: defer.succeed(gates.running == 1))
        started = await engine.get(task_id)
        assert started is not None and started["progress"] == 42 and started["worker"] == "ovsd@data"
        assert started["time_start"] is not None
        overview = await engine.overview()
        assert [i["id"] for i in overview["active"]["ovsd@data"]] == [task_id]

        waiting = defer.ensureDeferred(engine.wait(task_id, 60))
        gates.open("k")
        record = await waiting
        assert record is not None and record["status"] == "SUCCESS"
        assert record["result"] == {"key": "k", "task": task_id, "node": "data"}
        assert record["progress"] == 100 and record["time_done"] >= record["time_start"]
        assert 86000 < await store.execute("TTL", keys.task(task_id)) <= 86400
        await eventually(lambda: defer.succeed(completed))
        assert completed == [(task_id, record)]
        # nothing left behind: not in the index, the entry acked and deleted
        assert await store.execute("SCARD", keys.TASKS_UNFINISHED) == 0
        assert await store.execute("XLEN", keys.SHARED_QUEUE) == 0
        assert (await store.execute("XPENDING", keys.SHARED_QUEUE, "workers"))[0] == 0
        assert (await engine.overview())["active"] == {"ovsd@data": []}
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_an_exception_is_a_failure_with_its_text(store: Store, start_worker: StartWorker) -> None:
    registry = TaskRegistry()

    @registry.task(name="any.broken")
    async def broken(ctx: TaskContext) -> None:
        raise RuntimeError("vDisk is not a template")

    @registry.task(name="any.unserializable")
    async def unserializable(ctx: TaskContext) -> Any:
        return object()

    engine = engine_for(store, registry)
    try:
        start_worker(registry)
        failed = await engine.wait(await engine.enqueue("any.broken"), 10)
        assert failed is not None and failed["status"] == "FAILURE"
        assert failed["error"] == "vDisk is not a template" and failed["result"] is None
        odd = await engine.wait(await engine.enqueue("any.unserializable"), 10)
        assert odd is not None and odd["status"] == "FAILURE" and "not JSON" in odd["error"]
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_a_task_over_its_time_limit_fails_and_is_cancelled(store: Store, start_worker: StartWorker) -> None:
    gates, registry, clock = Gates(), TaskRegistry(), Clock()
    registry.task(name="any.slow", timeout=300)(gates.hold)
    engine = engine_for(store, registry)
    try:
        start_worker(registry, clock=clock)
        task_id = await engine.enqueue("any.slow", {"key": "never"})
        await eventually(lambda: status_of(engine, task_id, "STARTED"))
        clock.advance(299)
        assert (await engine.get(task_id))["status"] == "STARTED"  # type: ignore[index]
        clock.advance(2)
        record = await engine.wait(task_id, 10)
        assert record is not None and record["status"] == "FAILURE"
        assert record["error"] == "timeout: no result within 300 s"
        assert gates.cancelled == ["never"]
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_no_more_tasks_run_at_once_than_the_concurrency(store: Store, start_worker: StartWorker) -> None:
    gates, registry = Gates(), TaskRegistry()
    registry.task(name="any.held")(gates.hold)
    registry.task(name="sr.held", route=Route.STORAGEROUTER)(gates.hold)
    engine = engine_for(store, registry)
    try:
        worker = start_worker(registry, concurrency=2)
        ids = [await engine.enqueue("any.held", {"key": f"a{n}"}) for n in range(3)]
        ids += [await engine.enqueue("sr.held", {"key": f"n{n}"}, node=MID) for n in range(3)]
        await eventually(lambda: defer.succeed(gates.running == 2))
        for _ in range(3):  # a few more round trips: nobody else gets started
            await store.execute("PING")
        assert gates.running == 2 and worker.running_tasks == 2
        assert sorted([(await engine.get(i))["status"] for i in ids]) == ["PENDING"] * 4 + ["STARTED"] * 2  # type: ignore[index]
        for n in range(3):
            gates.open(f"a{n}")
            gates.open(f"n{n}")
        for task_id in ids:
            assert (await engine.wait(task_id, 10))["status"] == "SUCCESS"  # type: ignore[index]
        assert gates.most == 2 and sorted(gates.runs) == ["a0", "a1", "a2", "n0", "n1", "n2"]
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_a_task_revoked_before_it_started_never_runs(store: Store, start_worker: StartWorker) -> None:
    gates, registry = Gates(), TaskRegistry()
    registry.task(name="any.held")(gates.hold)
    engine = engine_for(store, registry)
    try:
        revoked = await engine.enqueue("any.held", {"key": "revoked"})
        assert await engine.revoke(revoked)
        start_worker(registry)
        after = await engine.enqueue("any.held", {"key": "after"}, )
        await eventually(lambda: status_of(engine, after, "STARTED"))
        assert await engine.revoke(after) is False  # already running
        gates.open("after")
        assert (await engine.wait(after, 10))["status"] == "SUCCESS"  # type: ignore[index]
        assert gates.runs == ["after"]
        assert (await engine.get(revoked))["status"] == "REVOKED"  # type: ignore[index]
        assert await store.execute("XLEN", keys.SHARED_QUEUE) == 0  # the revoked entry was acked too
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_the_worker_loop_beats_while_it_runs(store: Store, start_worker: StartWorker) -> None:
    clock, beats = Clock(), []

    async def on_heartbeat() -> None:
        beats.append(clock.seconds())

    worker = start_worker(TaskRegistry(), clock=clock, on_heartbeat=on_heartbeat, heartbeat_interval=5)
    assert beats == [0]
    clock.advance(5)
    clock.advance(5)
    assert beats == [0, 5, 10]
    await worker.stopService()
    clock.advance(5)
    assert beats == [0, 5, 10]


@pytest_twisted.ensureDeferred
async def test_stopping_interrupts_a_task_that_cannot_run_twice_and_reruns_one_that_can(
    store: Store, start_worker: StartWorker,
) -> None:
    gates, registry = Gates(), TaskRegistry()
    registry.task(name="sr.once", route=Route.STORAGEROUTER, idempotent=False)(gates.hold)
    registry.task(name="sr.again", route=Route.STORAGEROUTER, idempotent=True)(gates.hold)
    engine = engine_for(store, registry)
    try:
        worker = start_worker(registry, stop_grace=0.05)
        once = await engine.enqueue("sr.once", {"key": "once"}, node=MID)
        again = await engine.enqueue("sr.again", {"key": "again", "result": "ok"}, node=MID)
        await eventually(lambda: defer.succeed(gates.running == 2))
        await worker.stopService()
        assert sorted(gates.cancelled) == ["again", "once"]
        record = await engine.get(once)
        assert record is not None and record["status"] == "FAILURE" and record["error"] == "interrupted"
        assert (await engine.get(again))["status"] == "STARTED"  # type: ignore[index]

        gates.gates.pop("again")
        gates.open("again")  # the next run finds its gate open
        start_worker(registry)
        record = await engine.wait(again, 10)
        assert record is not None and record["status"] == "SUCCESS" and record["result"] == "ok"
        assert gates.runs.count("again") == 2 and gates.runs.count("once") == 1
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_a_live_worker_keeps_its_shared_task_while_it_runs_longer_than_the_claim_time(
    store: Store, start_worker: StartWorker,
) -> None:
    gates, registry = Gates(), TaskRegistry()
    registry.task(name="any.long", idempotent=False)(gates.hold)
    engine = engine_for(store, registry)
    try:
        start_worker(registry, claim_idle=0.2)
        task_id = await engine.enqueue("any.long", {"key": "long", "result": 1})
        await eventually(lambda: defer.succeed(gates.running == 1))
        start_worker(registry, node="b", claim_idle=0.2)  # looks for abandoned entries every 0.07 s
        await task.deferLater(reactor, 1.0, lambda: None)  # five claim times
        gates.open("long")
        record = await engine.wait(task_id, 10)
        assert record is not None and record["status"] == "SUCCESS" and record["worker"] == "ovsd@data"
        assert gates.runs == ["long"]
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_the_worker_carries_on_after_losing_its_connections_and_the_stores_data(
    store: Store, start_worker: StartWorker,
) -> None:
    registry = TaskRegistry()

    @registry.task(name="any.echo")
    async def echo(ctx: TaskContext, word: str) -> str:
        return word

    engine = engine_for(store, registry)
    try:
        start_worker(registry)
        assert (await engine.wait(await engine.enqueue("any.echo", {"word": "before"}), 10))["result"] == "before"  # type: ignore[index]
        # every other connection drops (the worker's blocked read among them), and the data is gone
        await store.execute("FLUSHALL")
        await store.execute("CLIENT", "KILL", "TYPE", "normal")

        async def enqueue_when_reconnected() -> str | None:
            try:
                return await engine.enqueue("any.echo", {"word": "after"})
            except StoreUnavailable:
                return None

        task_id = await eventually(enqueue_when_reconnected)
        record = await engine.wait(task_id, 15)
        assert record is not None and record["status"] == "SUCCESS" and record["result"] == "after"
    finally:
        await engine.stopService()
