"""GET /api/statistics/ (contract §9): the counters move with what the node really does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer

from ovsd.messages import TASK_COMPLETE
from ovsd.store.connection import Store
from tests.work_support import FAST_AGENT, WorkNode, eventually, start_work_node, stop_work_node, until, work_node

__all__ = ["work_node"]  # fixtures


async def statistics(work: WorkNode, token: str) -> dict[str, Any]:
    reply = await work.node.call("GET", "/api/statistics/", token)
    assert reply.status == 200, reply.body
    assert set(reply.body) == {"dal", "store", "nodes", "offline"}
    return dict(reply.body)


def node_entry(stats: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((n for n in stats["nodes"] if n["node"] == name), None)


@pytest_twisted.ensureDeferred
async def test_the_object_model_counters_move_with_fetches(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    router = work.agent.storagerouter_guid
    before = (await statistics(work, token))["dal"]
    for _ in range(3):
        assert (await work.node.call("GET", f"/api/storagerouters/{router}/", token)).status == 200
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await work.node.call("GET", f"/api/storagerouters/{missing}/", token)).status == 404
    for _ in range(2):  # a cached dynamic: computed once, then served from the cache
        reply = await work.node.call("GET", f"/api/storagerouters/{router}/?contents=vpools_guids", token)
        assert reply.body["vpools_guids"] == []
    assert (await work.node.call("GET", "/api/storagerouters/", token)).status == 200
    after = (await statistics(work, token))["dal"]
    assert after["object_hit"] - before["object_hit"] >= 5
    assert after["object_miss"] - before["object_miss"] >= 1
    assert after["dynamic_miss"] - before["dynamic_miss"] >= 1
    assert after["dynamic_hit"] - before["dynamic_hit"] >= 1
    assert after["list_hit"] - before["list_hit"] >= 1
    assert {"list_hit", "list_miss"} <= set(after)


@pytest_twisted.ensureDeferred
async def test_the_store_figures_come_from_the_servers_info(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    store = (await statistics(work, token))["store"]
    for figure in ("instantaneous_ops_per_sec", "used_memory", "connected_clients", "keyspace_hits",
                   "keyspace_misses", "total_commands_processed", "uptime_in_seconds"):
        assert isinstance(store[figure], int), figure
    assert store["connected_clients"] >= 3  # the pool, the bus's reader, the worker's reader at least
    assert store["used_memory"] > 0
    later = (await statistics(work, token))["store"]
    assert later["total_commands_processed"] > store["total_commands_processed"]


@pytest_twisted.ensureDeferred
async def test_each_node_counts_its_requests_waits_and_running_tasks(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    name = work.context.config.node.name
    first = node_entry(await statistics(work, token), name)
    assert first is not None, "this node is listed"
    assert first["storagerouter_guid"] == work.agent.storagerouter_guid
    assert first["uptime"] >= 0 and first["active_waits"] == 0 and first["tasks_running"] == 0
    for _ in range(5):
        await work.node.call("GET", "/api/branding/", None)
    second = node_entry(await statistics(work, token), name)
    assert second is not None
    assert second["requests"] - first["requests"] >= 6  # five calls, and the statistics call before

    # a task running, a client waiting for it, and a GUI in a long-poll
    task_id = await work.enqueue("test.gated", key="s")
    await eventually(lambda: defer.succeed(work.worker.running_tasks == 1))
    sid = 1234567890
    await work.node.call("POST", f"/api/messages/{sid}/subscribe/", token, body=[TASK_COMPLETE])
    last = (await work.node.call("GET", f"/api/messages/{sid}/last/", token)).body
    task_wait = defer.ensureDeferred(work.node.call("GET", f"/api/tasks/{task_id}/get/?timeout=30", token))
    poll = defer.ensureDeferred(work.node.call("GET", f"/api/messages/{sid}/wait/?message_id={last}", token))
    await until(lambda: work.engine.waiting == 1 and work.bus.waiter_count == 1)
    busy = node_entry(await statistics(work, token), name)
    assert busy is not None
    assert busy["active_waits"] == 2 and busy["tasks_running"] == 1
    work.gates.open("s")
    assert (await task_wait).status == 200
    assert [m["body"] for m in (await poll).body["messages"]] == [task_id]
    idle = node_entry(await statistics(work, token), name)
    assert idle is not None and idle["active_waits"] == 0 and idle["tasks_running"] == 0


@pytest_twisted.ensureDeferred
async def test_a_storagerouter_whose_node_stopped_pushing_is_offline(
    work_node: WorkNode, store: Store, tmp_path: Path,
) -> None:
    work = work_node
    token = await work.token("read")
    other = await start_work_node(store, tmp_path / "other", agent=FAST_AGENT)
    try:
        stats = await eventually(lambda: _listed(work, token, "other"))
        entry = node_entry(stats, "other")
        assert entry is not None and entry["storagerouter_guid"] == other.agent.storagerouter_guid
        assert entry["age"] < FAST_AGENT["failure_after"]
        assert stats["offline"] == []
    finally:
        await stop_work_node(other)
    # its figures expire failure_after seconds after its last push
    stats = await eventually(lambda: _offline(work, token, "other"), timeout=FAST_AGENT["failure_after"] + 5)
    assert stats["offline"] == [{"node": "other", "storagerouter_guid": other.agent.storagerouter_guid,
                                 "machine_id": "mid-other"}]
    assert node_entry(stats, "other") is None
    assert node_entry(stats, work.context.config.node.name) is not None  # the node answering is online


async def _listed(work: WorkNode, token: str, name: str) -> dict[str, Any] | None:
    stats = await statistics(work, token)
    return stats if node_entry(stats, name) else None


async def _offline(work: WorkNode, token: str, name: str) -> dict[str, Any] | None:
    stats = await statistics(work, token)
    return stats if any(o["node"] == name for o in stats["offline"]) else None
