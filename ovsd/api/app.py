"""The Klein application: routing, the contract's error shape, and the guard every call passes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ovsd.api.errors import ApiError, store_unavailable
from ovsd.api.http import ApiSite
from ovsd.api.metadata import api_metadata
from ovsd.context import NodeContext
from ovsd.store.connection import StoreUnavailable

log = Logger()

Handler = Callable[[Request], Awaitable[Any]]


class Response:
    """A handler's answer: a JSON-able body (or raw bytes) with a status and headers."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.body = body
        self.status = status
        self.headers = headers or {}
        self.content_type = content_type


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def write_response(request: Request, response: Response) -> bytes:
    request.setResponseCode(response.status)
    for name, value in response.headers.items():
        request.setHeader(name, value)
    if response.status == 204:
        return b""
    request.setHeader("Content-Type", response.content_type)
    if isinstance(response.body, bytes):
        return response.body
    return encode_json(response.body)


def error_response(err: ApiError) -> Response:
    return Response(err.body(), err.status, err.headers)


class ApiApp:
    """The API of one node. Collaborators come in through the constructor; no module state."""

    app = Klein()

    def __init__(self, context: NodeContext) -> None:
        self.context = context
        self.site: ApiSite | None = None

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
        except StoreUnavailable:
            response = error_response(store_unavailable())
        except defer.CancelledError:
            raise  # the client went away; nothing to answer
        except Exception:
            correlation = uuid.uuid4().hex
            log.failure(
                "unexpected error on {method} {path} (correlation id {correlation})",
                Failure(), method=request.method.decode(), path=request.path.decode("utf-8", "replace"),
                correlation=correlation,
            )
            response = error_response(ApiError(
                500, "internal_server", f"An unexpected error occurred; correlation id {correlation}",
            ))
        return self.render(request, response)

    def render(self, request: Request, response: Response) -> bytes:
        """Write a response; views with special rendering needs (html) hook in here."""
        return write_response(request, response)

    # --- routes ----------------------------------------------------------------------------------------
    @app.route("/api", methods=["GET"], strict_slashes=False)
    async def metadata(self, request: Request) -> bytes:
        return await self.serve(request, lambda r: api_metadata(self.context, r))

    @app.handle_errors(NotFound)
    def route_not_found(self, request: Any, failure: Failure) -> bytes:
        return self.render(request, error_response(ApiError(
            404, "not_found", f"No route for {request.path.decode('utf-8', 'replace')}",
        )))

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: Any, failure: Failure) -> bytes:
        exc = failure.value
        assert isinstance(exc, MethodNotAllowed)
        allowed = ", ".join(sorted(exc.valid_methods or []))
        return self.render(request, error_response(ApiError(
            405, "method_not_allowed", f"Method {request.method.decode()} is not allowed here",
            {"Allow": allowed},
        )))
