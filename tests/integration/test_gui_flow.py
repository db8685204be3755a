"""The GUI's flow against a real daemon: log in, follow the messages, start an action, learn it finished."""

from __future__ import annotations

import random

from tests.cluster_support import Session, StartDaemon, daemon

__all__ = ["daemon"]  # fixtures


def test_token_last_subscribe_action_wait_and_the_task_is_success(daemon: StartDaemon) -> None:
    node = daemon("gui")
    gui = Session(node)  # the password grant, as the GUI logs in
    sid = random.randint(10**9, 10**10 - 1)  # the GUI's 10 random digits

    last = gui.ok("GET", f"/api/messages/{sid}/last/")
    assert isinstance(last, int) and last >= 0
    assert gui.ok("POST", f"/api/messages/{sid}/subscribe/", ["TASK_COMPLETE"]) == ["TASK_COMPLETE"]
    assert gui.ok("GET", f"/api/messages/{sid}/") == ["TASK_COMPLETE"]

    router = gui.storagerouter_guid()
    task_id = gui.ok("GET", f"/api/storagerouters/{router}/get_version_info/")
    assert isinstance(task_id, str) and len(task_id) == 36

    # the GUI long-polls until its task's completion arrives (other TASK_COMPLETEs may come first)
    seen = last
    completed: list[object] = []
    for _ in range(10):
        answer = gui.ok("GET", f"/api/messages/{sid}/wait/?message_id={seen}&timeout=30", timeout=45)
        assert answer["subscriptions"] == ["TASK_COMPLETE"]
        assert "missed" not in answer
        assert all(m["type"] == "TASK_COMPLETE" for m in answer["messages"])
        assert all(m["id"] > seen for m in answer["messages"])
        completed += [m["body"] for m in answer["messages"]]
        seen = answer["last_message_id"]
        if task_id in completed:
            break
    assert task_id in completed, node.log_text()

    task = gui.ok("GET", f"/api/tasks/{task_id}/")
    assert task["status"] == "SUCCESS" and task["successful"] is True and task["ready"] is True, task
    assert task["result"]["storagerouter_guid"] == router
    assert "ovsd" in task["result"]["versions"]
    assert task["node"] == "mid-gui"
    assert gui.ok("GET", f"/api/tasks/{task_id}/get/?timeout=5") == task["result"]  # the raw result
