"""A worker process killed mid-task (SIGKILL, as a crash or an OOM kill): no task stays STARTED; a task that
may run twice runs again, one that may not ends FAILURE "interrupted"."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.config import load
from ovsd.service import build_node
from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.store.embedded import EmbeddedStoreServer
from ovsd.tasks import TaskEngine
from tests.support import REPO, node_sections, write_config
from tests.tasks_support import eventually, held_tasks


class WorkerProcess:
    """``python -m tests.tasks_support``: node n1's worker in a process of its own."""

    def __init__(self, directory: Path, store_socket: Path) -> None:
        self.directory = directory
        self.config = write_config(directory / "n1.toml", node_sections(
            directory / "n1", 0, store={"url": f"unix://{store_socket}"},
        ))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.directory / "worker.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.tasks_support", str(self.config)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_text(self) -> str:
        return (self.directory / "worker.log").read_text(errors="replace")


@pytest.fixture
def worker_process(tmp_path: Path, store_server: EmbeddedStoreServer) -> Iterator[WorkerProcess]:
    process = WorkerProcess(tmp_path, store_server.store_dir / "valkey.sock")
    yield process
    process.kill()


async def all_started(engine: TaskEngine, ids: list[str]) -> bool:
    records = [await engine.get(i) for i in ids]
    return all(r is not None and r["status"] == "STARTED" and r["worker"] == "ovsd@n1" for r in records)


async def enqueue_held(engine: TaskEngine, store: Store, hold: Path, names: list[str]) -> list[str]:
    await store.execute("SET", keys.node_live("mid-n1"), "1", "EX", 60)
    ids = []
    for name in names:
        node = "mid-n1" if name.startswith("test.node_") else None
        ids.append(await engine.enqueue(name, {"hold": str(hold)}, node=node))
    return ids


@pytest_twisted.ensureDeferred
async def test_after_a_kill_and_restart_no_task_stays_started(
    tmp_path: Path, store: Store, worker_process: WorkerProcess,
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    engine = TaskEngine(store, held_tasks(), "mid-test", reactor)
    try:
        worker_process.start()
        again, once, shared_once = await enqueue_held(
            engine, store, hold, ["test.node_idempotent", "test.node_once", "test.shared_once"],
        )
        await eventually(lambda: all_started(engine, [again, once, shared_once]), timeout=30)

        worker_process.kill()
        hold.unlink()
        assert await all_started(engine, [again, once, shared_once])  # nobody else can know yet

        worker_process.start()
        records: dict[str, Any] = {i: await engine.wait(i, 30) for i in (again, once, shared_once)}
        assert records[again]["status"] == "SUCCESS", worker_process.log_text()
        assert records[again]["result"] == "test.node_idempotent"
        for task_id in (once, shared_once):
            assert records[task_id]["status"] == "FAILURE", worker_process.log_text()
            assert records[task_id]["error"] == "interrupted"
        overview = await engine.overview()
        assert overview["active"] == {"ovsd@n1": []} and overview["reserved"] == {"ovsd@n1": []}
        assert await store.execute("SCARD", keys.TASKS_UNFINISHED) == 0
    finally:
        await engine.stopService()


@pytest_twisted.ensureDeferred
async def test_another_node_takes_over_the_shared_tasks_of_a_killed_worker(
    tmp_path: Path, store: Store, worker_process: WorkerProcess,
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    engine = TaskEngine(store, held_tasks(), "mid-test", reactor)
    config = load(write_config(tmp_path / "n2.toml", node_sections(tmp_path / "n2", 0)), environ={})
    other = build_node(config, reactor, store=store, registry=held_tasks(), concurrency=2,
                       worker_options={"claim_idle": 0.3}).worker
    try:
        worker_process.start()
        again, once = await enqueue_held(engine, store, hold, ["test.shared_idempotent", "test.shared_once"])
        await eventually(lambda: all_started(engine, [again, once]), timeout=30)
        worker_process.kill()
        hold.unlink()

        other.startService()
        done_again, done_once = await engine.wait(again, 30), await engine.wait(once, 30)
        assert done_again is not None and done_again["status"] == "SUCCESS"
        assert done_again["worker"] == "ovsd@n2"
        assert done_once is not None and done_once["status"] == "FAILURE" and done_once["error"] == "interrupted"
    finally:
        if other.running:
            await other.stopService()
        await engine.stopService()
