"""What one node's services share: its configuration, the store, the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovsd.config import Config
from ovsd.readiness import Readiness
from ovsd.store.connection import Store

if TYPE_CHECKING:
    from ovsd.agent.service import NodeAgent
    from ovsd.api.http import ApiSite
    from ovsd.auth.identity import Authenticator
    from ovsd.dal.repository import Repository
    from ovsd.messages.bus import MessageBus
    from ovsd.storage.node import NodeStorage
    from ovsd.tasks.engine import TaskEngine
    from ovsd.tasks.worker import TaskWorker


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
    tasks: TaskEngine | None = None
    messages: MessageBus | None = None
    agent: NodeAgent | None = None
    worker: TaskWorker | None = None
    # this node's StorageDrivers' daemons (qemu-storage-daemon), for the storage tasks; set by makeService
    storage: NodeStorage | None = None
    started_at: float = 0.0
    # the API serves only once the node is bootstrapped (makeService starts it not ready; harnesses that
    # bootstrap before they serve leave it ready)
    readiness: Readiness = field(default_factory=lambda: Readiness(ready=True))
    api_site: ApiSite | None = None
    # (when read, StorageRouter ips): the cluster's ips, reused for a moment (ovsd.api.metadata)
    ips_cache: tuple[float, list[str]] | None = None
