"""Messages across a cluster: two real daemons (two machine_ids, two ports) on one store.

A subscriber waiting on one node gets what the other published; message ids stay strictly increasing
while both publish at once; a subscriber may move to the other node mid-session.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tests.cluster_support import Session, SharedStore, StartDaemon, daemon, shared_store
from tests.support import TwistdNode, wait_for

__all__ = ["daemon", "shared_store"]  # fixtures

SID = 5550001234


def active_waits(session: Session, name: str) -> int:
    """What the node ``name`` reports in /api/statistics as the long-polls and task waits it holds."""
    for node in session.ok("GET", "/api/statistics/")["nodes"]:
        if node["node"] == name:
            return int(node["active_waits"])
    return -1


def collect(session: Session, sid: int, after: int, wanted: set[str], timeout: float = 60) -> tuple[list[Any], int]:
    """Long-poll ``session``'s node until messages with every body in ``wanted`` arrived."""
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while not wanted <= {m["body"] for m in messages}:
        assert time.monotonic() < deadline, f"still missing {wanted - {m['body'] for m in messages}}"
        answer = session.ok("GET", f"/api/messages/{sid}/wait/?message_id={after}&timeout=20", timeout=40)
        assert "missed" not in answer
        messages += answer["messages"]
        after = answer["last_message_id"]
    return messages, after


def two_nodes(daemon: StartDaemon, shared_store: SharedStore) -> tuple[TwistdNode, TwistdNode]:
    a = daemon("a", shared_store.url)
    b = daemon("b", shared_store.url)
    return a, b


def test_a_subscriber_waiting_on_b_receives_what_a_published(daemon: StartDaemon, shared_store: SharedStore) -> None:
    a, b = two_nodes(daemon, shared_store)
    on_a, on_b = Session(a), Session(b)
    a_router = on_a.storagerouter_guid()
    assert on_b.ok("POST", f"/api/messages/{SID}/subscribe/", ["TASK_COMPLETE"]) == ["TASK_COMPLETE"]
    last = on_b.ok("GET", f"/api/messages/{SID}/last/")
    assert on_a.ok("GET", f"/api/messages/{SID}/last/") == last  # one log for the cluster

    with ThreadPoolExecutor(1) as pool:
        waiting: Future[Any] = pool.submit(
            on_b.ok, "GET", f"/api/messages/{SID}/wait/?message_id={last}&timeout=30", None, 45)
        assert wait_for(lambda: active_waits(on_b, "b") == 1, 10), "B holds the long-poll"
        # an action on A: A's worker runs the task and A publishes its completion
        task_id = on_a.ok("GET", f"/api/storagerouters/{a_router}/get_version_info/")
        answer = waiting.result(timeout=30)
    assert [(m["type"], m["body"]) for m in answer["messages"]] == [("TASK_COMPLETE", task_id)]
    assert answer["last_message_id"] == answer["messages"][0]["id"] > last
    task = on_b.ok("GET", f"/api/tasks/{task_id}/")  # B reads what A's worker recorded
    assert task["status"] == "SUCCESS" and task["node"] == "mid-a"
    assert task["result"]["storagerouter_guid"] == a_router


def test_ids_stay_strictly_increasing_while_both_nodes_publish(
    daemon: StartDaemon, shared_store: SharedStore,
) -> None:
    a, b = two_nodes(daemon, shared_store)
    on_a, on_b = Session(a), Session(b)
    routers = {"a": on_a.storagerouter_guid(), "b": on_b.storagerouter_guid()}
    on_b.ok("POST", f"/api/messages/{SID}/subscribe/", ["TASK_COMPLETE", "EVENT"])
    last = on_b.ok("GET", f"/api/messages/{SID}/last/")

    # each node runs its own tasks (its worker, 4 at a time) and publishes their completions, all at once
    def start(session: Session, router: str) -> str:
        return str(session.ok("GET", f"/api/storagerouters/{router}/get_version_info/"))

    with ThreadPoolExecutor(8) as pool:
        started = [pool.submit(start, on_a, routers["a"]) for _ in range(20)]
        started += [pool.submit(start, on_b, routers["b"]) for _ in range(20)]
        task_ids = {f.result(timeout=60) for f in started}
    assert len(task_ids) == 40

    messages, seen = collect(on_b, SID, last, task_ids)
    ids = [m["id"] for m in messages]
    assert ids == sorted(set(ids)), "strictly increasing, no id given twice"
    # subscribed to every type, the subscriber sees every id: none was taken without its message
    assert ids == list(range(last + 1, seen + 1))
    completions = [m["body"] for m in messages if m["type"] == "TASK_COMPLETE"]
    assert sorted(completions) == sorted(task_ids)  # each exactly once
    nodes = {on_b.ok("GET", f"/api/tasks/{t}/")["node"] for t in task_ids}
    assert nodes == {"mid-a", "mid-b"}

    # the subscriber moves to A mid-session (a GUI failing over): A serves it from where it was
    with ThreadPoolExecutor(1) as pool:
        waiting: Future[Any] = pool.submit(
            on_a.ok, "GET", f"/api/messages/{SID}/wait/?message_id={seen}&timeout=30", None, 45)
        assert wait_for(lambda: active_waits(on_a, "a") == 1, 10)
        task_id = start(on_b, routers["b"])
        answer = waiting.result(timeout=30)
    assert [m["body"] for m in answer["messages"] if m["type"] == "TASK_COMPLETE"] == [task_id]
    assert all(m["id"] > seen for m in answer["messages"])
    assert on_a.ok("GET", f"/api/messages/{SID}/") == ["TASK_COMPLETE", "EVENT"]
