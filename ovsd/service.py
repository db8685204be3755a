"""makeService: builds this node's services and wires them together (wiring only, no logic)."""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from ovsd import tls
from ovsd.agent.launcher import Launchers
from ovsd.agent.service import NodeAgent
from ovsd.agent.supervisor import DriverSupervisor
from ovsd.api.declare import Registry
from ovsd.api.service import ApiService
from ovsd.auth.authenticator import BearerAuthenticator
from ovsd.auth.identity import Authenticator
from ovsd.config import Config
from ovsd.context import NodeContext
from ovsd.controllers import load_controllers
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.migrations import SchemaTooNew
from ovsd.dal.repository import Repository
from ovsd.logfile import LogService
from ovsd.messages import MessageBus, publish_event, publish_task_complete
from ovsd.notify import NotifyService
from ovsd.readiness import Readiness
from ovsd.storage.node import BLOCK_TYPES, NodeStorage, driver_run_dir
from ovsd.store.connection import Store, StoreUnavailable
from ovsd.store.embedded import EmbeddedStoreServer
from ovsd.tasks import DEFAULT_REGISTRY, TaskEngine, TaskWorker
from ovsd.tasks.registry import TaskRegistry
from ovsd.twisted_private import forget_exit_signal

log = Logger()


class NodeService(MultiService):
    """A MultiService that stops its children one after the other, last started first stopped.

    Twisted's MultiService stops all children at once; we need order: the API drains before the store
    connection closes, and the embedded store server stops last.
    """

    reactor: Any = None
    # non-zero when the node stopped itself because it must not run (a store from a newer ovsd): the process
    # exits with it once twistd has finished its own shutdown, so systemd and scripts see a failure
    exit_status = 0

    def stop_with(self, status: int) -> None:
        """Stop the node and exit with ``status`` after a complete shutdown."""
        self.exit_status = status
        atexit.register(os._exit, status)  # after twistd's cleanup (pid file, logs), which ends in exit 0
        if self.reactor is not None:
            self.reactor.stop()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        from twisted.application.service import Service

        Service.stopService(self)
        for child in reversed(list(self)):
            if not child.running:
                continue  # stopped on its own already (a test stopping one part, a store that never started)
            try:
                yield defer.maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping {service}", service=child.name)
        if self.reactor is not None:
            # twistd re-raises the signal that stopped it; a SIGTERM that ended in a clean, complete
            # shutdown is a normal stop and exits 0 (systemd and the operator see success)
            forget_exit_signal(self.reactor, signal.SIGTERM)


def prepare_data_dir(config: Config) -> list[str]:
    """Create the data dir and the TLS material that is missing (what `ovsctl init` does)."""
    config.node.data_dir.mkdir(parents=True, exist_ok=True)
    created = tls.ensure_material(config.tls_dir, config.node.ip, config.node.name)
    return [str(p) for p in created]


@dataclass(eq=False)
class Node:
    """One node's parts, built and wired once by :func:`build_node`: what ``twistd -n ovsd`` runs, and what the
    tests and benchmarks start. ``top`` holds the services in start order (stopped in reverse)."""

    config: Config
    top: NodeService
    context: NodeContext
    store: Store
    repository: Repository
    storage: NodeStorage
    supervisor: DriverSupervisor
    agent: NodeAgent
    engine: TaskEngine
    worker: TaskWorker
    api: ApiService
    bus: MessageBus
    _ready: list[defer.Deferred[None]] = field(default_factory=list, repr=False)

    @property
    def services(self) -> list[Any]:
        """The node's own services in start order (without the log, the store and the notifier)."""
        return [self.supervisor, self.engine, self.worker, self.agent, self.api, self.bus]

    def when_ready(self) -> defer.Deferred[None]:
        """Fires once the node is bootstrapped and registered (at once if it is)."""
        if self.context.readiness.ready:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._ready.append(d)
        return d

    def mark_ready(self) -> None:
        """Say the node is bootstrapped: the API serves every route from now on. The startup sequence calls
        it; a harness that bootstraps the store itself (or serves an API that needs no bootstrap) calls it
        instead of starting that sequence."""
        self.context.readiness.set_ready()
        waiting, self._ready = self._ready, []
        for d in waiting:
            d.callback(None)


