"""Tasks (contract §7): the worker overview, one task, waiting for its result, revoking it."""

from __future__ import annotations

from typing import Any

from ovsd.api.app import Response
from ovsd.api.call import Call
from ovsd.api.declare import RW, R, endpoint, resource
from ovsd.api.errors import ApiError, not_acceptable
from ovsd.api.params import Param
from ovsd.context import TaskQueue
from ovsd.tasks import FAILURE, PENDING, REVOKED, SUCCESS, api_view

resource("tasks", "task", summary="Tasks: the work actions start, run on the node that must do it")

DEFAULT_WAIT = 60.0
MAX_WAIT = 3600.0


def engine(call: Call) -> TaskQueue:
    return call.context.tasks


def _unknown(task_id: str) -> ApiError:
    return ApiError(404, "object_not_found", f"Task {task_id} does not exist (or finished more than 24 h ago)")


@endpoint(resource="tasks", method="GET", kind="list", roles=R, returns="object")
async def list_tasks(call: Call) -> Any:
    """Tasks per worker (ovsd@<StorageRouter name>): active, scheduled, reserved, revoked."""
    return await engine(call).overview()


@endpoint(resource="tasks", method="GET", kind="fetch", roles=R)
async def get_task(call: Call) -> Any:
    """One task: status, result (the error text on failure), progress and node."""
    record = await engine(call).get(call.guid)
    if record is None:
        raise _unknown(call.guid)
    return api_view(record)


@endpoint(resource="tasks", method="GET", link="get", roles=R, returns="value",
          params=(Param("timeout", float, where="query", default=DEFAULT_WAIT),))
async def wait_for_task(call: Call) -> Any:
    """Wait (up to timeout s) for the task: its result; 406 with the error if it failed; 202 if still running."""
    timeout = min(max(call.params["timeout"], 0.0), MAX_WAIT)
    # a GET: a client that goes away cancels this call (the dispatcher does), which releases its wait at once
    record = await engine(call).wait(call.guid, timeout)
    if record is None:
        raise _unknown(call.guid)
    if record["status"] == SUCCESS:
        return record["result"]
    if record["status"] == FAILURE:
        raise not_acceptable(str(record["error"]))
    if record["status"] == REVOKED:
        # over, without a result: a 202 ("still running") would send a client's wait loop spinning
        raise not_acceptable(f"Task {call.guid} was revoked")
    return Response(api_view(record), 202)


@endpoint(resource="tasks", method="DELETE", roles=RW, returns="none")
async def revoke_task(call: Call) -> None:
    """Revoke a task that has not started yet (406 once it runs or ran)."""
    tasks = engine(call)
    record = await tasks.get(call.guid)
    if record is None:
        raise _unknown(call.guid)
    if record["status"] != PENDING or not await tasks.revoke(call.guid):
        raise not_acceptable(f"Task {call.guid} has already started; it cannot be revoked")
