"""Tasks: work queued on the node that must do it (or any node), run by each node's worker.

Declare a task function with ``@task`` (``ovsd.tasks.registry``); enqueue, revoke, read and wait with a
``TaskEngine``; each node runs one ``TaskWorker`` service.
"""

from ovsd.tasks.engine import CompletionHook, NodeUnavailable, TaskEngine, is_node_alive
from ovsd.tasks.records import FAILURE, FINISHED, PENDING, RETRY, REVOKED, STARTED, SUCCESS, api_view, worker_name
from ovsd.tasks.registry import DEFAULT_REGISTRY, Route, TaskContext, TaskDefinition, TaskRegistry, UnknownTask, task
from ovsd.tasks.worker import TaskWorker

__all__ = [
    "DEFAULT_REGISTRY",
    "FAILURE",
    "FINISHED",
    "PENDING",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "CompletionHook",
    "NodeUnavailable",
    "Route",
    "TaskContext",
    "TaskDefinition",
    "TaskEngine",
    "TaskRegistry",
    "TaskWorker",
    "UnknownTask",
    "api_view",
    "is_node_alive",
    "task",
    "worker_name",
]
