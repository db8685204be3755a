"""makeService: builds this node's services and wires them together (wiring only, no logic)."""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Mapping
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from ovsd import tls
from ovsd.agent.launcher import Launchers
from ovsd.agent.service import NodeAgent
from ovsd.agent.supervisor import DriverSupervisor
from ovsd.api.service import ApiService
from ovsd.auth.authenticator import BearerAuthenticator
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


def makeService(config: Config, reactor: Any = None) -> NodeService:
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    for path in prepare_data_dir(config):
        log.info("created {path}", path=path)

    top = NodeService()
    top.reactor = reactor
    LogService(config.log.level, config.log.json_file).setServiceParent(top)
    if config.store.url == "embedded":
        EmbeddedStoreServer(config.store_dir, reactor).setServiceParent(top)
    store = Store(config.store.url, config.store_dir, reactor)
    store.setServiceParent(top)
    context = NodeContext(config=config, store=store, reactor=reactor, started_at=reactor.seconds(),
                          readiness=Readiness(ready=False))
    repository = Repository(store, clock=reactor.seconds, reactor=reactor, thresholds=config.agent)
    context.repository = repository
    context.authenticator = BearerAuthenticator(repository)
    load_controllers()  # their @task declarations must be registered before the worker starts

    async def publish_completion(task_id: str, record: Mapping[str, Any]) -> None:
        await publish_task_complete(store, task_id)

    async def announce(event_type: str, metadata: Mapping[str, Any]) -> None:
        await publish_event(store, event_type, metadata)

    launchers = Launchers(config.storagedriver)  # a bad command template stops the daemon here
    # LOCAL and DISTRIBUTED vPools are served by qemu-storage-daemon; the generic launcher stays for the rest
    storage = NodeStorage(reactor, repository, driver_run_dir(str(config.node.data_dir)))
    for vpool_type in BLOCK_TYPES:
        launchers.register(vpool_type, storage.launcher)
    context.storage = storage
    supervisor = DriverSupervisor(reactor, config.storagedriver)
    supervisor.setServiceParent(top)
    agent = NodeAgent(context, repository, supervisor, launchers, announce)
    supervisor.on_change = agent.driver_changed
    context.agent = agent
    engine = TaskEngine(store, DEFAULT_REGISTRY, config.node.machine_id, reactor, on_complete=publish_completion)
    engine.setServiceParent(top)
    context.tasks = engine
    worker = TaskWorker(
        context, config.node.machine_id, config.worker.concurrency, DEFAULT_REGISTRY, reactor,
        on_complete=publish_completion, on_heartbeat=agent.worker_heartbeat,
        heartbeat_interval=config.agent.heartbeat_interval,
    )
    worker.setServiceParent(top)
    context.worker = worker
    agent.setServiceParent(top)
    api = ApiService(context)
    api.setServiceParent(top)
    # the bus stops before the API drains: it answers the held long-polls at once, so a stop is not held
    # up by GUIs waiting for messages
    bus = MessageBus(store, reactor)
    bus.setServiceParent(top)
    context.messages = bus

    async def ready() -> None:
        await api.when_listening()
        while True:
            await store.wait_until_available()
            try:
                # the admin user exists, and this node is registered, before the node says it is ready
                await bootstrap(repository, config)
                break
            except StoreUnavailable:
                log.warn("bootstrap interrupted: the store went away; retrying")
            except SchemaTooNew as e:
                # reading a layout we do not know would serve it wrong and could write it back damaged
                log.critical("refusing to start: {reason}", reason=str(e))
                top.stop_with(3)
                return
        await agent.when_registered()
        context.readiness.set_ready()

    NotifyService(ready, reactor).setServiceParent(top)
    return top
