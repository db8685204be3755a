"""The route table: from a path under ``/api/`` and a method to the declared endpoint, built once.

Generic paths are ``<resource>``, ``<resource>/<key>`` and ``<resource>/<key>/<name>``, each with or
without a trailing slash. Endpoints with an explicit path (``/api/oauth2/token/``,
``/api/messages/{sid:int}/…``) are looked up first. Resolution answers 404 ``not_found`` for a path
nobody declared and 405 ``method_not_allowed`` (with ``Allow``) for a method nobody declared on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ovsd.api.declare import COLLECTION_KINDS, ITEM_KINDS, Endpoint, PathParam, Resource
from ovsd.api.errors import ApiError, not_found

ALWAYS_ALLOWED = ("OPTIONS",)


class Route:
    """The endpoints of one path, by method (bytes, as Twisted gives it), and the Allow header for it."""

    __slots__ = ("allow", "methods", "resource")

    def __init__(self, resource: Resource | None) -> None:
        self.resource = resource
        self.methods: dict[bytes, Endpoint] = {}
        self.allow = ""

    def add(self, endpoint: Endpoint) -> None:
        method = endpoint.method.encode("ascii")
        if method in self.methods:
            raise ValueError(f"{endpoint.method} {endpoint.path} declared twice")
        self.methods[method] = endpoint
        if method == b"GET" and b"HEAD" not in self.methods:
            self.methods[b"HEAD"] = endpoint
        names = {m.decode("ascii") for m in self.methods} | set(ALWAYS_ALLOWED)
        self.allow = ", ".join(sorted(names))

    def endpoint_for(self, method: bytes) -> Endpoint:
        found = self.methods.get(method)
        if found is None:
            raise ApiError(
                405, "method_not_allowed", f"Method {method.decode('ascii', 'replace')} is not allowed here",
                {"Allow": self.allow},
            )
        return found


class Resolved:
    """A path matched to its route, with the raw object key (validated later, after authentication)."""

    __slots__ = ("key", "path_args", "route")

    def __init__(self, route: Route, key: str | None = None, path_args: dict[str, Any] | None = None) -> None:
        self.route = route
        self.key = key
        self.path_args = path_args


class RouteTable:
    """Every route of an API, compiled from its endpoints."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self._collections: dict[str, Route] = {}
        self._items: dict[str, Route] = {}
        self._named: dict[tuple[str, str], Route] = {}
        self._static: dict[str, Route] = {}
        self._templates: dict[int, list[tuple[tuple[str | PathParam, ...], Route]]] = {}
        templates: dict[str, Route] = {}
        for endpoint in endpoints:
            if endpoint.path_params:
                route = templates.get(endpoint.path)
                if route is None:
                    route = templates[endpoint.path] = Route(endpoint.resource)
                    segments = _segments_of(endpoint)
                    self._templates.setdefault(len(segments), []).append((segments, route))
            else:
                route = self._route_for(endpoint)
            route.add(endpoint)

    def _route_for(self, endpoint: Endpoint) -> Route:
        resource = endpoint.resource
        if resource is None or _explicit(endpoint):
            table: dict[Any, Route] = self._static
            slot: Any = _strip(endpoint.path[len("/api/"):])
        elif endpoint.kind in COLLECTION_KINDS:
            table, slot = self._collections, resource.name
        elif endpoint.kind in ITEM_KINDS:
            table, slot = self._items, resource.name
        else:
            assert endpoint.name is not None
            table, slot = self._named, (resource.name, endpoint.name)
        route = table.get(slot)
        if route is None:
            route = table[slot] = Route(resource)
        return route

    def resolve(self, rest: str) -> Resolved:
        """Match the path after ``/api/``; raises 404 not_found when nothing is declared there."""
        path = rest[:-1] if rest.endswith("/") else rest
        route = self._static.get(path)
        if route is not None:
            return Resolved(route)
        segments = path.split("/")
        count = len(segments)
        key: str | None = None
        for template, templated in self._templates.get(count, ()):
            args = _match(template, segments)
            if args is not None:
                return Resolved(templated, None, args)
        if "" in segments:
            route = None  # an empty segment names nothing (``widgets//``)
        elif count == 1:
            route = self._collections.get(path)
        elif count == 2:
            route = self._items.get(segments[0])
            key = segments[1]
        elif count == 3:
            route = self._named.get((segments[0], segments[2]))
            key = segments[1]
        if route is None:
            raise not_found(f"No route for /api/{rest}")
        return Resolved(route, key)


def _strip(path: str) -> str:
    return path[:-1] if path.endswith("/") else path


def _explicit(endpoint: Endpoint) -> bool:
    """An endpoint whose path is not one of the generic shapes of its resource."""
    resource = endpoint.resource
    assert resource is not None
    base = f"/api/{resource.name}/"
    item = f"{base}{{{resource.key}}}/"
    if endpoint.kind in COLLECTION_KINDS:
        return endpoint.path != base
    if endpoint.kind in ITEM_KINDS:
        return endpoint.path != item
    return endpoint.path != f"{item}{endpoint.name}/"


def _segments_of(endpoint: Endpoint) -> tuple[str | PathParam, ...]:
    by_name = {param[0]: param for param in endpoint.path_params}
    parts: list[str | PathParam] = []
    for segment in _strip(endpoint.path[len("/api/"):]).split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(by_name[segment[1:-1]])
        else:
            parts.append(segment)
    return tuple(parts)


def _match(template: tuple[str | PathParam, ...], segments: list[str]) -> dict[str, Any] | None:
    args: dict[str, Any] = {}
    for part, segment in zip(template, segments, strict=True):
        if isinstance(part, str):
            if part != segment:
                return None
            continue
        name, convert, _ = part
        try:
            args[name] = convert(segment)
        except Exception:
            return None
    return args
