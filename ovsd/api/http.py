"""The HTTP plumbing under Klein: body size cap, in-flight tracking, graceful stop."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.web import http, resource, server

MAX_BODY = 1024 * 1024


class ApiRequest(server.Request):
    """A request whose body is capped at MAX_BODY bytes: the excess is not even buffered."""

    too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self.too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)

    # told directly when the request ends (the site's in-flight count) and when its client goes away first
    # (cancel the handler): a notifyFinish Deferred for each costs a few percent of answering a long-poll
    on_end: Callable[[], None] | None = None
    on_lost: Callable[[], object] | None = None

    def finish(self) -> None:
        super().finish()
        self.on_lost = None
        self._ended()

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        on_lost, self.on_lost = self.on_lost, None
        try:
            if on_lost is not None:
                on_lost()
        finally:
            self._ended()

    def _ended(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()


class ApiSite(server.Site):
    """A Site that counts requests in flight so a stop can wait for them."""

    requestFactory = ApiRequest

    def __init__(self, root: resource.IResource, clock: IReactorTime, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.clock = clock
        self.in_flight = 0
        self.requests = 0  # answered since start (for /api/statistics)
        self._drained: list[defer.Deferred[None]] = []
        self.noisy = False
        self.access_log = False
        self.protocols: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        if proto is None:
            return None
        self.protocols.add(proto)
        original = proto.connectionLost

        def lost(reason: Any) -> None:
            self.protocols.discard(proto)
            original(reason)

        proto.connectionLost = lost
        return proto

    def getContentFile(self, length: int | None) -> BinaryIO:
        """Where a request body goes: memory, as ApiRequest keeps at most MAX_BODY of it.

        Without this method twisted.web finds out by catching an AttributeError on every request, and
        spools a body of unknown or large length to a temporary file (an open and unlink on disk).
        """
        return BytesIO()

    def log(self, request: http.Request) -> None:
        # the access log costs a write per request: only at log level debug
        if self.access_log:
            super().log(request)

    def request_started(self, request: server.Request) -> None:
        self.requests += 1
        self.in_flight += 1
        if isinstance(request, ApiRequest):
            request.on_end = self._request_done
        else:
            request.notifyFinish().addBoth(self._request_done)

    def _request_done(self, _: object = None) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def drain(self, timeout: float) -> defer.Deferred[None]:
        """Fire when no request is in flight, or after timeout seconds; then close what is left."""
        if self.in_flight == 0:
            d: defer.Deferred[None] = defer.succeed(None)
        else:
            d = defer.Deferred()
            self._drained.append(d)
            d.addTimeout(timeout, self.clock).addErrback(lambda _: None)

        def close(_: object) -> None:
            for proto in list(self.protocols):
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.loseConnection()

        return d.addCallback(close)


class ApiResource(resource.Resource):
    """The root: 413 for an oversized body before any routing, declared endpoints straight to ``declared``,
    everything else to the Klein app.

    ``declared(request)`` serves the call and returns NOT_DONE_YET, or None when the path is not one of
    the declared endpoints' (Klein then routes it: its static routes and its errors for odd paths).
    """

    isLeaf = True

    def __init__(self, app: resource.IResource, declared: Callable[[server.Request], Any] | None = None) -> None:
        super().__init__()
        self.app = app
        self.declared = declared

    def render(self, request: server.Request) -> Any:
        if isinstance(request, ApiRequest) and request.too_large:
            request.setResponseCode(413)
            request.setHeader("Content-Type", "application/json")
            return (
                b'{"error":"request_too_large","error_description":"The request body is larger than 1 MiB"}'
            )
        if self.declared is not None:
            served = self.declared(request)
            if served is not None:
                return served
        return self.app.render(request)


def declared_path(path: bytes, static: frozenset[str]) -> str | None:
    """The part after ``/api/`` of a request path, decoded as Klein decodes it (each segment unquoted, then
    UTF-8), or None when Klein must route it: not under /api/, empty, starting with a slash, not UTF-8, or
    one of the ``static`` routes."""
    if not path.startswith(b"/api/"):
        return None
    try:
        rest = b"/".join([unquote_to_bytes(segment) for segment in path[5:].split(b"/")]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not rest or rest.startswith("/") or rest in static:
        return None
    return rest
