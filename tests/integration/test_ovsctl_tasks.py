"""`ovsctl wait` and `ovsctl events` as an operator runs them, against a real daemon.

The daemon serves the API; the tasks followed are the daemon's own (get_version_info) and test tasks run
by a worker in this test process on the same store (a gated one that reports progress, a failing one).
ovsctl runs as a child process, logging in with the node's configuration as an operator on the node would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.python.failure import Failure

from ovsd.config import load
from ovsd.messages import publish_event
from ovsd.service import build_node
from ovsd.store.connection import Store
from ovsd.tasks import TaskEngine
from tests.cluster_support import Session, SharedStore, StartDaemon, daemon, shared_store
from tests.support import BIN, TwistdNode, node_sections, write_config
from tests.work_support import Gates, eventually, work_tasks

__all__ = ["daemon", "shared_store"]  # fixtures

WORKER = "mid-tests"  # the machine_id of this test's worker: the test tasks are queued for it


class Ovsctl(protocol.ProcessProtocol):
    """One ovsctl run: its output as it comes, and its exit code."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)

    @property
    def stdout(self) -> str:
        return self.out.decode()

    @property
    def stderr(self) -> str:
        return self.err.decode()


def ovsctl(node: TwistdNode, *args: str) -> Ovsctl:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVSD_", "OVSCTL_"))}
    run = Ovsctl()
    reactor.spawnProcess(run, str(BIN / "ovsctl"), ["ovsctl", "-c", str(node.config_path), *args], env=env)
    return run


async def ended(run: Ovsctl, timeout: float = 60) -> int:
    code = await run.ended.addTimeout(timeout, reactor)
    return int(code)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await task.deferLater(reactor, 0.02, lambda: None)


@dataclass
class Cluster:
    node: TwistdNode
    store: Store
    engine: TaskEngine
    gates: Gates
    services: list[Any] = field(default_factory=list)


@pytest_twisted.async_yield_fixture
async def cluster(daemon: StartDaemon, shared_store: SharedStore, tmp_path: Path) -> AsyncIterator[Cluster]:
    node = daemon("ctl", shared_store.url)
    store = Store(shared_store.url, tmp_path, reactor)
    store.startService()
    await store.wait_until_available(interval=0.05)
    config = load(write_config(tmp_path / "tests.toml", node_sections(
        tmp_path / "tests", 0, node={"name": "tests", "machine_id": WORKER}, store={"url": shared_store.url},
    )), environ={})
    gates = Gates()
    # this process's own node on the shared store: only its engine and its worker run (completions are
    # published as TASK_COMPLETE, as a node's worker does)
    built = build_node(config, reactor, store=store, registry=work_tasks(gates), concurrency=2)
    engine, worker = built.engine, built.worker
    engine.startService()
    worker.startService()
    yield Cluster(node, store, engine, gates, [engine, worker])
    gates.open_all()
    await worker.stopService()
    await engine.stopService()
    await store.stopService()


@pytest_twisted.ensureDeferred
async def test_wait_follows_a_task_with_its_progress_to_success(cluster: Cluster) -> None:
    task_id = await cluster.engine.enqueue("test.gated", {"key": "g", "result": {"moved": 3}})
    run = ovsctl(cluster.node, "wait", task_id, "--interval", "0.3")
    await until(lambda: "40%" in run.stderr or run.ended.called)  # the bar shows what the task reported
    assert not run.ended.called, run.stderr
    assert "STARTED" in run.stderr
    cluster.gates.open("g")
    assert await ended(run) == 0, run.stderr
    assert json.loads(run.stdout) == {"moved": 3}  # the result, for scripts
    assert "100%" in run.stderr and "SUCCESS" in run.stderr


@pytest_twisted.ensureDeferred
async def test_wait_follows_a_task_of_the_daemon_itself(cluster: Cluster) -> None:
    session = Session(cluster.node)
    router = session.storagerouter_guid()
    task_id = session.ok("GET", f"/api/storagerouters/{router}/get_version_info/")
    run = ovsctl(cluster.node, "wait", task_id)
    assert await ended(run) == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["storagerouter_guid"] == router and "ovsd" in result["versions"]


@pytest_twisted.ensureDeferred
async def test_wait_exits_1_with_the_error_of_a_failed_task(cluster: Cluster) -> None:
    task_id = await cluster.engine.enqueue("test.fail", {"reason": "no space left on the backend"})
    run = ovsctl(cluster.node, "wait", task_id)
    assert await ended(run) == 1
    assert f"task {task_id} FAILURE: no space left on the backend" in run.stderr
    assert run.stdout == ""


@pytest_twisted.ensureDeferred
async def test_wait_gives_up_at_its_timeout_and_an_unknown_task_is_an_error(cluster: Cluster) -> None:
    task_id = await cluster.engine.enqueue("test.gated", {"key": "never"})
    await eventually(lambda: _status_is(cluster.engine, task_id, "STARTED"))
    started = time.monotonic()
    run = ovsctl(cluster.node, "wait", task_id, "--timeout", "1", "--interval", "0.5")
    assert await ended(run) == 1
    assert time.monotonic() - started < 15
    assert f"task {task_id} is still STARTED after 1 s" in run.stderr
    run = ovsctl(cluster.node, "wait", "6f1e4b9e-0000-4000-8000-000000000000")
    assert await ended(run) == 1
    assert "404 object_not_found" in run.stderr


async def _status_is(engine: TaskEngine, task_id: str, status: str) -> bool:
    record = await engine.get(task_id)
    return record is not None and record["status"] == status


@pytest_twisted.ensureDeferred
async def test_events_prints_messages_as_they_arrive(cluster: Cluster) -> None:
    session = Session(cluster.node)
    run = ovsctl(cluster.node, "events", "--count", "2", "--timeout", "30")
    # once ovsctl holds its long-poll on the daemon, what is published reaches it
    await until(lambda: "subscriber" in run.stderr or run.ended.called)
    await eventually(lambda: defer.succeed(_holds_a_wait(session)), timeout=20)
    task_id = await cluster.engine.enqueue("test.noop")
    completed = await cluster.engine.wait(task_id, 10)
    assert completed is not None and completed["status"] == "SUCCESS"
    await publish_event(cluster.store, "vdisk_created", {"vdisk_guid": "g1"})
    assert await ended(run) == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 2, run.stdout
    assert lines[0]["id"] < lines[1]["id"]
    assert {(m["type"], json.dumps(m["body"])) for m in lines} == {
        ("TASK_COMPLETE", json.dumps(task_id)),
        ("EVENT", json.dumps({"type": "vdisk_created", "metadata": {"vdisk_guid": "g1"}})),
    }


def _holds_a_wait(session: Session) -> bool:
    return any(n["node"] == "ctl" and n["active_waits"] >= 1 for n in session.ok("GET", "/api/statistics/")["nodes"])


@pytest_twisted.ensureDeferred
async def test_events_stops_at_its_timeout(cluster: Cluster) -> None:
    started = time.monotonic()
    run = ovsctl(cluster.node, "events", "--timeout", "1")
    assert await ended(run) == 0, run.stderr
    assert run.stdout == ""
    assert 1 <= time.monotonic() - started < 15
    run = ovsctl(cluster.node, "events", "--timeout", "0.5", "--count", "1")
    assert await ended(run) == 1  # the count asked for was not reached
