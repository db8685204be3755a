"""/api/messages/ as a GUI sees it (contract §8): real store, real bus, real HTTPS long-polls."""

from __future__ import annotations

import time
from typing import Any

import pytest_twisted
from twisted.internet import defer

from ovsd.messages import EVENT, TASK_COMPLETE, Retention, publish, publish_event, publish_task_complete
from tests.views_support import Reply
from tests.work_support import WorkNode, eventually, hang_up, until, work_node

__all__ = ["work_node"]  # fixtures

SID = 4815162342  # what the GUI picks: 10 random digits


async def call(work: WorkNode, method: str, path: str, token: str, body: Any = None) -> Reply:
    if body is None:
        return await work.node.call(method, path, token)
    return await work.node.call(method, path, token, body=body)


async def waiting(work: WorkNode, token: str, sid: int, query: str) -> tuple[Reply, float]:
    """A long-poll: its answer and the monotonic time the answer was in."""
    reply = await work.node.call("GET", f"/api/messages/{sid}/wait/?{query}", token)
    return reply, time.monotonic()


@pytest_twisted.ensureDeferred
async def test_subscriptions_last_and_the_refusals(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    assert (await call(work, "GET", "/api/messages/", token)).body == []
    reply = await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, ["TASK_COMPLETE", "NO_SUCH", "EVENT"])
    assert reply.status == 200 and reply.body == [TASK_COMPLETE, EVENT]  # unknown types are dropped
    assert (await call(work, "POST", "/api/messages/77/subscribe", token, [EVENT])).body == [EVENT]
    assert (await call(work, "GET", f"/api/messages/{SID}/", token)).body == [TASK_COMPLETE, EVENT]
    assert (await call(work, "GET", "/api/messages/77", token)).body == [EVENT]
    assert (await call(work, "GET", "/api/messages/78/", token)).body == []  # nobody chose 78
    assert sorted((await call(work, "GET", "/api/messages/", token)).body) == sorted([TASK_COMPLETE, EVENT])
    # subscribing again replaces the types
    assert (await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [EVENT])).body == [EVENT]
    assert (await call(work, "POST", "/api/messages/77/subscribe/", token, [])).body == []
    assert (await call(work, "GET", "/api/messages/", token)).body == [EVENT]

    last = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body
    assert isinstance(last, int)
    first = await publish_task_complete(work.store, "t-1")
    await publish_event(work.store, "vdisk_created", {"vdisk_guid": "g"})
    assert (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body == first + 1 >= last + 2

    for path in ("/api/messages/abc/", "/api/messages/12x/last/", "/api/messages/-1/",
                 "/api/messages/1.5/wait/?message_id=0"):
        assert (await call(work, "GET", path, token)).error == (400, "invalid_data"), path
    assert (await call(work, "POST", "/api/messages/abc/subscribe/", token, [EVENT])).error == (400, "invalid_data")
    for body in ({"types": [EVENT]}, "EVENT", 7):
        reply = await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, body)
        assert reply.error == (400, "invalid_data"), body
    assert (await call(work, "GET", f"/api/messages/{SID}/", token)).body == [EVENT]  # refusals changed nothing
    reply = await call(work, "GET", f"/api/messages/{SID}/wait/", token)
    assert reply.error == (406, "invalid_data")
    assert reply.body["error_description"] == "Invalid data passed: message_id is missing"
    for query in ("message_id=soon", "message_id=-1", "message_id=2.0", "message_id=0&timeout=nan",
                  "message_id=0&timeout=inf", "message_id=0&timeout=-1", "message_id=0&timeout=soon"):
        reply = await call(work, "GET", f"/api/messages/{SID}/wait/?{query}", token)
        assert reply.error == (400, "invalid_data"), query
    assert (await work.node.call("GET", f"/api/messages/{SID}/last/")).error == (401, "not_authenticated")


