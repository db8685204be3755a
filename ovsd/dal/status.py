"""A StorageRouter's status, derived at read time from its heartbeat ages (never stored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ovsd.config import FAILURE_AFTER, WARNING_AFTER

OK = "OK"
WARNING = "WARNING"
FAILURE = "FAILURE"
UNKNOWN = "UNKNOWN"


class Thresholds(Protocol):
    @property
    def warning_after(self) -> float: ...

    @property
    def failure_after(self) -> float: ...


@dataclass(frozen=True)
class StatusThresholds:
    warning_after: float
    failure_after: float


#: the configuration's defaults (agent.warning_after / agent.failure_after), for a repository built without one
DEFAULT_THRESHOLDS = StatusThresholds(warning_after=WARNING_AFTER, failure_after=FAILURE_AFTER)


def storagerouter_status(heartbeats: Mapping[str, Any], now: float, thresholds: Thresholds) -> str:
    """UNKNOWN without heartbeats; FAILURE when the process or the worker is silent for too long;
    WARNING when the worker is late; else OK (contract §6, storagerouters)."""
    process = heartbeats.get("process")
    celery = heartbeats.get("celery")
    if process is None and celery is None:
        return UNKNOWN
    if process is None or now - float(process) > thresholds.failure_after:
        return FAILURE
    if celery is None or now - float(celery) > thresholds.failure_after:
        return FAILURE
    if now - float(celery) > thresholds.warning_after:
        return WARNING
    return OK


def warns_before_failing(heartbeats: Mapping[str, Any], thresholds: Thresholds) -> bool:
    """Whether these heartbeats, left as they are, pass through WARNING on their way from OK to FAILURE.

    WARNING starts once the worker's beat is ``warning_after`` old; FAILURE once either beat is
    ``failure_after`` old. When the process beat lags the worker's by more than the gap between the two
    thresholds, FAILURE comes first and there is no WARNING.
    """
    process, celery = heartbeats.get("process"), heartbeats.get("celery")
    if process is None or celery is None:
        return False
    warning_from = float(celery) + thresholds.warning_after
    failure_from = min(float(celery), float(process)) + thresholds.failure_after
    return warning_from < failure_from


def status_changes(
    heartbeats: Mapping[str, Any], previous: str | None, current: str, thresholds: Thresholds,
) -> list[tuple[str, str]]:
    """The status changes (old, new) to announce for a StorageRouter last announced ``previous``, now ``current``.

    Nothing for a first sighting (``previous`` None) or no change. With unchanged heartbeats a status only
    degrades with time, OK → WARNING → FAILURE; an observer that looks once per heartbeat interval can
    look just before a short WARNING and just after it. Such a jump is announced as the two changes that
    really happened, in order, so a GUI never misses the WARNING of a node that died.
    """
    if previous is None or previous == current:
        return []
    if previous == OK and current == FAILURE and warns_before_failing(heartbeats, thresholds):
        return [(OK, WARNING), (WARNING, FAILURE)]
    return [(previous, current)]
