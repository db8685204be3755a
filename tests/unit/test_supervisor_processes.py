"""The storagedriver supervisor with real processes on the real reactor."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_twisted
from twisted.internet import reactor, task

from ovsd.agent.launcher import GenericLauncher, LaunchSpec
from ovsd.agent.supervisor import FAILURE, HALTED, RUNNING, DriverState, DriverSupervisor
from ovsd.config import StoragedriverConfig
from tests.support import processes_with

STORAGEDRIVER = {"guid": "sd-guid-1", "name": "sd1", "storagedriver_id": "sd1", "mountpoint": "/mnt/sd1"}
VPOOL = {"name": "pool", "type": "LOCAL"}


async def wait_until(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await task.deferLater(reactor, 0.02, lambda: None)
    return predicate()


def unique_sleep() -> str:
    """A sleep command line found in /proc only for this test's processes."""
    return f"sleep {random.randrange(10**8, 10**9)}"


class Supervised:
    """A supervisor running one command as StorageDriver sd-guid-1, recording every reported state."""

    def __init__(self, *command: str, stop_grace: float = 5.0, max_restarts: int = 5, **kwargs: Any) -> None:
        config = StoragedriverConfig(command=command, stop_grace=stop_grace, max_restarts=max_restarts)
        self.spec = GenericLauncher(config).launch_spec(STORAGEDRIVER, VPOOL)
        self.reports: list[tuple[DriverState, str | None]] = []
        self.others: list[tuple[str, DriverState]] = []
        self.supervisor = DriverSupervisor(reactor, config, self.report, **kwargs)

    def report(self, guid: str, state: DriverState, old_status: str | None) -> None:
        if guid == "sd-guid-1":
            self.reports.append((state, old_status))
        else:
            self.others.append((guid, state))

    def start(self) -> None:
        self.supervisor.startService()
        self.supervisor.ensure("sd-guid-1", self.spec)

    @property
    def state(self) -> DriverState | None:
        return self.supervisor.state("sd-guid-1")

    def running_pid(self, other_than: int | None = None) -> int | None:
        state = self.state
        if state is None or state.status != RUNNING or state.pid in (None, other_than):
            return None
        return state.pid


_started: list[Supervised] = []


@pytest_twisted.async_yield_fixture
async def supervised() -> AsyncIterator[Callable[..., Supervised]]:
    def make(*command: str, **kwargs: Any) -> Supervised:
        s = Supervised(*command, **kwargs)
        _started.append(s)
        return s

    yield make
    while _started:
        s = _started.pop()
        if s.supervisor.running:
            await s.supervisor.stopService()


@pytest_twisted.ensureDeferred
async def test_a_sigkilled_driver_runs_again_with_a_new_pid_within_2s(supervised: Any) -> None:
    s = supervised("sh", "-c", "exec " + unique_sleep())
    s.start()
    pid = await wait_until(s.running_pid, 5)
    assert pid
    # the driver itself is the supervised pid (the guard execs it): its command line is the driver's
    assert await wait_until(lambda: b"sleep" in open(f"/proc/{pid}/cmdline", "rb").read(), 5)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    new_pid = await wait_until(lambda: s.running_pid(other_than=pid), 2)
    assert new_pid, s.reports
    assert time.monotonic() - killed_at < 2
    assert s.state is not None and s.state.restarts == 1
    assert (HALTED, RUNNING) in [(state.status, old) for state, old in s.reports]
    assert any(state.last_exit == "SIGKILL" for state, _ in s.reports)


@pytest_twisted.ensureDeferred
async def test_a_driver_that_always_exits_ends_in_failure_with_its_exit_code(supervised: Any) -> None:
    s = supervised("sh", "-c", "exit 3", max_restarts=2, first_delay=0.05)
    s.start()
    await wait_until(lambda: s.state is not None and s.state.status == FAILURE, 10)
    assert s.state is not None
    assert s.state.status == FAILURE and s.state.last_exit == 3 and s.state.restarts == 2 and s.state.pid is None
    # three runs (the first and two restarts), then it stays down
    pids = {state.pid for state, _ in s.reports if state.pid is not None}
    assert len(pids) == 3
    reported = len(s.reports)
    await task.deferLater(reactor, 0.3, lambda: None)
    assert len(s.reports) == reported and s.state.status == FAILURE


@pytest_twisted.ensureDeferred
async def test_remove_stops_the_process_and_reports_halted(supervised: Any) -> None:
    command = unique_sleep()
    s = supervised(*command.split())
    s.start()
    pid = await wait_until(s.running_pid, 5)
    assert await wait_until(lambda: processes_with(command), 5) == [pid]
    await s.supervisor.remove("sd-guid-1")
    assert processes_with(command) == []
    assert s.reports[-1][0].status == HALTED and s.reports[-1][0].pid is None and s.reports[-1][1] == RUNNING
    assert s.supervisor.state("sd-guid-1") is None


@pytest_twisted.ensureDeferred
async def test_stopping_the_service_leaves_no_process_behind(supervised: Any) -> None:
    command = unique_sleep()
    config = StoragedriverConfig(command=tuple(command.split()), stop_grace=5.0, max_restarts=5)
    s = supervised(*command.split())
    s.start()
    # a second driver, whose shell has a child of its own
    s.supervisor.ensure("sd-guid-2", LaunchSpec(argv=["sh", "-c", f"{command}; true"]))
    assert await wait_until(lambda: len(processes_with(command)) == 3, 5), processes_with(command)
    started = time.monotonic()
    await s.supervisor.stopService()
    assert time.monotonic() - started < config.stop_grace  # they stopped on TERM, no KILL needed
    assert processes_with(command) == []
    assert all(state.status == HALTED for state in s.supervisor.states().values())


@pytest_twisted.ensureDeferred
async def test_a_driver_ignoring_sigterm_is_killed_after_the_grace(supervised: Any) -> None:
    command = unique_sleep()
    s = supervised("sh", "-c", f"trap '' TERM; {command}; true", stop_grace=0.5)
    s.start()
    # the shell and its sleep
    assert await wait_until(lambda: len(processes_with(command)) == 2, 5)
    await wait_until(s.running_pid, 5)
    started = time.monotonic()
    await s.supervisor.remove("sd-guid-1")
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3
    assert s.reports[-1][0].last_exit == "SIGKILL"
    # the shell's child does not outlive it as an orphan
    assert processes_with(command) == []


@pytest_twisted.ensureDeferred
async def test_what_a_crashed_driver_started_does_not_outlive_it(supervised: Any) -> None:
    command = unique_sleep()
    s = supervised("sh", "-c", f"{command} & wait")
    s.start()
    first = await wait_until(lambda: processes_with(command) if len(processes_with(command)) == 2 else None, 5)
    pid = s.running_pid()
    assert pid in first
    os.kill(pid, signal.SIGKILL)
    assert await wait_until(lambda: s.running_pid(other_than=pid), 2)
    # the background sleep of the killed shell went with it; the new run has its own
    second = await wait_until(lambda: processes_with(command) if len(processes_with(command)) == 2 else None, 5)
    assert second and not set(first) & set(second)
