"""The node handle of the API's views and the task functions: its configuration, store, clock and parts."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """The node's task engine (ovsd.tasks.engine.TaskEngine)."""

    @property
    def waiting(self) -> int: ...

    async def enqueue(self, name: str, kwargs: dict[str, Any] | None = None, node: str | None = None) -> str: ...

    async def wait(self, task_id: str, timeout: float) -> dict[str, Any] | None: ...


class DriverStates(Protocol):
    def state(self, guid: str) -> DriverState | None: ...


class Agent(Protocol):
    """The node's agent (ovsd.agent.service.NodeAgent)."""

    @property
    def supervisor(self) -> DriverStates: ...

    async def sync_drivers(self) -> None: ...

    def live_figures(self) -> dict[str, Any]: ...


@dataclass
class NodeContext:
    """The node's collaborators as the API's views and the task functions reach them (built by build_node;
    the services themselves get what they need in their constructors)."""

    config: Config
    store: Store
    reactor: Any  # the reactor (or a Clock in unit tests that only need time)
    # finds the caller of an API request (bearer tokens); without one, no call that needs a token succeeds
    authenticator: Authenticator | None = None
    # the object model (users, clients, tokens, StorageRouters …); set once the node has built it
    repository: Repository | None = None
    # the task engine (enqueue, wait, revoke, overview), the message bus (long-polls) and this node's agent;
    # set by build_node (partial harnesses set what they use)
    tasks: TaskQueue | None = None
    messages: MessageBus | None = None
    agent: Agent | None = None
    # this node's StorageDrivers' daemons (qemu-storage-daemon), for the storage tasks; set by build_node
    storage: NodeStorage | None = None
    started_at: float = 0.0
    # the API serves only once the node is bootstrapped (build_node starts it not ready; harnesses that
    # bootstrap before they serve leave it ready)
    readiness: Readiness = field(default_factory=lambda: Readiness(ready=True))
    # (when read, StorageRouter ips): the cluster's ips, reused for a moment (ovsd.api.metadata)
    ips_cache: tuple[float, list[str]] | None = None
