"""The HTTPS listener: TLS 1.2+ only, graceful stop that lets requests in flight finish."""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.resource import IResource

from ovsd import tls
from ovsd.api.app import ApiApp
from ovsd.api.declare import Registry
from ovsd.api.http import ApiResource, ApiSite
from ovsd.api.staticfiles import StaticFiles
from ovsd.api.transport import listen_tls
from ovsd.config import Config
from ovsd.context import NodeContext

log = Logger()


class ApiService(Service):
    """Owns the listening port of the API."""

    name = "api"
    drain_timeout = 10.0

    def __init__(
        self, config: Config, reactor: Any, context: NodeContext, endpoints: Registry | None = None,
    ) -> None:
        """``context`` is handed on to the views (``call.context``); ``endpoints`` are the declared endpoints
        to serve (every view of ovsd/api/views when None)."""
        self.config = config
        self.reactor = reactor
        self.api = ApiApp(context, endpoints)
        app: IResource = self.api.app.resource()
        if config.api.static_dir:
            # a directory's files at / (a GUI without a proxy); /api stays the app's
            app = StaticFiles(app, config.api.static_dir)
        self.site = ApiSite(ApiResource(app, self.api.render_declared), clock=reactor)
        self.site.access_log = config.log.level == "debug"
        self.api.site = self.site
        self.port: IListeningPort | None = None
        self._listening: list[defer.Deferred[IListeningPort]] = []

    def when_listening(self) -> defer.Deferred[IListeningPort]:
        if self.port is not None:
            return defer.succeed(self.port)
        d: defer.Deferred[IListeningPort] = defer.Deferred()
        self._listening.append(d)
        return d

    def startService(self) -> None:
        super().startService()
        config = self.config
        d = defer.maybeDeferred(
            listen_tls, self.reactor, config.api.port, self.site, tls.server_options(config.tls_dir),
            config.api.host,
        )

        def listening(port: IListeningPort) -> None:
            self.port = port
            addr: Any = port.getHost()
            log.info("API listening on https://{host}:{port}", host=addr.host, port=addr.port)
            waiting, self._listening = self._listening, []
            for w in waiting:
                w.callback(port)

        def failed(failure: Any) -> None:
            log.failure("cannot listen on {host}:{port}", failure, host=config.api.host, port=config.api.port)
            # a node that cannot serve its API is not running: stop rather than linger half-started
            self.reactor.stop()

        d.addCallbacks(listening, failed)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            yield self.port.stopListening()
            log.info("API stopped accepting; {n} request(s) in flight", n=self.site.in_flight)
        yield self.site.drain(self.drain_timeout)
