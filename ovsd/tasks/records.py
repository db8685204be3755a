"""The task record: its states, how it is stored in the ``task:<id>`` hash, and what readers get back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

PENDING = "PENDING"
STARTED = "STARTED"
RETRY = "RETRY"
FAILURE = "FAILURE"
SUCCESS = "SUCCESS"
REVOKED = "REVOKED"

#: states after which nothing changes any more (the record then expires)
FINISHED = frozenset({SUCCESS, FAILURE, REVOKED})

#: finished records are kept this long (seconds), as the contract says
FINISHED_TTL = 24 * 3600

INTERRUPTED = "interrupted"


def worker_name(node_name: str) -> str:
    """The worker name the API shows, the original's Celery hostname shape."""
    return f"ovsd@{node_name}"


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _json(value: str | None, default: Any) -> Any:
    return json.loads(value) if value not in (None, "") else default


def decode(fields: dict[str, str]) -> dict[str, Any]:
    """The record as readers see it, from the stored hash fields (absent fields are None)."""
    progress = fields.get("progress")
    return {
        "id": fields.get("id"),
        "name": fields.get("name"),
        "args": _json(fields.get("args"), []),
        "kwargs": _json(fields.get("kwargs"), {}),
        "status": fields.get("status"),
        "result": _json(fields.get("result"), None),
        "error": fields.get("error"),
        "progress": int(progress) if progress not in (None, "") else None,
        "node": fields.get("node") or None,
        "time_created": _float(fields.get("time_created")),
        "time_start": _float(fields.get("time_start")),
        "time_done": _float(fields.get("time_done")),
        "worker": fields.get("worker") or None,
    }


def pairs(flat: Sequence[Any] | None) -> dict[str, str]:
    """A flat HGETALL-style reply ``[k1, v1, k2, v2, …]`` as a dict."""
    if not flat:
        return {}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def api_view(record: dict[str, Any]) -> dict[str, Any]:
    """The task object of ``GET /api/tasks/<id>/`` (contract §7): result is the error text on failure."""
    status = record["status"]
    return {
        "id": record["id"],
        "status": status,
        "successful": status == SUCCESS,
        "failed": status == FAILURE,
        "ready": status in FINISHED,
        "result": record["result"] if status == SUCCESS else record["error"] if status == FAILURE else None,
        "progress": record["progress"],
        "node": record["node"],
    }
