"""A StorageDriver process's state as the node reports it, and how its processes are started and signalled."""

from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass
from typing import Any

from twisted.internet import error
from twisted.python.failure import Failure

from ovsd.childguard import guard_argv

RUNNING = "RUNNING"
HALTED = "HALTED"
FAILURE = "FAILURE"

#: an exit code, a signal name ("SIGKILL"), or why the process was given up ("not ready: …")
ExitReason = int | str


@dataclass(frozen=True)
class DriverState:
    """What the node knows about one StorageDriver's process (pushed as node-owned live data)."""

    status: str
    pid: int | None
    #: restarts after a crash since the supervisor first ran this driver (a changed spec is not a crash)
    restarts: int
    last_exit: ExitReason | None
    #: when ``status`` last changed (clock seconds)
    since: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_reason(reason: Failure) -> ExitReason:
    """The exit code of an ended process, or the name of the signal that ended it."""
    value = reason.value
    if isinstance(value, error.ProcessTerminated) and value.signal is not None:
        try:
            return signal.Signals(value.signal).name
        except ValueError:
            return f"signal {value.signal}"
    if isinstance(value, error.ProcessDone | error.ProcessTerminated) and value.exitCode is not None:
        return int(value.exitCode)
    return reason.getErrorMessage()


#: the guard, run so that the driver leads a process group of its own: a stop or a crash then reaches
#: whatever the driver started too (a child left behind would also hold its output pipes open). It is
#: given the daemon's pid: a daemon that died while the interpreter was still starting must not be
#: mistaken for init (or a subreaper), the parent the guard would otherwise see and accept.
def guarded_argv(argv: list[str]) -> list[str]:
    """The command line that runs argv through the childguard, in its own process group."""
    return guard_argv(argv, new_group=True)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group a driver leads (a no-op once every process of it is gone)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
