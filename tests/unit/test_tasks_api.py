"""/api/tasks/ as a client sees it (contract §7): real store, real worker, real HTTPS."""

from __future__ import annotations

import time
import uuid

import pytest_twisted
from twisted.internet import defer, reactor, task

from ovsd.store.connection import Store
from tests.views_support import Reply
from tests.work_support import WorkNode, eventually, hang_up, until, work_node

__all__ = ["work_node"]  # fixtures


async def status_is(work: WorkNode, task_id: str, status: str) -> bool:
    record = await work.engine.get(task_id)
    return record is not None and record["status"] == status


async def command_calls(store: Store, *commands: str) -> int:
    """How often the store ran these commands since it started (INFO commandstats)."""
    info = await store.execute("INFO", "commandstats")
    total = 0
    for line in str(info).splitlines():
        name, _, stats = line.partition(":")
        if name.removeprefix("cmdstat_") in commands:
            total += int(dict(p.split("=") for p in stats.split(","))["calls"])
    return total


async def get(work: WorkNode, path: str, token: str) -> Reply:
    return await work.node.call("GET", path, token)


@pytest_twisted.ensureDeferred
async def test_the_overview_lists_each_workers_tasks_by_state(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token()
    running = await work.enqueue("test.gated", key="a")
    await eventually(lambda: status_is(work, running, "STARTED"))
    reserved = await work.enqueue("test.noop")  # behind the running one: this node's worker runs one at a time
    scheduled = await work.engine.enqueue("test.shared")  # the shared queue: any node's worker may take it
    revoked = await work.enqueue("test.echo", value=1)
    assert (await work.node.call("DELETE", f"/api/tasks/{revoked}/", token)).status == 204

    reply = await get(work, "/api/tasks/", token)
    assert reply.status == 200, reply.body
    router = (await get(work, f"/api/storagerouters/{work.agent.storagerouter_guid}/", token)).body
    worker = f"ovsd@{router['name']}"
    assert set(reply.body) == {"active", "scheduled", "reserved", "revoked"}
    [active] = reply.body["active"][worker]
    assert active["id"] == running and active["name"] == "test.gated"
    assert active["kwargs"] == {"key": "a"} and active["args"] == []
    assert active["worker"] == worker and active["time_start"] > 0
    assert [t["id"] for t in reply.body["reserved"][worker]] == [reserved]
    assert reply.body["reserved"][worker][0]["time_start"] is None
    assert [t["id"] for t in reply.body["scheduled"]["ovsd@any"]] == [scheduled]
    assert [t["id"] for t in reply.body["revoked"][worker]] == [revoked]

    work.gates.open("a")
    for task_id in (running, reserved, scheduled):
        await eventually(lambda task_id=task_id: status_is(work, task_id, "SUCCESS"))
    after = (await get(work, "/api/tasks/", token)).body
    assert after["active"][worker] == [] and after["reserved"][worker] == []
    assert after.get("scheduled", {}).get("ovsd@any", []) == []
    assert [t["id"] for t in after["revoked"][worker]] == [revoked]  # revoked tasks are listed while kept


@pytest_twisted.ensureDeferred
async def test_one_task_its_result_or_error_and_unknown_ids(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    done = await work.enqueue("test.echo", value={"size": 3, "name": "vd1"})
    failed = await work.enqueue("test.fail", reason="disk on fire")
    await eventually(lambda: status_is(work, failed, "FAILURE"))

    reply = await get(work, f"/api/tasks/{done}/", token)
    assert reply.status == 200
    assert reply.body == {"id": done, "status": "SUCCESS", "successful": True, "failed": False, "ready": True,
                          "result": {"size": 3, "name": "vd1"}, "progress": 100, "node": work.machine_id}
    reply = await get(work, f"/api/tasks/{failed.upper()}", token)  # any case, no trailing slash
    assert reply.status == 200
    assert reply.body["status"] == "FAILURE" and reply.body["failed"] is True and reply.body["ready"] is True
    assert reply.body["successful"] is False and reply.body["result"] == "disk on fire"

    for path in (f"/api/tasks/{uuid.uuid4()}/", "/api/tasks/not-a-task-id/", f"/api/tasks/{uuid.uuid4()}/get/"):
        assert (await get(work, path, token)).error == (404, "object_not_found"), path


@pytest_twisted.ensureDeferred
async def test_get_waits_without_polling_and_answers_the_raw_result(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    task_id = await work.enqueue("test.gated", key="w", result={"answer": 42})
    await eventually(lambda: status_is(work, task_id, "STARTED"))
    waiting = defer.ensureDeferred(get(work, f"/api/tasks/{task_id}/get/?timeout=30", token))
    await until(lambda: work.engine.waiting == 1)

    reads = await command_calls(work.store, "hget", "hgetall", "hmget")
    # the wait holds for a while: nobody reads the task meanwhile (a poll would read it again and again)
    await task.deferLater(reactor, 0.6, lambda: None)
    assert not waiting.called
    assert await command_calls(work.store, "hget", "hgetall", "hmget") == reads

    opened = time.monotonic()
    work.gates.open("w")
    reply = await waiting
    assert reply.status == 200
    assert reply.body == {"answer": 42}  # the raw result, not the task object
    assert time.monotonic() - opened < 1.0
    assert work.engine.waiting == 0

    # a finished task answers at once
    started = time.monotonic()
    assert (await get(work, f"/api/tasks/{task_id}/get/?timeout=30", token)).body == {"answer": 42}
    assert time.monotonic() - started < 1.0


@pytest_twisted.ensureDeferred
async def test_get_answers_406_with_the_error_of_a_failed_task(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    task_id = await work.enqueue("test.fail", reason="the backend refused the volume")
    reply = await get(work, f"/api/tasks/{task_id}/get/?timeout=10", token)
    assert reply.status == 406
    assert reply.body == {"error": "not_acceptable", "error_description": "the backend refused the volume"}


@pytest_twisted.ensureDeferred
async def test_get_answers_202_with_the_task_object_at_its_timeout(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    task_id = await work.enqueue("test.gated", key="slow")
    await eventually(lambda: status_is(work, task_id, "STARTED"))
    started = time.monotonic()
    reply = await get(work, f"/api/tasks/{task_id}/get/?timeout=0.3", token)
    elapsed = time.monotonic() - started
    assert reply.status == 202
    assert reply.body == {"id": task_id, "status": "STARTED", "successful": False, "failed": False, "ready": False,
                          "result": None, "progress": 40, "node": work.machine_id}
    assert 0.3 <= elapsed < 2.0
    assert work.engine.waiting == 0


@pytest_twisted.ensureDeferred
async def test_delete_revokes_a_pending_task_and_refuses_a_started_one(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read+write")
    running = await work.enqueue("test.gated", key="r")
    await eventually(lambda: status_is(work, running, "STARTED"))
    pending = await work.enqueue("test.echo", value="must never run")

    assert (await work.node.call("DELETE", f"/api/tasks/{pending}/", await work.token("read"))).error == (
        403, "invalid_roles")
    reply = await work.node.call("DELETE", f"/api/tasks/{pending}/", token)
    assert reply.status == 204 and reply.raw == b""
    revoked = (await get(work, f"/api/tasks/{pending}/", token)).body
    assert revoked["status"] == "REVOKED" and revoked["ready"] is True and revoked["result"] is None
    # a revoked task is over: waiting for it answers at once, with the refusal (not "still running")
    reply = await get(work, f"/api/tasks/{pending}/get/?timeout=30", token)
    assert reply.error == (406, "not_acceptable") and "revoked" in reply.body["error_description"]

    reply = await work.node.call("DELETE", f"/api/tasks/{running}/", token)
    assert reply.error == (406, "not_acceptable")
    assert "started" in reply.body["error_description"]
    assert (await work.node.call("DELETE", f"/api/tasks/{uuid.uuid4()}/", token)).error == (404, "object_not_found")

    work.gates.open("r")
    after = await work.enqueue("test.noop")  # queued after the revoked one: once it ran, the queue got past it
    await eventually(lambda: status_is(work, after, "SUCCESS"))
    assert (await get(work, f"/api/tasks/{running}/", token)).body["status"] == "SUCCESS"
    assert (await get(work, f"/api/tasks/{pending}/", token)).body["status"] == "REVOKED"
    assert (await work.node.call("DELETE", f"/api/tasks/{running}/", token)).error == (406, "not_acceptable")


@pytest_twisted.ensureDeferred
async def test_a_client_that_hangs_up_during_get_releases_its_wait(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    task_id = await work.enqueue("test.gated", key="h")
    await eventually(lambda: status_is(work, task_id, "STARTED"))
    await hang_up(work, f"/api/tasks/{task_id}/get/?timeout=60", token, 3, lambda: work.engine.waiting)
    # the task itself is untouched, and a client that stays gets its result
    staying = defer.ensureDeferred(get(work, f"/api/tasks/{task_id}/get/?timeout=30", token))
    await until(lambda: work.engine.waiting == 1)
    work.gates.open("h")
    assert (await staying).status == 200
    assert await status_is(work, task_id, "SUCCESS")
