"""The declarations of task functions: their name, where they run, whether a re-run is safe, their time limit."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from ovsd.context import NodeContext


class Route(enum.Enum):
    """Which node's queue a task goes to."""

    #: the caller names the StorageRouter (its machine_id) at enqueue time
    STORAGEROUTER = "storagerouter"
    #: the node that enqueues it runs it
    THIS_NODE = "this_node"
    #: the shared queue: any node's worker may run it
    ANY = "any"


class UnknownTask(KeyError):
    """No task function is declared under that name."""


ProgressReporter = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class TaskContext:
    """What a running task function gets: its node's collaborators, its id, and a way to report progress."""

    node: NodeContext
    task_id: str
    name: str
    _report: ProgressReporter

    async def progress(self, percent: float) -> None:
        """Record how far the task is (0 to 100); readers see it in the task record at once."""
        await self._report(percent)


TaskFunction = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    function: TaskFunction
    route: Route
    idempotent: bool
    timeout: float


class TaskRegistry:
    """Task functions by name. Controllers declare into the default one; tests build their own."""

    def __init__(self) -> None:
        self._definitions: dict[str, TaskDefinition] = {}

    def task(
        self, *, name: str, route: Route = Route.ANY, idempotent: bool = False, timeout: float = 300.0,
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Declare ``async def fn(ctx: TaskContext, **kwargs)`` as the task ``name``.

        ``idempotent`` says whether running it again after an interruption is safe; if not, an interrupted
        run ends FAILURE "interrupted" instead. ``timeout`` (seconds) ends a run with FAILURE.
        """
        if timeout <= 0:
            raise ValueError(f"task {name}: timeout must be positive")

        def declare(function: TaskFunction) -> TaskFunction:
            if name in self._definitions and self._definitions[name].function is not function:
                raise ValueError(f"task {name} is declared twice")
            self._definitions[name] = TaskDefinition(name, function, route, idempotent, float(timeout))
            return function

        return declare

    def get(self, name: str) -> TaskDefinition:
        try:
            return self._definitions[name]
        except KeyError:
            raise UnknownTask(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._definitions

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter(self._definitions.values())


#: where the controllers' ``@task`` declarations land (a declaration table, like a Klein app's routes)
DEFAULT_REGISTRY = TaskRegistry()
task = DEFAULT_REGISTRY.task
