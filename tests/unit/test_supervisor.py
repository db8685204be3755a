"""The storagedriver supervisor's decisions, with time on a Clock and the OS's processes faked.

Process exits are fed to the supervisor the way the reactor reports them (``processExited`` with the
reason), so back-off, crash budget, spec changes and stop escalation are checked to the exact delay.
The real-process behaviour is in test_supervisor_processes.py.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, error
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ovsd.agent.launcher import LaunchSpec
from ovsd.agent.supervisor import FAILURE, HALTED, RUNNING, DriverState, DriverSupervisor
from ovsd.config import StoragedriverConfig

# above the kernel's largest pid_max (2**22): the supervisor's /proc lookups for them find nothing real
_pids = itertools.count(5_000_000)


class FakeProcess:
    """A process as the OS would run it: records the signals it gets."""

    def __init__(self, proto: Any, args: list[str]) -> None:
        self.pid = next(_pids)
        self.proto = proto
        self.args = args
        self.signals: list[str] = []

    def closeStdin(self) -> None:
        pass

    def signalProcess(self, sig: str) -> None:
        self.signals.append(sig)

    def end(self, code: int | None = None, sig: int | None = None) -> None:
        if code == 0:
            reason: Exception = error.ProcessDone(0)
        else:
            reason = error.ProcessTerminated(exitCode=code, signal=sig)
        self.proto.processExited(Failure(reason))


class FakeOS:
    """The outside world: spawnProcess without real processes."""

    def __init__(self) -> None:
        self.processes: list[FakeProcess] = []
        self.refuse: OSError | None = None

    def spawnProcess(self, proto: Any, executable: str, args: list[str], env: Any = None, **_: Any) -> FakeProcess:
        if self.refuse is not None:
            raise self.refuse
        process = FakeProcess(proto, list(args))
        proto.makeConnection(process)
        self.processes.append(process)
        return process

    @property
    def last(self) -> FakeProcess:
        return self.processes[-1]


class Harness:
    def __init__(self, max_restarts: int = 3, stop_grace: float = 5.0, **kwargs: Any) -> None:
        self.clock = Clock()
        self.os = FakeOS()
        self.changes: list[tuple[str, DriverState, str | None]] = []
        config = StoragedriverConfig(command=("unused",), stop_grace=stop_grace, max_restarts=max_restarts)
        self.supervisor = DriverSupervisor(self.os, config, self.record, clock=self.clock, **kwargs)

    def record(self, guid: str, state: DriverState, old_status: str | None) -> None:
        self.changes.append((guid, state, old_status))

    def state(self, guid: str = "sd1") -> DriverState:
        state = self.supervisor.state(guid)
        assert state is not None
        return state


SPEC = LaunchSpec(argv=["volumedriver", "--name", "sd1"])


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.supervisor.startService()
    return harness


def test_ensure_starts_the_driver_through_the_childguard(h: Harness) -> None:
    h.supervisor.ensure("sd1", SPEC)
    process = h.os.last
    assert process.args == [sys.executable, "-m", "ovsd.childguard", "--parent", str(os.getpid()), "--new-group",
                            *SPEC.argv]
    assert h.state() == DriverState(RUNNING, process.pid, 0, None, h.clock.seconds())
    assert h.changes == [("sd1", h.state(), None)]
    # the same spec again changes nothing
    h.supervisor.ensure("sd1", LaunchSpec(argv=list(SPEC.argv)))
    assert len(h.os.processes) == 1 and len(h.changes) == 1


def test_crash_loop_backs_off_doubling_then_ends_in_failure() -> None:
    # delays that are exact binary fractions, so the Clock's float sums hit them exactly
    h = Harness(max_restarts=3, first_delay=0.25)
    h.supervisor.startService()
    h.supervisor.ensure("sd1", SPEC)
    for restart, delay in enumerate([0.25, 0.5, 1.0], start=1):
        h.os.last.end(code=3)
        assert h.state().status == HALTED and h.state().pid is None and h.state().last_exit == 3
        h.clock.advance(delay - 2**-10)
        assert len(h.os.processes) == restart and h.state().status == HALTED
        h.clock.advance(2**-10)
        assert len(h.os.processes) == restart + 1
        assert h.state() == DriverState(RUNNING, h.os.last.pid, restart, 3, h.clock.seconds())
    # the crash after max_restarts (3) restarts: FAILURE, and no endless loop
    h.os.last.end(sig=9)
    assert h.state().status == FAILURE
    assert h.state().last_exit == "SIGKILL"
    assert h.state().restarts == 3
    h.clock.advance(3600)
    assert len(h.os.processes) == 4
    statuses = [(state.status, old) for _, state, old in h.changes]
    assert statuses[:3] == [(RUNNING, None), (HALTED, RUNNING), (RUNNING, HALTED)]
    assert statuses[-1] == (FAILURE, RUNNING)


def test_delay_is_capped_and_a_stable_run_resets_the_back_off() -> None:
    h = Harness(max_restarts=10, first_delay=0.25, max_delay=0.5, stable_after=10.0)
    h.supervisor.startService()
    h.supervisor.ensure("sd1", SPEC)
    for _ in range(3):
        h.os.last.end(code=1)
        h.clock.advance(0.5)
    # 0.25, 0.5, then capped at 0.5 (not 1.0): three restarts in 1.5 s
    assert h.state().restarts == 3 and h.state().status == RUNNING
    h.os.last.end(code=1)
    h.clock.advance(0.5 - 2**-10)
    assert h.state().status == HALTED
    h.clock.advance(2**-10)
    assert h.state().status == RUNNING
    # it ran stably: the next crash is restarted after the first delay again
    h.clock.advance(10)
    h.os.last.end(code=1)
    h.clock.advance(0.25)
    assert h.state().status == RUNNING and h.state().restarts == 5


def test_failure_stays_until_a_new_spec_or_a_reset() -> None:
    h = Harness(max_restarts=0)
    h.supervisor.startService()
    h.supervisor.ensure("sd1", SPEC)
    h.os.last.end(code=7)
    assert h.state().status == FAILURE and h.state().last_exit == 7
    h.supervisor.ensure("sd1", SPEC)
    h.clock.advance(60)
    assert len(h.os.processes) == 1 and h.state().status == FAILURE
    h.supervisor.reset("sd1")
    assert h.state().status == RUNNING and len(h.os.processes) == 2
    h.os.last.end(code=7)
    assert h.state().status == FAILURE
    changed = LaunchSpec(argv=["volumedriver", "--name", "sd1", "--fixed"])
    h.supervisor.ensure("sd1", changed)
    assert h.state().status == RUNNING and h.os.last.args[6:] == changed.argv
    assert h.state().last_exit == 7  # the reason of the last failure stays visible
    with pytest.raises(KeyError):
        h.supervisor.reset("unknown")


def test_a_changed_spec_stops_the_old_process_then_starts_the_new_one(h: Harness) -> None:
    h.supervisor.ensure("sd1", SPEC)
    old = h.os.last
    changed = LaunchSpec(argv=["volumedriver", "--name", "sd1"], env={"TUNING": "1"})
    h.supervisor.ensure("sd1", changed)
    assert old.signals == ["TERM"] and len(h.os.processes) == 1
    old.end(code=0)
    new = h.os.last
    assert new is not old
    assert h.state() == DriverState(RUNNING, new.pid, 0, 0, h.clock.seconds())
    assert [s.status for _, s, _ in h.changes] == [RUNNING, HALTED, RUNNING]


@pytest_twisted.ensureDeferred
async def test_stop_escalates_to_kill_after_the_grace_and_waits_for_the_end() -> None:
    h = Harness(stop_grace=2.0)
    h.supervisor.startService()
    h.supervisor.ensure("sd1", SPEC)
    h.supervisor.ensure("sd2", LaunchSpec(argv=["volumedriver", "--name", "sd2"]))
    stubborn, polite = h.os.processes
    stopped = h.supervisor.stopService()
    assert stubborn.signals == ["TERM"] and polite.signals == ["TERM"]
    polite.end(sig=15)
    h.clock.advance(1.9)
    assert stubborn.signals == ["TERM"] and not stopped.called
    h.clock.advance(0.1)
    assert stubborn.signals == ["TERM", "KILL"] and not stopped.called
    stubborn.end(sig=9)
    await stopped
    assert h.state("sd1") == DriverState(HALTED, None, 0, "SIGKILL", h.clock.seconds())
    assert h.state("sd2").status == HALTED and h.state("sd2").last_exit == "SIGTERM"
    # nothing restarts a stopped service's drivers
    h.clock.advance(60)
    assert len(h.os.processes) == 2


@pytest_twisted.ensureDeferred
async def test_remove_stops_and_forgets_the_driver(h: Harness) -> None:
    h.supervisor.ensure("sd1", SPEC)
    process = h.os.last
    removed = h.supervisor.remove("sd1")
    assert process.signals == ["TERM"]
    process.end(code=0)
    await removed
    assert h.supervisor.state("sd1") is None
    assert h.changes[-1][1].status == HALTED and h.changes[-1][2] == RUNNING
    # a driver waiting for its restart is removed without starting again
    h.supervisor.ensure("sd2", SPEC)
    h.os.last.end(code=1)
    await h.supervisor.remove("sd2")
    h.clock.advance(60)
    assert len(h.os.processes) == 2 and h.supervisor.states() == {}


def test_ready_check_gates_running_and_a_failing_one_counts_as_a_crash() -> None:
    h = Harness(max_restarts=1, ready_timeout=5.0)
    h.supervisor.startService()
    answered: defer.Deferred[None] = defer.Deferred()

    async def ready() -> None:
        await answered

    h.supervisor.ensure("sd1", LaunchSpec(argv=["qsd"], control_socket="/run/qmp.sock", ready=ready))
    assert h.state().status == HALTED and h.state().pid == h.os.last.pid
    answered.callback(None)
    assert h.state().status == RUNNING
    # a process that never answers is killed after ready_timeout and restarted with back-off
    h.os.last.end(code=1)
    answered = defer.Deferred()
    h.clock.advance(0.2)
    unready = h.os.last
    h.clock.advance(5.0)
    assert unready.signals == ["KILL"]
    unready.end(sig=9)
    assert h.state().status == FAILURE
    assert h.state().last_exit == "not ready: no answer in 5s"


@pytest_twisted.ensureDeferred
async def test_state_changes_are_reported_in_order_even_when_reporting_is_slow(h: Harness) -> None:
    reported: list[tuple[str | None, str]] = []
    gates: list[defer.Deferred[None]] = []

    async def slow(guid: str, state: DriverState, old_status: str | None) -> None:
        gate: defer.Deferred[None] = defer.Deferred()
        gates.append(gate)
        await gate
        reported.append((old_status, state.status))

    h.supervisor.on_change = slow
    h.supervisor.ensure("sd1", SPEC)
    h.os.last.end(code=2)
    h.clock.advance(0.2)
    assert len(gates) == 1  # the second report waits for the first
    flushed = h.supervisor.notified()
    while len(reported) < 3:
        gates[len(reported)].callback(None)
    await flushed
    assert reported == [(None, RUNNING), (RUNNING, HALTED), (HALTED, RUNNING)]


def test_failing_observer_does_not_stop_supervision(h: Harness) -> None:
    def broken(guid: str, state: DriverState, old_status: str | None) -> None:
        raise RuntimeError("store down")

    h.supervisor.on_change = broken
    h.supervisor.ensure("sd1", SPEC)
    h.os.last.end(code=1)
    h.clock.advance(0.2)
    assert h.state().status == RUNNING and h.state().restarts == 1


def test_a_refused_start_is_retried_like_a_crash(h: Harness) -> None:
    h.os.refuse = OSError(24, "Too many open files")
    h.supervisor.ensure("sd1", SPEC)
    assert h.state().status == HALTED
    assert h.state().last_exit == "spawn failed: [Errno 24] Too many open files"
    h.os.refuse = None
    h.clock.advance(0.2)
    assert h.state().status == RUNNING and h.state().restarts == 1 and len(h.os.processes) == 1
