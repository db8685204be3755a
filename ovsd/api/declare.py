"""Declarations of the API: resources and their endpoints, registered next to their handlers.

A view declares what an endpoint needs (roles, versions, token, parameters, what it returns) with the
``endpoint`` decorator; everything a request needs that follows from the declaration (the role set, the
refusal text, the content types, the converters) is computed here, once. The OpenAPI document and the
role-matrix test are generated from ``registry.endpoints()``.

    resource("users", "user", default_sort=("username",))

    @endpoint(resource="users", method="POST", action="set_password", roles=RW,
              params=[Param("new_password", str, True), Param("current_password", str)], returns="object")
    async def set_password(call: Call) -> Any: ...
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from ovsd.api.call import Call
from ovsd.api.errors import invalid_data, object_not_found
from ovsd.api.negotiation import VERSIONS
from ovsd.api.params import GUID, GUID_PATTERN, Param, converter_for

R: tuple[str, ...] = ("read",)
RW: tuple[str, ...] = ("read", "write")
RWM: tuple[str, ...] = ("read", "write", "manage")

Kind = Literal["list", "fetch", "create", "patch", "delete", "action", "link"]
Returns = Literal["task", "object", "list", "value", "none"]
KeyType = Literal["guid", "int", "str"]
Handler = Callable[[Call], Awaitable[Any]]
#: a read started before authentication (a coroutine, so that it starts at once)
Reader = Callable[[Call], Coroutine[Any, Any, Any]]
H = TypeVar("H", bound=Handler)

COLLECTION_KINDS = frozenset({"list", "create"})
ITEM_KINDS = frozenset({"fetch", "patch", "delete"})
NAMED_KINDS = frozenset({"action", "link"})
KINDS = COLLECTION_KINDS | ITEM_KINDS | NAMED_KINDS
RETURNS = frozenset({"task", "object", "list", "value", "none"})
SUCCESS_STATUS = {"list": 200, "fetch": 200, "create": 201, "patch": 202, "delete": 204, "action": 200, "link": 200}
LOWEST_VERSION, HIGHEST_VERSION = min(VERSIONS), max(VERSIONS)
_NAME = re.compile(r"[a-z][a-z0-9_.]*")
_PLACEHOLDER_TYPES: dict[str, type | str] = {"int": int, "guid": GUID, "str": str}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?::(int|guid|str))?\}")


class Resource:
    """A collection under ``/api/<name>/`` whose objects are of ``kind`` and addressed by ``key``."""

    __slots__ = ("default_sort", "key", "key_type", "kind", "name", "parse_key", "summary")

    def __init__(
        self, name: str, kind: str, *, default_sort: Sequence[str] = (), key: str = "guid",
        key_type: KeyType = GUID, summary: str = "",
    ) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"resource name {name!r} must be lower case")
        self.name = name
        self.kind = kind
        self.default_sort = tuple(default_sort)
        self.key = key
        self.key_type = key_type
        self.summary = summary
        self.parse_key: Callable[[str], str | int] = _key_parser(kind, key, key_type)

    def __repr__(self) -> str:
        return f"Resource({self.name!r}, {self.kind!r}, key={self.key!r}:{self.key_type})"

    def same_as(self, other: Resource) -> bool:
        return (self.name, self.kind, self.default_sort, self.key, self.key_type) == (
            other.name, other.kind, other.default_sort, other.key, other.key_type)


def _key_parser(kind: str, key: str, key_type: KeyType) -> Callable[[str], str | int]:
    """How a path segment becomes an object key; a malformed GUID is a missing object (404)."""
    if key_type == GUID:
        def guid(raw: str) -> str | int:
            if GUID_PATTERN.fullmatch(raw):
                return raw.lower()
            raise object_not_found(kind)
        return guid
    if key_type == "int":
        def integer(raw: str) -> str | int:
            if raw.isdigit() and raw.isascii():
                return int(raw)
            raise invalid_data(f"Invalid data passed: {key} must be an integer")
        return integer

    def text(raw: str) -> str | int:
        if raw:
            return raw
        raise object_not_found(kind)
    return text


class Endpoint:
    """One method on one path, with everything the dispatcher checks before the handler runs."""

    __slots__ = (
        "allowed_fields", "authenticates", "before_ready", "cancellable", "content_types", "handler", "kind",
        "method", "name", "needs_store", "params", "path", "path_params", "read_ahead", "resource", "returns",
        "role_set", "roles", "roles_refusal", "status", "summary", "token", "versioned", "versions",
    )

    def __init__(
        self, *, method: str, kind: Kind, roles: Sequence[str], handler: Handler,
        resource: Resource | None = None, name: str | None = None, path: str | None = None,
        versions: tuple[int, int] = (LOWEST_VERSION, HIGHEST_VERSION), token: bool = True,
        authenticates: bool = True, versioned: bool = True, params: Iterable[Param] = (),
        fields: Iterable[str] | None = None, returns: Returns = "object", summary: str = "",
        status: int | None = None, needs_store: bool = True, read_ahead: Reader | None = None,
        cancellable: bool | None = None, before_ready: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown endpoint kind {kind!r}")
        if returns not in RETURNS:
            raise ValueError(f"unknown return kind {returns!r}")
        low, high = versions
        if not LOWEST_VERSION <= low <= high <= HIGHEST_VERSION:
            raise ValueError(f"version range {versions} outside {LOWEST_VERSION}..{HIGHEST_VERSION}")
        if (kind in NAMED_KINDS) != (name is not None) and path is None:
            raise ValueError("actions and links (and only they) have a name")
        if path is None and resource is None:
            raise ValueError("an endpoint needs a resource or an explicit path")
        self.method = method.upper()
        self.kind = kind
        self.roles = tuple(roles)
        self.role_set = frozenset(self.roles)
        self.roles_refusal = f"This call requires roles: {', '.join(self.roles)}"
        self.handler = handler
        self.resource = resource
        self.name = name
        self.versions = (low, high)
        if token and not authenticates:
            raise ValueError("an endpoint that needs a token must authenticate its caller")
        self.token = token
        self.authenticates = authenticates
        self.versioned = versioned
        self.params = tuple(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter declared twice in {names}")
        if fields is not None or kind in ("create", "patch"):
            # create/patch refuse unknown body fields; the allowed ones are the body parameters (+ fields)
            self.allowed_fields: frozenset[str] | None = frozenset(
                [p.name for p in self.params if p.where == "body"] + list(fields or ()))
        else:
            self.allowed_fields = None
        self.returns = returns
        self.summary = summary or _first_line(handler.__doc__)
        self.status = status if status is not None else (204 if returns == "none" else SUCCESS_STATUS[kind])
        self.needs_store = needs_store
        # a read of the store the handler will need, which does not depend on the caller: it starts while
        # the caller is being authenticated and the handler finds it in ``call.ahead`` (used only once the
        # token and roles passed; it must change nothing)
        self.read_ahead = read_ahead
        # whether a client that hangs up stops the handler (as synapse's @cancellable): reads and long-polls
        # only, by default every GET. A write runs to its end whatever the client does: stopped half-way it
        # could store a new password and skip revoking the tokens the old one issued
        self.cancellable = self.method in ("GET", "HEAD") if cancellable is None else cancellable
        if self.cancellable and self.method not in ("GET", "HEAD"):
            raise ValueError(f"{self.method} changes something: a hang-up must not stop it half-way")
        # served while the node is still starting (GET /api: it says whether the node is ready)
        self.before_ready = before_ready
        self.content_types = {v: f"application/json; version={v}" for v in range(low, high + 1)}
        self.path, self.path_params = _template(path, resource, kind, name)

    def __repr__(self) -> str:
        return f"Endpoint({self.method} {self.path} {self.kind} roles={self.roles})"

    @property
    def operation_id(self) -> str:
        """A stable, unique name of this endpoint (OpenAPI operationId, test ids)."""
        words = re.sub(r"[{}]", "", self.path).strip("/").replace("/", "_").replace(".", "_")
        return f"{self.method.lower()}_{words}"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


PathParam = tuple[str, Callable[[Any], Any], str]


def _template(
    path: str | None, resource: Resource | None, kind: str, name: str | None,
) -> tuple[str, tuple[PathParam, ...]]:
    """The concrete path template (``/api/vdisks/{guid}/rollback/``) and its typed placeholders."""
    if path is None:
        assert resource is not None
        base = f"/api/{resource.name}/"
        if kind in COLLECTION_KINDS:
            return base, ()
        item = f"{base}{{{resource.key}}}/"
        return (item if kind in ITEM_KINDS else f"{item}{name}/"), ()
    if not path.startswith("/api/"):
        raise ValueError(f"explicit path {path!r} must start with /api/")
    placeholders: list[PathParam] = []
    for match in _PLACEHOLDER.finditer(path):
        type_name = match.group(2) or "str"
        convert, _ = converter_for(_PLACEHOLDER_TYPES[type_name])
        placeholders.append((match.group(1), convert, type_name))
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", path), tuple(placeholders)


class Registry:
    """Every declared resource and endpoint of one API."""

    def __init__(self) -> None:
        self._resources: dict[str, Resource] = {}
        self._endpoints: list[Endpoint] = []
        self._taken: set[tuple[str, str]] = set()

    def resource(
        self, name: str, kind: str, *, default_sort: Sequence[str] = (), key: str = "guid",
        key_type: KeyType = GUID, summary: str = "",
    ) -> Resource:
        """Declare a resource (again with the same shape is fine: modules may share one)."""
        declared = Resource(name, kind, default_sort=default_sort, key=key, key_type=key_type, summary=summary)
        existing = self._resources.get(name)
        if existing is not None:
            if not existing.same_as(declared):
                raise ValueError(f"resource {name!r} declared twice with different shapes")
            return existing
        self._resources[name] = declared
        return declared

    def endpoint(
        self, *, method: str, roles: Sequence[str], resource: str | None = None, kind: Kind | None = None,
        action: str | None = None, link: str | None = None, path: str | None = None,
        versions: tuple[int, int] = (LOWEST_VERSION, HIGHEST_VERSION), token: bool = True,
        authenticates: bool = True, versioned: bool = True, params: Iterable[Param] = (),
        fields: Iterable[str] | None = None, returns: Returns = "object", summary: str = "",
        status: int | None = None, needs_store: bool = True, read_ahead: Reader | None = None,
        cancellable: bool | None = None,
    ) -> Callable[[H], H]:
        """Declare the decorated handler as an endpoint (decorators stack: one handler, several endpoints)."""
        target = None
        if resource is not None:
            if resource not in self._resources:
                raise ValueError(f"declare resource {resource!r} before its endpoints")
            target = self._resources[resource]
        if action is not None and link is not None:
            raise ValueError("an endpoint is an action or a link, not both")
        resolved_kind = kind or _infer_kind(method, action, link, path)

        def register(handler: H) -> H:
            self.add(Endpoint(
                method=method, kind=resolved_kind, roles=roles, handler=handler, resource=target,
                name=action or link, path=path, versions=versions, token=token, authenticates=authenticates,
                versioned=versioned,
                params=params, fields=fields, returns=returns, summary=summary, status=status,
                needs_store=needs_store, read_ahead=read_ahead, cancellable=cancellable,
            ))
            return handler

        return register

    def add(self, endpoint: Endpoint) -> Endpoint:
        slot = (endpoint.path, endpoint.method)
        if slot in self._taken:
            raise ValueError(f"{endpoint.method} {endpoint.path} declared twice")
        self._taken.add(slot)
        self._endpoints.append(endpoint)
        return endpoint

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint, in declaration order, each with its concrete path template."""
        return list(self._endpoints)

    def resources(self) -> Mapping[str, Resource]:
        return dict(self._resources)


def _infer_kind(method: str, action: str | None, link: str | None, path: str | None) -> Kind:
    if action is not None:
        return "action"
    if link is not None:
        return "link"
    upper = method.upper()
    inferred: dict[str, Kind] = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}
    if path is not None:
        return "link" if upper == "GET" else "action"
    if upper in inferred:
        return inferred[upper]
    raise ValueError(f"say which kind of {upper} endpoint this is (list or fetch)")


# The registry the views declare into, like Klein's class-level app: ApiApp takes it unless given another.
registry = Registry()
resource = registry.resource
endpoint = registry.endpoint


def load_views(package: str = "ovsd.api.views") -> Registry:
    """Import every view module (each declares its endpoints on import) and return the registry."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as missing:
        if missing.name != package:
            raise
        return registry  # no views yet
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), package + "."):
        importlib.import_module(info.name)
    return registry


__all__ = [
    "GUID", "RW", "RWM", "Call", "Endpoint", "Handler", "Kind", "Param", "R", "Registry", "Resource", "Returns",
    "endpoint", "load_views", "registry", "resource",
]
