"""Benchmark of a storagedriver's restart: SIGKILL the supervised process, time until a new one runs it.

    .venv/bin/python bench/driver_restart.py        (from the repo root)

A DriverSupervisor on the real reactor runs one StorageDriver with the generic launcher (command
`sleep <unique number>`, default back-off). Each of 5 rounds SIGKILLs the driver's pid and measures the
time until the supervisor reports RUNNING with a new pid AND that pid runs the driver's command line
(the guard has exec'ed it). Every kill hits a driver that ran stably (`stable_after` is shortened to
1 s and each round waits that long), so each round measures the first, fast restart of a crash rather
than the growing back-off of a crash loop. Prints every round, then

    driver_restart_ms=…           (median of the 5 rounds, 1 decimal)
    budget: driver_restart_ms <= 1500 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error (the driver is stopped in every case).
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from twisted.internet import task  # noqa: E402

from ovsd.agent.launcher import Launchers  # noqa: E402
from ovsd.agent.supervisor import RUNNING, DriverSupervisor  # noqa: E402
from ovsd.config import StoragedriverConfig  # noqa: E402

BUDGET_MS = 1500.0
ROUNDS = 5
TIMEOUT = 10.0
GUID = "bench-storagedriver"
STABLE_AFTER = 1.0


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


async def wait_until(reactor: Any, predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await task.deferLater(reactor, 0.002, lambda: None)
    raise RuntimeError(f"no running storagedriver within {timeout}s")


async def measure(reactor: Any) -> int:
    command = ("sleep", str(random.randrange(10**8, 10**9)))
    config = StoragedriverConfig(command=command, stop_grace=5.0, max_restarts=ROUNDS + 1)
    supervisor = DriverSupervisor(reactor, config, stable_after=STABLE_AFTER)
    spec = Launchers(config).launch_spec({"guid": GUID, "name": GUID}, {"name": "bench", "type": "LOCAL"})

    def running(other_than: int | None = None) -> int | None:
        state = supervisor.state(GUID)
        if state is None or state.status != RUNNING or state.pid in (None, other_than):
            return None
        return state.pid if command_line(state.pid) == " ".join(command) else None

    supervisor.startService()
    try:
        supervisor.ensure(GUID, spec)
        pid = await wait_until(reactor, running, TIMEOUT)
        timings = []
        for n in range(1, ROUNDS + 1):
            await task.deferLater(reactor, STABLE_AFTER, lambda: None)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            new_pid = await wait_until(reactor, lambda old=pid: running(other_than=old), TIMEOUT)
            timings.append((time.monotonic() - killed_at) * 1000)
            print(f"round {n}: pid {pid} killed, pid {new_pid} running after {timings[-1]:.1f} ms", flush=True)
            pid = new_pid
    finally:
        await supervisor.stopService()
    median = statistics.median(timings)
    verdict = "PASS" if median <= BUDGET_MS else "FAIL"
    print(f"driver_restart_ms={median:.1f}")
    print(f"budget: driver_restart_ms <= {BUDGET_MS:g} -> {verdict}", flush=True)
    return 0 if verdict == "PASS" else 1


def main(reactor: Any) -> Any:
    async def run() -> None:
        try:
            status = await measure(reactor)
        except Exception as e:
            print(f"driver_restart: {e}", file=sys.stderr)
            status = 1
        if status:
            raise SystemExit(status)

    from twisted.internet import defer

    return defer.ensureDeferred(run())


if __name__ == "__main__":
    task.react(main)