def build_node(
    config: Config, reactor: Any, clock: Any = None, *, store: Store | None = None,
    registry: TaskRegistry = DEFAULT_REGISTRY, concurrency: int | None = None,
    authenticator: Authenticator | None = None, endpoints: Registry | None = None,
    worker_options: Mapping[str, Any] | None = None, tool_search: str | None = None,
) -> Node:
    """Build and wire every part of a node; each part gets its collaborators here and nowhere else.

    Nothing is started: ``node.top`` runs the whole node, a harness starts the parts it needs
    (``node.api``, ``node.engine``, ``node.worker`` …) and calls ``node.mark_ready()`` when it does not run
    the startup sequence (a NotifyService in ``top``).

    Without ``store`` the node is a whole daemon: it owns its logging, its store connection and, for
    ``store.url = embedded``, the private Valkey, and a store from a newer ovsd stops the process with exit 3.
    With ``store`` (a test's or a benchmark's shared connection) it is the node's services alone on it.

    ``clock`` is the time tests drive with a twisted ``Clock`` (the reactor when None): the object model's
    now (token expiry, the brute-force windows, StorageRouter status) and the worker's task time limits,
    heartbeats and record times. Connections, retries, the agent and the API always run on the reactor.
    ``registry`` and ``concurrency`` choose the task functions and how many run at once (tests use their own);
    ``authenticator`` finds the caller of an API request (bearer tokens when None); ``endpoints`` are the
    declared endpoints the API serves (every view of ovsd/api/views when None); ``worker_options`` override
    the worker's keyword options (``claim_idle``, ``stop_grace``, ``on_complete``, ``on_heartbeat``,
    ``heartbeat_interval``) for tests that shorten or observe them; ``tool_search`` is where the storage layer
    looks for qemu's programs (PATH when None).
    """
    owns_process = store is None
    time = clock if clock is not None else reactor
    top = NodeService()
    top.reactor = reactor
    if owns_process:
        LogService(config.log.level, config.log.json_file).setServiceParent(top)
        if config.store.url == "embedded":
            EmbeddedStoreServer(config.store_dir, reactor).setServiceParent(top)
        store = Store(config.store.url, config.store_dir, reactor)
        store.setServiceParent(top)
    assert store is not None
    started_at = reactor.seconds()
    repository = Repository(store, clock=time.seconds, reactor=reactor, thresholds=config.agent)
    load_controllers()  # their @task declarations must be registered before the worker starts
    bound_store = store

    async def publish_completion(task_id: str, record: Mapping[str, Any]) -> None:
        await publish_task_complete(bound_store, task_id)

    async def announce(event_type: str, metadata: Mapping[str, Any]) -> None:
        await publish_event(bound_store, event_type, metadata)

    launchers = Launchers(config.storagedriver)  # a bad command template stops the daemon here
    # LOCAL and DISTRIBUTED vPools are served by qemu-storage-daemon; the generic launcher stays for the rest
    storage = NodeStorage(reactor, repository, driver_run_dir(str(config.node.data_dir)), tool_search=tool_search)
    for vpool_type in BLOCK_TYPES:
        launchers.register(vpool_type, storage.launcher)
    supervisor = DriverSupervisor(reactor, config.storagedriver)
    engine = TaskEngine(store, registry, config.node.machine_id, reactor, on_complete=publish_completion)
    # the bus stops before the API drains: it answers the held long-polls at once, so a stop is not held
    # up by GUIs waiting for messages
    bus = MessageBus(store, reactor)

    def load() -> dict[str, int]:
        """What this node is doing now, for the live figures its agent pushes with every heartbeat (called
        once the node runs: the API and the worker are built below, after the agent they report to)."""
        return {"requests": api.site.requests, "tasks_running": worker.running_tasks,
                "active_waits": bus.waiter_count + engine.waiting}

    agent = NodeAgent(config, store, repository, reactor, supervisor, launchers, announce, storage, load,
                      started_at=started_at)
    supervisor.on_change = agent.driver_changed
    # the views' and task functions' one handle, complete before the worker and the API that hand it on
    context = NodeContext(
        config=config, store=store, reactor=reactor, authenticator=authenticator or BearerAuthenticator(repository),
        repository=repository, tasks=engine, messages=bus, agent=agent, storage=storage, started_at=started_at,
        readiness=Readiness(ready=False),
    )
    worker_hooks: dict[str, Any] = {
        "on_complete": publish_completion, "on_heartbeat": agent.worker_heartbeat,
        "heartbeat_interval": config.agent.heartbeat_interval, **(worker_options or {}),
    }
    worker = TaskWorker(
        context, store, reactor, registry, machine_id=config.node.machine_id, node_name=config.node.name,
        concurrency=concurrency or config.worker.concurrency, clock=clock, **worker_hooks,
    )
    api = ApiService(config, reactor, context, endpoints)
    node = Node(config, top, context, store, repository, storage, supervisor, agent, engine, worker, api, bus)
    for service in node.services:
        service.setServiceParent(top)

    async def ready() -> None:
        await api.when_listening()
        while True:
            await bound_store.wait_until_available()
            try:
                # the admin user exists, and this node is registered, before the node says it is ready
                await bootstrap(repository, config)
                break
            except StoreUnavailable:
                log.warn("bootstrap interrupted: the store went away; retrying")
            except SchemaTooNew as e:
                # reading a layout we do not know would serve it wrong and could write it back damaged
                log.critical("refusing to start: {reason}", reason=str(e))
                if owns_process:
                    top.stop_with(3)
                return
        await agent.when_registered()
        node.mark_ready()

    NotifyService(ready, reactor).setServiceParent(top)
    return node


def makeService(config: Config, reactor: Any = None) -> NodeService:
    """The twistd plugin's service: this node, as a whole daemon."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    for path in prepare_data_dir(config):
        log.info("created {path}", path=path)
    return build_node(config, reactor).top
