"""A StorageRouter's status, derived at read time from its heartbeat ages (never stored)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Thresholds(Protocol):
    @property
    def warning_after(self) -> float: ...

    @property
    def failure_after(self) -> float: ...


def storagerouter_status(heartbeats: Mapping[str, Any], now: float, thresholds: Thresholds) -> str:
    """UNKNOWN without heartbeats; FAILURE when the process or the worker is silent for too long;
    WARNING when the worker is late; else OK (contract §6, storagerouters)."""
    process = heartbeats.get("process")
    celery = heartbeats.get("celery")
    if process is None and celery is None:
        return "UNKNOWN"
    if process is None or now - float(process) > thresholds.failure_after:
        return "FAILURE"
    if celery is None or now - float(celery) > thresholds.failure_after:
        return "FAILURE"
    if now - float(celery) > thresholds.warning_after:
        return "WARNING"
    return "OK"
