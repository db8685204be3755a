"""One API call as a handler sees it: already routed, negotiated, authenticated and with its parameters read."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from ovsd.api.params import MISSING, body_of
from ovsd.auth.identity import Identity
from ovsd.context import NodeContext


class Declared(Protocol):
    """What a call knows of the endpoint it was routed to (ovsd.api.declare.Endpoint, which imports Call)."""

    @property
    def path(self) -> str: ...


class Call:
    """What a handler gets.

    ``key`` is the object identifier from the path (a lower-case GUID, or an int/str for resources keyed
    otherwise); ``version`` the negotiated API version (the endpoint's highest for html and unversioned
    calls); ``params`` the declared parameters that were sent (or have a default), converted; ``body`` the
    parsed body as sent (None when empty, read on first use); ``path_args`` the placeholders of an explicit path;
    ``ahead`` the result of the endpoint's ``read_ahead`` (started before authentication), when it has one.
    """

    __slots__ = (
        "_body", "ahead", "context", "endpoint", "identity", "key", "params", "path_args", "request", "version",
    )

    def __init__(
        self, request: Request, context: NodeContext, endpoint: Declared, identity: Identity | None,
        version: int, key: str | int | None, path_args: dict[str, Any] | None = None,
    ) -> None:
        self.request = request
        self.context = context
        self.endpoint = endpoint
        self.identity = identity
        self.version = version
        self.key = key
        self.params: dict[str, Any] = {}
        self.path_args = path_args or {}
        self._body: Any = MISSING
        self.ahead: Deferred[Any] | None = None  # the endpoint's read_ahead, started before authentication

    @property
    def body(self) -> Any:
        """The parsed body (JSON value, dict of a form, None when empty), read on first use.

        Raises 400 invalid_data for a body that is not valid JSON.
        """
        if self._body is MISSING:
            self._body = body_of(self.request)
        return self._body

    @property
    def guid(self) -> str:
        """The object's GUID (for endpoints on one object)."""
        if self.key is None:
            raise AttributeError(f"{self.endpoint.path} has no object key")
        return str(self.key)
