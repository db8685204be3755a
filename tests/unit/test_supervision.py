"""The supervision core shared by the embedded store and the storagedrivers, on real child processes."""

from __future__ import annotations

import sys
import time

import pytest_twisted
from twisted.internet import reactor, task
from twisted.python.failure import Failure

from ovsd.supervision import ChildProcess, CrashLoop, doubling, exit_reason, spawn, stepped


class Recorder(ChildProcess):
    def __init__(self) -> None:
        super().__init__(time.monotonic())
        self.lines: list[tuple[str, int]] = []
        self.reason: Failure | None = None
        self.killed_after: float | None = None

    def output_line(self, line: str, fd: int) -> None:
        self.lines.append((line, fd))

    def ended(self, reason: Failure) -> None:
        self.reason = reason

    def killing(self, grace: float) -> None:
        self.killed_after = grace


STUBBORN = "\n".join([
    "import signal, sys, time",
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
    "print('first line'); print('  '); sys.stdout.write('second '); sys.stdout.flush()",
    "sys.stderr.write('on stderr\\n'); sys.stderr.flush()",
    "print('line', flush=True)",
    "time.sleep(30)",
])


@pytest_twisted.ensureDeferred
async def test_a_child_that_ignores_term_is_killed_after_the_grace_and_its_output_is_logged_by_line() -> None:
    child = Recorder()
    pid = spawn(reactor, child, [sys.executable, "-c", STUBBORN])
    assert pid == child.pid and pid > 0
    deadline = time.monotonic() + 10
    while len(child.lines) < 3 and time.monotonic() < deadline:
        await _sleep(0.02)
    assert sorted(child.lines) == [("first line", 1), ("on stderr", 2), ("second line", 1)]
    started = time.monotonic()
    await child.terminate(reactor, 0.3)
    assert child.stopping and child.exited and child.killed_after == 0.3
    assert 0.3 <= time.monotonic() - started < 5
    assert child.reason is not None and exit_reason(child.reason) == "SIGKILL"
    assert child.when_ended().called  # later waiters fire at once


@pytest_twisted.ensureDeferred
async def test_a_child_that_stops_on_term_is_not_killed() -> None:
    child = Recorder()
    spawn(reactor, child, [sys.executable, "-c", "import time; time.sleep(30)"])
    await child.terminate(reactor, 10.0)
    assert child.killed_after is None and child.kill_call is None
    assert child.reason is not None and exit_reason(child.reason) == "SIGTERM"


def test_the_pause_grows_while_a_program_dies_young_and_starts_over_after_a_stable_run() -> None:
    table = CrashLoop(stepped((0.1, 0.25, 0.5)), stable_after=10.0)
    assert [table.crashed(1.0) for _ in range(5)] == [0.1, 0.25, 0.5, 0.5, 0.5]
    assert table.crashed(10.0) == 0.1 and table.crashes == 1
    doubled = CrashLoop(doubling(0.25, 1.0), stable_after=10.0)
    assert [doubled.crashed(0.0) for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    doubled.reset()
    assert doubled.crashed(0.0) == 0.25


async def _sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)
