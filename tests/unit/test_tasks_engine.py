"""The task engine as the API and controllers use it: enqueue, fail fast, revoke, read, wait, overview."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.tasks import (
    NodeUnavailable,
    Route,
    TaskContext,
    TaskEngine,
    TaskRegistry,
    UnknownTask,
    api_view,
    is_node_alive,
)
from tests.tasks_support import eventually

OTHER = "mid-other"


def registry_with_tasks() -> TaskRegistry:
    registry = TaskRegistry()

    async def noop(ctx: TaskContext, **kwargs: Any) -> Any:
        return kwargs

    registry.task(name="sr.work", route=Route.STORAGEROUTER)(noop)
    registry.task(name="local.work", route=Route.THIS_NODE)(noop)
    registry.task(name="any.work", route=Route.ANY)(noop)
    return registry


@pytest_twisted.async_yield_fixture
async def engine(store: Store) -> AsyncIterator[TaskEngine]:
    completed: list[tuple[str, dict[str, Any]]] = []

    async def on_complete(task_id: str, record: dict[str, Any]) -> None:
        completed.append((task_id, record))

    e = TaskEngine(store, registry_with_tasks(), "mid-self", reactor, on_complete=on_complete)
    e.completed = completed  # type: ignore[attr-defined]
    e.startService()
    yield e
    await e.stopService()


async def node_is_alive(store: Store, machine_id: str) -> None:
    await store.execute("SET", keys.node_live(machine_id), "1", "EX", 30)


async def queued_ids(store: Store, queue: str) -> list[str]:
    return [dict(zip(f[::2], f[1::2], strict=True))["id"] for _, f in await store.execute("XRANGE", queue, "-", "+")]


@pytest_twisted.ensureDeferred
async def test_enqueue_records_the_task_and_queues_it_where_it_must_run(engine: TaskEngine, store: Store) -> None:
    await node_is_alive(store, OTHER)
    bound = await engine.enqueue("sr.work", {"files": "a,b"}, node=OTHER)
    local = await engine.enqueue("local.work", {})
    shared = await engine.enqueue("any.work")

    record = await engine.get(bound)
    assert record is not None
    assert record["id"] == bound and record["name"] == "sr.work"
    assert record["status"] == "PENDING" and record["node"] == OTHER
    assert record["kwargs"] == {"files": "a,b"} and record["args"] == []
    assert record["result"] is None and record["error"] is None and record["time_start"] is None
    assert abs(record["time_created"] - reactor.seconds()) < 5
    assert await queued_ids(store, keys.task_queue(OTHER)) == [bound]
    # this node needs no liveness key: it is the one asking
    assert await queued_ids(store, keys.task_queue("mid-self")) == [local]
    assert (await engine.get(local))["node"] == "mid-self"  # type: ignore[index]
    assert await queued_ids(store, keys.SHARED_QUEUE) == [shared]
    assert (await engine.get(shared))["node"] is None  # type: ignore[index]
    # PENDING records do not expire: they wait for their node
    assert await store.execute("TTL", keys.task(bound)) == -1
    assert api_view(record) == {"id": bound, "status": "PENDING", "successful": False, "failed": False,
                                "ready": False, "result": None, "progress": None, "node": OTHER}


@pytest_twisted.ensureDeferred
async def test_a_task_for_a_node_that_is_down_fails_fast(engine: TaskEngine, store: Store) -> None:
    assert await is_node_alive(store, OTHER) is False
    started = reactor.seconds()
    with pytest.raises(NodeUnavailable) as caught:
        await engine.enqueue("sr.work", {"x": 1}, node=OTHER)
    assert reactor.seconds() - started < 1
    assert str(caught.value) == f"node_unavailable: {OTHER}"
    record = await engine.get(caught.value.task_id)
    assert record is not None
    assert record["status"] == "FAILURE" and record["error"] == f"node_unavailable: {OTHER}"
    assert api_view(record)["result"] == f"node_unavailable: {OTHER}"
    assert 86000 < await store.execute("TTL", keys.task(caught.value.task_id)) <= 86400
    assert await store.execute("XLEN", keys.task_queue(OTHER)) == 0
    assert engine.completed == [(caught.value.task_id, record)]  # type: ignore[attr-defined]
    # a finished task is not waited for
    assert (await engine.wait(caught.value.task_id, 30))["status"] == "FAILURE"  # type: ignore[index]
    # once its agent says it is alive, the node gets its work
    await node_is_alive(store, OTHER)
    assert await is_node_alive(store, OTHER) is True
    task_id = await engine.enqueue("sr.work", {"x": 1}, node=OTHER)
    assert await queued_ids(store, keys.task_queue(OTHER)) == [task_id]


@pytest_twisted.ensureDeferred
async def test_wrong_names_and_nodes_are_refused(engine: TaskEngine, store: Store) -> None:
    with pytest.raises(UnknownTask):
        await engine.enqueue("no.such.task")
    with pytest.raises(ValueError, match="machine_id"):
        await engine.enqueue("sr.work")
    with pytest.raises(ValueError, match="takes no node"):
        await engine.enqueue("any.work", node=OTHER)
    with pytest.raises(TypeError):
        await engine.enqueue("any.work", {"x": object()})
    assert await store.execute("SCARD", keys.TASKS_UNFINISHED) == 0
    assert await engine.get("00000000-0000-0000-0000-000000000000") is None


@pytest_twisted.ensureDeferred
async def test_revoke_only_before_start(engine: TaskEngine, store: Store) -> None:
    task_id = await engine.enqueue("any.work")
    assert await engine.revoke(task_id) is True
    record = await engine.get(task_id)
    assert record is not None and record["status"] == "REVOKED" and record["time_done"] is not None
    assert 86000 < await store.execute("TTL", keys.task(task_id)) <= 86400
    assert engine.completed[0][0] == task_id  # type: ignore[attr-defined]
    assert await engine.revoke(task_id) is False
    assert await engine.revoke("unknown") is False
    overview = await engine.overview()
    assert [i["id"] for i in overview["revoked"]["ovsd@any"]] == [task_id]
    assert overview["scheduled"] == {}


@pytest_twisted.ensureDeferred
async def test_wait_returns_the_record_as_it_is_at_its_timeout(store: Store) -> None:
    clock = Clock()
    engine = TaskEngine(store, registry_with_tasks(), "mid-self", clock)
    try:
        task_id = await engine.enqueue("any.work")
        waiting = defer.ensureDeferred(engine.wait(task_id, 10))

        async def timer_set() -> Any:
            return clock.getDelayedCalls()

        await eventually(timer_set)  # the waiter is registered and its timeout armed
        clock.advance(9)
        assert not waiting.called
        clock.advance(1.5)
        record = await waiting
        assert record is not None and record["status"] == "PENDING"
        assert await engine.wait("unknown", 10) is None
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_overview_lists_work_by_worker_name(engine: TaskEngine, store: Store) -> None:
    await node_is_alive(store, OTHER)
    await store.execute("HSET", keys.TASK_WORKERS, OTHER, "ovsd@other-node")
    reserved = await engine.enqueue("sr.work", {"n": 1}, node=OTHER)
    scheduled = await engine.enqueue("any.work", {"n": 2})
    overview = await engine.overview()
    assert set(overview) == {"active", "scheduled", "reserved", "revoked"}
    assert overview["active"] == {"ovsd@other-node": []}
    assert overview["reserved"]["ovsd@other-node"] == [
        {"id": reserved, "name": "sr.work", "args": [], "kwargs": {"n": 1}, "time_start": None,
         "worker": "ovsd@other-node"},
    ]
    assert [i["id"] for i in overview["scheduled"]["ovsd@any"]] == [scheduled]
    json.dumps(overview)


def test_declarations_are_checked() -> None:
    registry = TaskRegistry()

    async def one(ctx: TaskContext) -> None:
        return None

    async def other(ctx: TaskContext) -> None:
        return None

    registry.task(name="x.one", idempotent=True, timeout=5)(one)
    assert registry.get("x.one").idempotent is True and registry.get("x.one").timeout == 5.0
    assert registry.get("x.one").route is Route.ANY
    with pytest.raises(ValueError, match="twice"):
        registry.task(name="x.one")(other)
    with pytest.raises(ValueError, match="timeout"):
        registry.task(name="x.two", timeout=0)
    assert "x.one" in registry and "x.two" not in registry
