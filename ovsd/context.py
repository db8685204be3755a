"""The node handle of the API's views and the task functions: its configuration, store, clock and parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ovsd.config import Config
from ovsd.readiness import Readiness
from ovsd.store.connection import Store

if TYPE_CHECKING:
    from ovsd.agent.supervisor import DriverState
    from ovsd.auth.identity import Authenticator
    from ovsd.dal.repository import Repository
    from ovsd.messages.bus import MessageBus
    from ovsd.storage.node import NodeStorage


# What the node's views and task functions use of the task engine and the agent. Protocols, not
# their classes: those modules take this context (the worker hands it to task functions), and naming their
# classes here would make an import circle.
class TaskQueue(Protocol):
    """The node's task engine (ovsd.tasks.engine.TaskEngine): what the views and task functions use of it."""

    @property
    def waiting(self) -> int: ...

    async def enqueue(self, name: str, kwargs: dict[str, Any] | None = None, node: str | None = None) -> str: ...

    async def wait(self, task_id: str, timeout: float) -> dict[str, Any] | None: ...

    async def get(self, task_id: str) -> dict[str, Any] | None: ...

    async def revoke(self, task_id: str) -> bool: ...

    async def overview(self) -> dict[str, dict[str, list[dict[str, Any]]]]: ...


class DriverStates(Protocol):
    def state(self, guid: str) -> DriverState | None: ...


class Agent(Protocol):
    """The node's agent (ovsd.agent.service.NodeAgent)."""

    @property
    def supervisor(self) -> DriverStates: ...

    async def sync_drivers(self) -> None: ...

    def live_figures(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NodeContext:
    """The one handle of the API's views and of the task functions on their node.

    Views and task functions are plain functions registered by decorators (``@endpoint``, ``@task``): they
    have no constructor to receive collaborators, so they reach them here, through ``call.context`` and
    ``TaskContext.node``. Everything else gets what it uses in its constructor (``ovsd.service.build_node``);
    a service holds this context only to hand it on. Built once by build_node after every part it names,
    and frozen: no field is ever missing or replaced while the node runs.
    """

    config: Config
    store: Store
    reactor: Any
    # finds the caller of an API request (bearer tokens)
    authenticator: Authenticator
    # the object model (users, clients, tokens, StorageRouters …)
    repository: Repository
    # the task engine (enqueue, wait, read, overview), the message bus (long-polls) and this node's agent
    tasks: TaskQueue
    messages: MessageBus
    agent: Agent
    # this node's StorageDrivers' daemons (qemu-storage-daemon), for the storage tasks
    storage: NodeStorage
    started_at: float
    # the API serves only once the node is bootstrapped (the startup sequence, or a harness that bootstraps
    # by itself, marks it ready: ovsd.service.Node.mark_ready)
    readiness: Readiness
