"""A real daemon keeps the storagedriver processes of its StorageDrivers running, as seen through its API.

The StorageDrivers are created in the model (through the repository, on the daemon's store), as the
add_vpool work will; the daemon's agent notices them at its next heartbeat. The generic launcher runs a
harmless command: ``sleep`` for most drivers, an immediate ``exit 3`` for those named ``crash…``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor, task, threads

from ovsd.dal.repository import Repository
from ovsd.store.connection import Store
from tests.cluster_support import Session, SharedStore, StartDaemon, daemon, shared_store
from tests.support import BIN, TwistdNode, processes_with, wait_for

__all__ = ["daemon", "shared_store"]  # fixtures

AGENT = {"heartbeat_interval": 0.5, "warning_after": 1.5, "failure_after": 3.0}


@pytest_twisted.async_yield_fixture
async def model(tmp_path: Path, shared_store: SharedStore) -> AsyncIterator[Repository]:
    """The object model on the daemons' store, as this test process sees it."""
    store = Store(shared_store.url, tmp_path / "unused", reactor)
    store.startService()
    await store.wait_until_available(interval=0.05)
    yield Repository(store, reactor=reactor)
    await store.stopService()


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    """The first truthy value of ``await check()`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s (last {value!r})"
        await task.deferLater(reactor, 0.02, lambda: None)


async def driver_state(session: Session, guid: str) -> dict[str, Any]:
    path = f"/api/storagedrivers/{guid}/?contents=status,pid,restarts,last_exit"
    return dict(await threads.deferToThread(session.ok, "GET", path))


async def until_state(session: Session, guid: str, accept: Callable[[dict[str, Any]], Any], timeout: float,
                      ) -> dict[str, Any]:
    """The StorageDriver's process state as the API shows it, once ``accept`` takes it."""
    async def check() -> dict[str, Any] | None:
        state = await driver_state(session, guid)
        return state if accept(state) else None

    found: dict[str, Any] = await until(check, timeout, f"storagedriver {guid}")
    return found


async def runs(pid: int, command: str) -> bool:
    return command_line(pid) == command


@pytest_twisted.ensureDeferred
async def test_storagedriver_processes_are_kept_running_and_stopped_with_the_daemon(
    daemon: StartDaemon, shared_store: SharedStore, model: Repository,
) -> None:
    marker = f"sleep {random.randrange(10**8, 10**9)}"
    script = f"case {{name}} in crash*) exit 3;; esac; exec {marker}"
    node: TwistdNode = daemon("sr-d", shared_store.url, agent=AGENT,
                              storagedriver={"command": ["sh", "-c", script], "max_restarts": 2, "stop_grace": 2.0})
    session = Session(node)
    router = session.storagerouter_guid()
    vpool = await model.create("vpool", {"name": "pool", "type": "SWIFT_S3"})  # the generic launcher
    driver = await model.create("storagedriver", {
        "name": "sd-pool", "storagedriver_id": "pool-sr-d", "vpool_guid": vpool.guid, "storagerouter_guid": router,
    })

    # its process runs, and the API shows it
    state = await until_state(session, driver.guid, lambda s: s["status"] == "RUNNING" and s["pid"], 10)
    await until(lambda: runs(state["pid"], marker), 5, "the storagedriver's command")
    assert await threads.deferToThread(session.ok, "GET", f"/api/storagedrivers/{driver.guid}/can_be_deleted/")

    # SIGKILLed: running again, with a new pid and one restart more, within 2 s
    killed = time.monotonic()
    os.kill(state["pid"], signal.SIGKILL)
    again = await until_state(session, driver.guid, lambda s: s["status"] == "RUNNING" and s["pid"] not in (
        None, state["pid"]), 2)
    assert time.monotonic() - killed <= 2
    assert again["restarts"] == state["restarts"] + 1
    assert again["last_exit"] == "SIGKILL"
    await until(lambda: runs(again["pid"], marker), 2, "the restarted storagedriver's command")

    # a command that always exits: FAILURE with its exit code once the restart budget is spent
    crashing = await model.create("storagedriver", {
        "name": "crash-pool", "storagedriver_id": "pool-sr-d-crash", "vpool_guid": vpool.guid,
        "storagerouter_guid": router,
    })
    failed = await until_state(session, crashing.guid, lambda s: s["status"] == "FAILURE", 15)
    assert str(failed["last_exit"]) == "3" and failed["pid"] is None and failed["restarts"] == 2

    # ovsctl status shows both drivers with their process status and restarts
    table = await threads.deferToThread(
        subprocess.run, [str(BIN / "ovsctl"), "-c", str(node.config_path), "status"], capture_output=True,
        text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
    assert rows["sr-d"][2] == "OK"
    assert rows["sd-pool"][1:] == ["sr-d", "pool", "RUNNING", str(again["pid"]), "1", "SIGKILL"]
    assert rows["crash-pool"][1:] == ["sr-d", "pool", "FAILURE", "-", "2", "3"]

    # stopping the daemon leaves no storagedriver process behind
    assert await threads.deferToThread(node.stop, signal.SIGTERM, 20) == 0
    assert wait_for(lambda: not processes_with(marker), 2), processes_with(marker)