@pytest_twisted.ensureDeferred
async def test_a_waiter_returns_within_100_ms_of_a_matching_publish(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [TASK_COMPLETE])
    last = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body
    for round_ in range(3):
        pending = defer.ensureDeferred(waiting(work, token, SID, f"message_id={last}&timeout=30"))
        await until(lambda: work.bus.waiter_count == 1)
        published_at = time.monotonic()
        message_id = await publish_task_complete(work.store, f"task-{round_}")
        reply, answered_at = await pending
        assert reply.status == 200
        assert reply.body == {"messages": [{"id": message_id, "type": TASK_COMPLETE, "body": f"task-{round_}"}],
                              "last_message_id": message_id, "subscriptions": [TASK_COMPLETE]}
        assert answered_at - published_at < 0.1, f"round {round_}: {answered_at - published_at:.3f} s"
        last = reply.body["last_message_id"]
    assert work.bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_a_task_completion_reaches_a_waiter(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [TASK_COMPLETE])
    last = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body
    pending = defer.ensureDeferred(waiting(work, token, SID, f"message_id={last}&timeout=30"))
    await until(lambda: work.bus.waiter_count == 1)
    task_id = await work.enqueue("test.noop")
    reply, _ = await pending
    assert [(m["type"], m["body"]) for m in reply.body["messages"]] == [(TASK_COMPLETE, task_id)]


@pytest_twisted.ensureDeferred
async def test_a_waiter_ignores_other_types_and_answers_empty_at_its_timeout(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [TASK_COMPLETE])
    last = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body

    # nothing at all: empty at the timeout
    started = time.monotonic()
    reply, answered_at = await waiting(work, token, SID, f"message_id={last}&timeout=0.5")
    assert reply.status == 200
    assert reply.body == {"messages": [], "last_message_id": last, "subscriptions": [TASK_COMPLETE]}
    assert 0.5 <= answered_at - started < 1.5

    # an EVENT is not for a TASK_COMPLETE subscriber: the waiter keeps waiting until its timeout
    started = time.monotonic()
    pending = defer.ensureDeferred(waiting(work, token, SID, f"message_id={last}&timeout=1"))
    await until(lambda: work.bus.waiter_count == 1)
    event_id = await publish_event(work.store, "vmachine_created", {"vmachine_guid": "g"})
    await until(lambda: work.bus.position == event_id)
    assert not pending.called and work.bus.waiter_count == 1
    reply, answered_at = await pending
    assert reply.body["messages"] == []
    assert reply.body["last_message_id"] == event_id  # it was looked at: the next wait starts after it
    assert 1.0 <= answered_at - started < 2.0
    assert work.bus.waiter_count == 0


@pytest_twisted.ensureDeferred
async def test_a_client_that_fell_out_of_the_window_is_told_it_missed_messages(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [EVENT])
    seen = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body
    short = Retention(count=2, seconds=0)  # a tiny window, so a few messages push the old ones out
    ids = [await publish(work.store, EVENT, {"type": "vdisk_created", "metadata": {"n": n}}, short)
           for n in range(5)]
    reply, _ = await waiting(work, token, SID, f"message_id={seen}&timeout=30")
    assert reply.status == 200
    assert reply.body["missed"] is True
    assert [m["id"] for m in reply.body["messages"]] == ids[-2:]  # what is still there, in order
    assert reply.body["last_message_id"] == ids[-1]
    # resynchronised from there, the client is back to normal
    reply, _ = await waiting(work, token, SID, f"message_id={ids[-1]}&timeout=0.2")
    assert reply.body == {"messages": [], "last_message_id": ids[-1], "subscriptions": [EVENT]}


@pytest_twisted.ensureDeferred
async def test_a_client_that_hangs_up_mid_wait_leaves_no_waiter_behind(work_node: WorkNode) -> None:
    work = work_node
    token = await work.token("read")
    await call(work, "POST", f"/api/messages/{SID}/subscribe/", token, [TASK_COMPLETE, EVENT])
    last = (await call(work, "GET", f"/api/messages/{SID}/last/", token)).body
    await hang_up(work, f"/api/messages/{SID}/wait/?message_id={last}&timeout=60", token, 5,
                  lambda: work.bus.waiter_count)
    assert work.node.api.service.site.in_flight == 0
    # the next client is served as usual
    pending = defer.ensureDeferred(waiting(work, token, SID, f"message_id={last}&timeout=30"))
    await until(lambda: work.bus.waiter_count == 1)
    message_id = await publish_event(work.store, "vdisk_deleted", {"vdisk_guid": "g"})
    reply, _ = await pending
    assert [m["id"] for m in reply.body["messages"]] == [message_id]
    await eventually(lambda: defer.succeed(work.bus.waiter_count == 0))
