"""Two real daemons on one store: each sees the other, a killed node turns WARNING then FAILURE (with one
event each time) and OK again when it is back, and node-local actions run on the node they name."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cluster_support import Session, SharedStore, StartDaemon, daemon, shared_store
from tests.support import BIN, wait_for

__all__ = ["daemon", "shared_store"]  # fixtures

AGENT = {"heartbeat_interval": 1.0, "warning_after": 2.0, "failure_after": 3.0}
SID = 7310000001


def statuses(session: Session) -> dict[str, str]:
    return {r["name"]: r["status"] for r in session.ok("GET", "/api/storagerouters/?contents=status")}


def status_events(session: Session, after: int, guid: str, until: str, timeout: float = 15.0) -> tuple[list[Any], int]:
    """The storagerouter_status_changed events of ``guid`` after message ``after``, up to one with status ``until``."""
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while not found or found[-1]["status"] != until:
        assert time.monotonic() < deadline, f"no {until} event in {timeout} s; got {found}"
        answer = session.ok("GET", f"/api/messages/{SID}/wait/?message_id={after}&timeout=5", timeout=20)
        for message in answer["messages"]:
            body = message["body"]
            if body["type"] == "storagerouter_status_changed" and body["metadata"]["storagerouter_guid"] == guid:
                found.append(body["metadata"])
        after = answer["last_message_id"]
    return found, after


def ovsctl_status(config: Path) -> Any:
    done = subprocess.run([str(BIN / "ovsctl"), "-c", str(config), "status", "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_killed_node_turns_warning_then_failure_and_ok_when_back(
    daemon: StartDaemon, shared_store: SharedStore, tmp_path: Path,
) -> None:
    a = daemon("sr-a", shared_store.url, agent=AGENT)
    b = daemon("sr-b", shared_store.url, agent=AGENT)
    on_a = Session(a)
    assert wait_for(lambda: statuses(on_a) == {"sr-a": "OK", "sr-b": "OK"}, 10), statuses(on_a)
    b_guid = Session(b).storagerouter_guid()
    assert on_a.ok("POST", f"/api/messages/{SID}/subscribe/", ["EVENT"]) == ["EVENT"]
    last = on_a.ok("GET", f"/api/messages/{SID}/last/")

    # a node-local action asked of B through A runs on B
    ca = b.data_dir / "tls" / "ca.pem"
    task_id = on_a.ok("POST", f"/api/storagerouters/{b_guid}/get_physical_metadata/",
                      {"files": f"{ca},{tmp_path / 'absent'}"})
    result = on_a.ok("GET", f"/api/tasks/{task_id}/get/?timeout=20", timeout=40)
    assert (result["name"], result["machine_id"], result["storagerouter_guid"]) == ("sr-b", "mid-sr-b", b_guid)
    assert result["files"] == {str(ca): True, str(tmp_path / "absent"): False}
    assert on_a.ok("GET", f"/api/tasks/{task_id}/")["status"] == "SUCCESS"

    b.kill()  # SIGKILL
    killed = time.monotonic()
    seen: list[tuple[str, float]] = []
    while not seen or seen[-1][0] != "FAILURE":
        assert time.monotonic() - killed < 10, seen
        status = on_a.ok("GET", f"/api/storagerouters/{b_guid}/?contents=status")["status"]
        if not seen or seen[-1][0] != status:
            seen.append((status, time.monotonic() - killed))
        time.sleep(0.05)
    assert [s for s, _ in seen] in (["OK", "WARNING", "FAILURE"], ["WARNING", "FAILURE"]), seen
    assert seen[-1][1] <= AGENT["failure_after"] + AGENT["heartbeat_interval"], seen

    # a task for the dead B fails at once (its liveness key lapses within failure_after of its last beat)
    def refused() -> bool:
        started = time.monotonic()
        status, answer = on_a.call("POST", f"/api/storagerouters/{b_guid}/get_physical_metadata/", {"files": ""})
        if status == 503:
            assert answer["error"] == "node_unavailable" and time.monotonic() - started < 1, answer
        return status == 503

    assert wait_for(refused, 3, interval=0.1)

    failing, last = status_events(on_a, last, b_guid, "FAILURE")
    b.start()
    b.wait_ready(timeout=40)
    back, _ = status_events(on_a, last, b_guid, "OK", timeout=20)
    changes = [(e["previous"], e["status"]) for e in failing + back]
    assert changes == [("OK", "WARNING"), ("WARNING", "FAILURE"), ("FAILURE", "OK")]
    assert statuses(on_a) == {"sr-a": "OK", "sr-b": "OK"}

    # ovsctl status on A: both StorageRouters with their status and fresh heartbeats
    cluster = ovsctl_status(a.config_path)
    routers = {r["name"]: r for r in cluster["storagerouters"]}
    assert sorted(routers) == ["sr-a", "sr-b"]
    for router in routers.values():
        assert router["status"] == "OK"
        assert set(router["heartbeat_ages"]) == {"process", "celery"}
        assert all(0 <= age < AGENT["warning_after"] + 1 for age in router["heartbeat_ages"].values())
    assert cluster["storagedrivers"] == []
