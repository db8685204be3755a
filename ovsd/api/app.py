"""The Klein application: routing, the contract's error shape, and the guard every call passes.

Every path under ``/api`` is routed by the route table (``/api`` itself and the token endpoint are declared
endpoints like the others): the site's root resource hands it to ``render_declared``; Klein only answers 404
for paths outside the API. A call passes, in order: route (404/405, OPTIONS), readiness (503 not_ready),
store (503), version (406), token (401), roles (403), object key (404), parameters (400/406), then the
handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import NO_BODY_CODES
from twisted.web.server import NOT_DONE_YET, Request
from werkzeug.exceptions import NotFound

from ovsd.api.call import Call
from ovsd.api.cors import CorsPolicy
from ovsd.api.declare import Endpoint, Registry, load_views
from ovsd.api.dispatch import Resolved, RouteTable
from ovsd.api.errors import (
    ApiError,
    from_auth_error,
    from_model_error,
    internal_error,
    invalid_roles,
    not_authenticated,
    not_ready,
    store_unavailable,
)
from ovsd.api.html import LinkResolver, render_page
from ovsd.api.http import ApiRequest, ApiSite, answer_internal_error, api_path
from ovsd.api.metadata import ClusterIps, MetadataSource, api_metadata
from ovsd.api.negotiation import HTML, JSON, Negotiator, negotiated_version
from ovsd.api.oauth2 import token_endpoint
from ovsd.api.openapi import openapi_document
from ovsd.api.params import bind, path_problem
from ovsd.auth.errors import AuthError
from ovsd.auth.identity import Identity
from ovsd.context import NodeContext
from ovsd.dal.jsontext import WithJsonText
from ovsd.dal.query import InvalidQuery
from ovsd.dal.repository import DalError
from ovsd.dal.text import utf8
from ovsd.store.connection import StoreUnavailable

log = Logger()

Handler = Callable[[Request], Awaitable[Any]]


class Response:
    """A handler's answer: a JSON-able body (or raw bytes) with a status and headers."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None,
        content_type: str = JSON,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = headers or {}
        self.content_type = content_type


# one encoder for every answer: json.dumps with options builds a new encoder on each call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(body: Any) -> bytes:
    # utf8: a lone surrogate stored by an earlier release is answered as U+FFFD, never a 500
    if type(body) is WithJsonText:  # an object fetch: its cached dynamics are JSON text already
        return utf8(body.encode(_ENCODER.encode))
    return utf8(_ENCODER.encode(body))


def write_response(request: Request, response: Response) -> bytes:
    request.setResponseCode(response.status)
    for name, value in response.headers.items():
        request.setHeader(name, value)
    if response.status == 204:
        return b""
    if response.content_type:
        request.setHeader(b"Content-Type", response.content_type.encode("latin-1"))
    if isinstance(response.body, bytes):
        return response.body
    return encode_json(response.body)


def error_response(err: ApiError) -> Response:
    return Response(err.body(), err.status, err.headers)




def _send(request: Request, body: bytes) -> None:
    if request.finished or (isinstance(request, ApiRequest) and request.gone):
        return  # the client went away meanwhile: there is no one to answer
    if request.code not in NO_BODY_CODES:
        # with its length known the answer leaves in one write, without chunk framing and a closing chunk
        request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


def _unsent(request: Request, failure: Failure) -> None:
    if not failure.check(defer.CancelledError):
        # serve() answers every error itself; this is a bug in answering, not in the call
        answer_internal_error(request, failure)


