"""makeService: builds this node's services and wires them together (wiring only, no logic)."""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from ovsd import tls
from ovsd.api.service import ApiService
from ovsd.auth.authenticator import BearerAuthenticator
from ovsd.config import Config
from ovsd.context import NodeContext
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.repository import Repository
from ovsd.logfile import LogService
from ovsd.notify import NotifyService
from ovsd.store.connection import Store
from ovsd.store.embedded import EmbeddedStoreServer

log = Logger()


class NodeService(MultiService):
    """A MultiService that stops its children one after the other, last started first stopped.

    Twisted's MultiService stops all children at once; we need order: the API drains before the store
    connection closes, and the embedded store server stops last.
    """

    reactor: Any = None

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        from twisted.application.service import Service

        Service.stopService(self)
        for child in reversed(list(self)):
            try:
                yield defer.maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping {service}", service=child.name)
        if self.reactor is not None and getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            # twistd re-raises the signal that stopped it; a SIGTERM that ended in a clean, complete
            # shutdown is a normal stop and exits 0 (systemd and the operator see success)
            self.reactor._exitSignal = None


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
    context = NodeContext(config=config, store=store, reactor=reactor)
    repository = Repository(context, clock=reactor.seconds)
    context.repository = repository
    context.authenticator = BearerAuthenticator(repository)
    api = ApiService(context)
    api.setServiceParent(top)

    async def ready() -> None:
        await api.when_listening()
        await store.wait_until_available()
        # the admin user exists before the node says it is ready
        await bootstrap(repository, config)

    NotifyService(ready, reactor).setServiceParent(top)
    return top
