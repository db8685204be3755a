"""What one node's services share: its configuration, the store, the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ovsd.config import Config
from ovsd.readiness import Readiness
from ovsd.store.connection import Store

if TYPE_CHECKING:
    from ovsd.agent.supervisor import DriverState
    from ovsd.api.http import ApiSite
    from ovsd.auth.identity import Authenticator
    from ovsd.dal.repository import Repository
    from ovsd.messages.bus import MessageBus
    from ovsd.storage.node import NodeStorage


# What the node's views and task functions use of the task engine, the worker and the agent. Protocols, not
# their classes: those modules take this context (the worker hands it to task functions), and naming their
# classes here would make an import circle.
class TaskQueue(Protocol):
    """The node's task engine (ovsd.tasks.engine.TaskEngine)."""

    @property
    def waiting(self) -> int: ...

    async def enqueue(self, name: str, kwargs: dict[str, Any] | None = None, node: str | None = None) -> str: ...

    async def wait(self, task_id: str, timeout: float) -> dict[str, Any] | None: ...


class TaskRunner(Protocol):
    """The node's task worker (ovsd.tasks.worker.TaskWorker)."""

    @property
    def running_tasks(self) -> int: ...


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
    """The collaborators of this node, handed to every service and to the API (no module globals)."""

    config: Config
    store: Store
    reactor: Any  # the reactor (or a Clock in unit tests that only need time)
    # finds the caller of an API request (bearer tokens); without one, no call that needs a token succeeds
    authenticator: Authenticator | None = None
    # the object model (users, clients, tokens, StorageRouters …); set once the node has built it
    repository: Repository | None = None
    # the task engine (enqueue, wait, revoke, overview), the message bus (long-polls), this node's agent
    # and task worker; set by makeService (tests set what they use)
    tasks: TaskQueue | None = None
    messages: MessageBus | None = None
    agent: Agent | None = None
    worker: TaskRunner | None = None
    # this node's StorageDrivers' daemons (qemu-storage-daemon), for the storage tasks; set by makeService
    storage: NodeStorage | None = None
    started_at: float = 0.0
    # the API serves only once the node is bootstrapped (makeService starts it not ready; harnesses that
    # bootstrap before they serve leave it ready)
    readiness: Readiness = field(default_factory=lambda: Readiness(ready=True))
    api_site: ApiSite | None = None
    # (when read, StorageRouter ips): the cluster's ips, reused for a moment (ovsd.api.metadata)
    ips_cache: tuple[float, list[str]] | None = None