class ApiApp:
    """The API of one node. Collaborators come in through the constructor; no module state.

    ``registry`` holds the declared endpoints; by default every module of ovsd/api/views is imported
    and declares into the shared registry.
    """

    app = Klein()

    def __init__(self, context: NodeContext, registry: Registry | None = None) -> None:
        self.context = context
        # GET /api and the CORS check both read the cluster's ips: one cache for both
        self.metadata = MetadataSource(context, ClusterIps(context.repository, context.config.node.ip, context.reactor))
        self.site: ApiSite | None = None
        self.registry = registry if registry is not None else load_views()
        self.negotiator = Negotiator()
        self.cors = CorsPolicy(context.config.api.cors_origins, lambda: self.cluster_ips())
        self.openapi_endpoint = Endpoint(
            method="GET", kind="link", path="/api/openapi.json", roles=(), token=False, authenticates=False,
            versioned=False, returns="value", needs_store=False, handler=self._openapi, summary="This OpenAPI document",
        )
        self.metadata_endpoint = Endpoint(
            method="GET", kind="link", path="/api/", roles=(), token=False, authenticates=False,
            versioned=False, returns="object", handler=self._metadata, summary="What the API is and who the caller is",
            before_ready=True,
        )
        self.token_endpoint = Endpoint(
            method="POST", kind="action", path="/api/oauth2/token/", roles=(), token=False, authenticates=False,
            versioned=False, returns="object", handler=self._token,
            summary="OAuth 2 token endpoint: password and client_credentials grants (form body)",
        )
        self.routes = RouteTable(
            [*self.registry.endpoints(), self.openapi_endpoint, self.metadata_endpoint, self.token_endpoint],
        )
        self.links = LinkResolver(self.registry.resources().values())
        self._openapi_document: dict[str, Any] | None = None

    async def cluster_ips(self) -> Sequence[str]:
        """The ips of every StorageRouter (their GUIs are allowed CORS origins)."""
        return await self.metadata.cluster_ips()

    # --- the guard around every handler ----------------------------------------------------------------
    async def serve(self, request: Request, handler: Handler, needs_store: bool = True) -> bytes:
        """Run a handler and turn every outcome into a contract-shaped response."""
        if self.site is not None:
            self.site.request_started(request)
        try:
            if needs_store and not self.context.store.available:
                raise store_unavailable()
            result = await handler(request)
            response = result if isinstance(result, Response) else Response(result)
        except ApiError as err:
            response = error_response(err)
        except AuthError as err:
            response = error_response(from_auth_error(err))
        except StoreUnavailable:
            response = error_response(store_unavailable())
        except (DalError, InvalidQuery) as err:
            response = error_response(from_model_error(err))
        except defer.CancelledError:
            raise  # the client went away; nothing to answer
        except Exception:
            response = error_response(internal_error(Failure(), request.method, request.path))
        if request.requestHeaders.hasHeader(b"origin"):
            response = await self.with_cors(request, response)
        return self.render(request, response)

    def render(self, request: Request, response: Response) -> bytes:
        """Write a response: JSON, or an HTML page for a browser that asked for text/html."""
        if (response.status != 204 and response.content_type.startswith(JSON)
                and self.negotiator.media(request).html):
            body = response.body
            if isinstance(body, bytes):  # JSON a handler encoded itself
                body = json.loads(body) if body else None
            elif type(body) is WithJsonText:
                body = body.decoded()
            page = render_page(
                request.method.decode("ascii", "replace"), request.path.decode("utf-8", "replace"),
                response.status, body, self.links,
            )
            response = Response(page, response.status, response.headers, HTML)
        return write_response(request, response)

    async def with_cors(self, request: Request, response: Response) -> Response:
        """Let an allowed origin's browser read the answer (preflights carry their own headers)."""
        if "Access-Control-Allow-Origin" in response.headers:
            return response
        origin = (request.getHeader(b"origin") or b"").decode("latin-1")
        try:
            allowed = await self.cors.allows(origin)
        except StoreUnavailable:
            return response  # the answer (a 503 most likely) says enough
        except Exception:
            # the answer itself is right; only the browser's permission to read it could not be decided
            log.failure("cannot decide CORS for {origin}", origin=origin)
            return response
        if allowed:
            response.headers = {**response.headers, **CorsPolicy.response_headers(origin)}
        return response

    async def options(self, request: Request, allow: str) -> Response:
        """A CORS preflight from an allowed origin, else a plain answer naming the allowed methods."""
        headers = {"Allow": allow}
        origin = request.getHeader(b"origin")
        if origin and request.getHeader(b"access-control-request-method"):
            text = origin.decode("latin-1")
            if await self.cors.allows(text):
                headers.update(CorsPolicy.preflight_headers(text))
        return Response(b"", 200, headers, content_type="")

    # --- declared endpoints ------------------------------------------------------------------------------
    async def dispatch(self, request: Request, rest: str) -> Response:
        """Serve one call to a declared endpoint (``rest`` is the path after ``/api/``)."""
        refusal = path_problem(request.path)
        if refusal is not None:
            raise refusal  # a path that is not text names nothing: refused with routing, before a token
        resolved = self.routes.resolve(rest)
        if request.method == b"OPTIONS":
            return await self.options(request, resolved.route.allow)
        endpoint = resolved.route.endpoint_for(request.method)
        if endpoint.cancellable and isinstance(request, ApiRequest):
            request.cancel_on_hangup()
        if not endpoint.before_ready and not self.context.readiness.ready:
            # until the node is bootstrapped only GET /api answers: anything else, a grant above all, would be
            # answered from a store that is not complete yet (a right password refused, counted as a failure)
            raise not_ready()
        if endpoint.needs_store and not self.context.store.available:
            raise store_unavailable()
        version = negotiated_version(endpoint, self.negotiator.media(request))
        ahead = self.read_ahead(request, endpoint, version, resolved) if endpoint.read_ahead else None
        try:
            identity = await self.authenticate(request) if endpoint.authenticates else None
            if endpoint.token:
                if identity is None:
                    raise not_authenticated()
                if not endpoint.role_set <= identity.roles:
                    raise invalid_roles(endpoint.roles_refusal)
        except BaseException:
            if ahead is not None and ahead.ahead is not None:
                ahead.ahead.addErrback(lambda _: None)  # refused: whatever the read found is dropped unseen
            raise
        if ahead is not None:
            call = ahead
            call.identity = identity
        else:
            call = self.prepare(request, endpoint, identity, version, resolved)
        try:
            result = await endpoint.handler(call)
        finally:
            if call.ahead is not None:
                call.ahead.addErrback(lambda _: None)  # a handler that failed before using the read
        content_type = endpoint.content_types[version] if endpoint.versioned else JSON
        if isinstance(result, Response):
            if result.content_type == JSON:
                result.content_type = content_type
            return result
        return Response(result, endpoint.status, content_type=content_type)

    def read_ahead(self, request: Request, endpoint: Endpoint, version: int, resolved: Resolved) -> Call | None:
        """The Call with the endpoint's read already started, so that it and the token check leave in one
        write and come back in one read (a round trip costs as much as the rest of a fetch).

        Only when the call is otherwise well-formed: a bad key or parameter is reported in the usual order
        (after a 401/403), so it waits for the normal path.
        """
        assert endpoint.read_ahead is not None
        try:
            call = self.prepare(request, endpoint, None, version, resolved)
        except ApiError:
            return None
        call.ahead = defer.Deferred.fromCoroutine(endpoint.read_ahead(call))
        return call

    def prepare(
        self, request: Request, endpoint: Endpoint, identity: Identity | None, version: int, resolved: Resolved,
    ) -> Call:
        """The handler's Call: the object key (404 when malformed) and the parameters (400/406)."""
        key = None
        if resolved.key is not None:
            assert endpoint.resource is not None
            key = endpoint.resource.parse_key(resolved.key)
        call = Call(request, self.context, endpoint, identity, version, key, resolved.path_args)
        if endpoint.params or endpoint.allowed_fields is not None:
            call.params = bind(endpoint.params, call.body, request, endpoint.allowed_fields)
        return call

    async def authenticate(self, request: Request) -> Identity | None:
        """The caller (None without an Authorization header); a bad header raises 401."""
        return await self.context.authenticator.authenticate(request)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of this app (built once: declarations do not change while serving)."""
        if self._openapi_document is None:
            self._openapi_document = openapi_document(
                [self.metadata_endpoint, self.token_endpoint, self.openapi_endpoint, *self.registry.endpoints()],
                self.registry.resources().values(),
            )
        return self._openapi_document

    async def _openapi(self, call: Call) -> dict[str, Any]:
        return self.openapi()

    async def _metadata(self, call: Call) -> dict[str, Any]:
        return await api_metadata(self.metadata, call.request)

    async def _token(self, call: Call) -> dict[str, Any]:
        return await token_endpoint(self.context, call.request)

    def render_declared(self, request: Request) -> Any:
        """Serve every path under ``/api`` through the route table (None: not an API path).

        The route table is the API's one router: Klein's per-request binding and matching cost nearly a third
        of the CPU of an object fetch, and two routers meant two sets of rules. Klein is left the paths
        outside the API (its 404). A handler is cancelled when its client goes away only if its endpoint is
        cancellable (dispatch arms that), and nothing is written then.
        """
        rest = api_path(request.path)
        if rest is None:
            return None
        d = defer.Deferred.fromCoroutine(self.serve(request, lambda r: self.dispatch(r, rest), needs_store=False))
        if isinstance(request, ApiRequest):
            request.track(d)  # dispatch arms the hang-up once it knows the endpoint may be cancelled
        d.addCallbacks(lambda body: _send(request, body), lambda failure: _unsent(request, failure))
        return NOT_DONE_YET

    @app.handle_errors(NotFound)
    def route_not_found(self, request: Any, failure: Failure) -> bytes:
        return self.render(request, error_response(ApiError(
            404, "not_found", f"No route for {request.path.decode('utf-8', 'replace')}",
        )))

