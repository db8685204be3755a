"""A StorageDriver process's state as the node reports it (its processes are run by ``ovsd.supervision``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ovsd.supervision import ExitReason, exit_reason

__all__ = ["FAILURE", "HALTED", "RUNNING", "DriverState", "ExitReason", "exit_reason"]

RUNNING = "RUNNING"
HALTED = "HALTED"
FAILURE = "FAILURE"


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
