"""Property: any string, sent to any writable field of any resource through the real API, is answered with a
2xx or a 4xx, never a 500; exactly 400 when the field cannot hold it (a lone surrogate or a NUL anywhere, a
control character in a single-line field); and afterwards every stored object still satisfies its
declaration and every list answers 200.

The fields come from the declarations (the create/PATCH endpoints' body fields and the object model's
properties), so a field added later is covered without touching this file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import pytest_twisted
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ovsd.api.declare import Endpoint, load_views
from ovsd.api.params import GUID
from ovsd.dal.registry import TYPES
from ovsd.dal.text import string_problem, unstorable
from ovsd.store import keys
from tests.views_support import (
    Cluster,
    TlsServer,
    ViewsNode,
    cheap_user,
    fill_path,
    populate,
    tls_server,
    views_node,
)

__all__ = ["views_node"]  # fixtures

ENDPOINTS = load_views().endpoints()
LISTS = [e for e in ENDPOINTS if e.kind == "list" and e.resource is not None and not e.path_params]
USER_PATHS = {"/api/users/", "/api/users/{guid}/", "/api/users/{guid}/set_password/"}
HUGE = "x" * 200_000
SPECIAL = ["\ud800", "\udfff", "a\ud800b", "\ud83d\ude00", "\udc00\ud800", "\x00", "a\x00b", "\x1b[31m", "\t",
           "\n", "\r\n", "\x7f", "\x85", "\u2028", "\ufeff", "", " ", "\ud800" * 1000]
#: what a URL or a form carries of a drawn string (the HTTP layer limits a request line, not this rule)
URL_CHARS = 500  # percent-encoded, up to 12 bytes each: within the 8 KiB request line

pieces = st.one_of(
    st.text(st.characters(exclude_categories=[]), max_size=20),
    st.text(st.characters(categories=["Cs", "Cc", "Zl", "Zp", "Cf"]), min_size=1, max_size=4),
    st.sampled_from(SPECIAL),
)
hostile_text = st.lists(pieces, min_size=1, max_size=3).map("".join)
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@dataclass
class Target:
    """One place a string goes: a body field (as the string, in a list, or as key and value of an object), a
    query parameter, a path segment or a token request's form field."""

    name: str
    method: str
    path: str
    where: str  # "body" | "query" | "path" | "form"
    key: str  # the field or parameter
    shape: str = "str"  # "str" | "list" | "dict"
    line: bool = True  # a single-line field: control characters are refused too
    base: dict[str, Any] = field(default_factory=dict)
    only_refusals: bool = False  # a field whose accepted values would reach the outside world (DNS)
    version: str | None = "1"
    endpoint: Endpoint | None = None  # of a body field: what makes the rest of the body good

    def must_refuse(self, value: str) -> bool:
        if unstorable(value) is not None:
            return True
        return self.shape == "str" and self.line and string_problem(value) is not None


def _body_fields(endpoint: Endpoint) -> list[tuple[str, str, bool]]:
    """(field, shape, single-line) of each body field of an endpoint that holds text."""
    found: list[tuple[str, str, bool]] = []
    declared = {p.name: p for p in endpoint.params if p.where == "body"}
    model = TYPES[endpoint.resource.kind] if endpoint.resource is not None else None
    for name in sorted(endpoint.allowed_fields or ()):
        param = declared.get(name)
        if param is not None:
            kinds = param.type if isinstance(param.type, tuple) else (param.type,)
            if str in kinds or GUID in kinds:
                found.append((name, "str", not param.text))
            elif list in kinds:
                found.append((name, "list", False))
            elif dict in kinds:
                found.append((name, "dict", False))
            continue
        assert model is not None
        prop = model.prop_by_name.get(name)
        if prop is None:
            found.append((name, "str", True))  # a relation's GUID
        elif prop.kind is str:
            found.append((name, "str", not prop.text))
        elif prop.kind in (dict, list):
            found.append((name, "dict" if prop.kind is dict else "list", False))
    return found


@dataclass
class Setup:
    node: ViewsNode
    token: str
    cluster: Cluster
    center: TlsServer
    other_user: str
    viewers: str
    admin: str
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def base(self, endpoint: Endpoint) -> dict[str, Any]:
        n = next(self.counter)
        if endpoint.path == "/api/users/":
            return {"username": f"user-{n}", "password": "pw", "group_guid": self.viewers}
        if endpoint.path == "/api/clients/":
            return {"name": "app", "ovs_type": "USER", "user_guid": self.admin}
        if endpoint.path == "/api/mgmtcenters/":
            return {"name": "vc", "username": "u", "password": "p", "ip": "127.0.0.1", "port": self.center.port,
                    "type": "VCENTER"}
        if endpoint.path == "/api/users/{guid}/set_password/":
            return {"new_password": "pw-2"}
        if endpoint.path == "/api/vdisks/":
            return {"name": f"vd-{n}", "size": 1 << 20, "vpool_guid": self.cluster.vpool,
                    "storagerouter_guid": self.cluster.storagerouter}
        if endpoint.path == "/api/vmachines/":
            return {"name": f"vm-{n}"}
        return {}

    def path(self, endpoint: Endpoint) -> str:
        if endpoint.resource is None or "{guid}" not in endpoint.path:
            return endpoint.path
        kind = endpoint.resource.kind
        guid = self.other_user if kind == "user" else self.cluster.guid_of(kind)
        assert guid is not None, kind
        return fill_path(endpoint, guid)

    def targets(self, users: bool) -> list[Target]:
        found: list[Target] = []
        for endpoint in ENDPOINTS:
            writes = endpoint.kind in ("create", "patch") or endpoint.path == "/api/users/{guid}/set_password/"
            if not writes or (endpoint.path in USER_PATHS) != users:
                continue
            for name, shape, line in _body_fields(endpoint):
                found.append(Target(
                    f"{endpoint.method} {endpoint.path} {name}", endpoint.method, self.path(endpoint), "body", name,
                    shape, line, only_refusals=(endpoint.path, name) == ("/api/mgmtcenters/", "ip"),
                    endpoint=endpoint,
                ))
        if users:
            return found
        for name, text in (("sort", False), ("contents", False), ("query", True)):
            found.append(Target(f"GET /api/vdisks/?{name}", "GET", "/api/vdisks/", "query", name, line=not text,
                                version="2"))
        found.append(Target("GET /api/vpools/<segment>/", "GET", "/api/vpools/", "path", "segment"))
        for name in ("grant_type", "username", "password", "scope"):
            found.append(Target(f"POST /api/oauth2/token/ {name}", "POST", "/api/oauth2/token/", "form", name,
                                version=None))
        return found


@pytest_twisted.async_yield_fixture
async def setup(views_node: ViewsNode) -> AsyncIterator[Setup]:
    node = views_node
    cluster = await populate(node.repository)
    viewers = await node.group("viewers")
    other = await cheap_user(node.repository, "other", viewers.guid)
    center = await tls_server(node.tls_dir)
    token = await node.admin_token()
    yield Setup(node, token, cluster, center, other.guid, viewers.guid, (await node.user("admin")).guid)
    await center.stop()


def _url_text(value: str) -> str:
    return quote_from_bytes(value[:URL_CHARS].encode("utf-8", "surrogatepass"), safe="")


async def _send(setup: Setup, target: Target, value: str) -> Any:
    node = setup.node
    if target.where == "query":
        return await node.call("GET", f"{target.path}?{target.key}={_url_text(value)}", setup.token,
                               version=target.version)
    if target.where == "path":
        return await node.call("GET", f"{target.path}{_url_text(value)}/", setup.token)
    if target.where == "form":
        for prefix in (keys.auth_failures(""), keys.auth_lockout("")):  # five refusals lock the address out
            found = await node.store.execute("KEYS", prefix + "*")
            if found:
                await node.store.execute("DEL", *found)
        form = {"grant_type": "client_credentials", target.key: value[:URL_CHARS]}
        raw = "&".join(f"{k}={_url_text(v)}" for k, v in form.items()).encode("ascii")
        return await node.call("POST", target.path, raw=raw, content_type="application/x-www-form-urlencoded",
                               version=None)
    sent: Any = {"str": value, "list": [value], "dict": {value: value}}[target.shape]
    assert target.endpoint is not None
    body = {**setup.base(target.endpoint), target.key: sent}
    return await node.call(target.method, target.path, setup.token, body=body)


async def _everything_still_readable(setup: Setup) -> None:
    node = setup.node
    for endpoint in LISTS:
        assert endpoint.resource is not None
        reply = await node.call("GET", f"{endpoint.path}?contents=", setup.token)
        assert reply.status == 200, (endpoint.path, reply.status, reply.body)
    for kind, t in TYPES.items():
        for obj in await node.repository.load_all(kind):
            for prop in t.props:
                problem = prop.check(obj.data.get(prop.name))
                assert problem is None or problem == "is mandatory", (kind, prop.name, problem)


async def _walk(setup: Setup, targets: list[Target], value: str) -> None:
    for target in targets:
        if target.only_refusals and not target.must_refuse(json.loads(json.dumps(value))):
            continue
        reply = await _send(setup, target, value)
        # JSON carries a surrogate pair as the character it encodes; a URL or form carries each half
        received = json.loads(json.dumps(value)) if target.where == "body" else value
        if target.must_refuse(received):
            assert reply.status == 400, (target.name, value[:50], reply.status, reply.body)
            code = "invalid_request" if target.where == "form" else "invalid_data"
            assert isinstance(reply.body, dict) and reply.body.get("error") == code, (target.name, reply.body)
        else:
            assert 200 <= reply.status < 500, (target.name, value[:50], reply.status, reply.body)
    await _everything_still_readable(setup)


@settings(max_examples=40, **SETTINGS)  # type: ignore[arg-type]
@given(value=hostile_text)
@example(value="\ud800")
@example(value="\x00")
@example(value="\x1b")
@example(value=HUGE)
@pytest_twisted.ensureDeferred
async def test_no_string_breaks_any_field_of_the_cluster_model(setup: Setup, value: str) -> None:
    await _walk(setup, setup.targets(users=False), value)


@settings(max_examples=12, **SETTINGS)  # type: ignore[arg-type]
@given(value=hostile_text)
@example(value="\udfff")
@example(value="a\x00b")
@example(value="\t")
@pytest_twisted.ensureDeferred
async def test_no_string_breaks_any_field_of_users(setup: Setup, value: str) -> None:
    # every accepted value here costs an argon2 hash: fewer examples, the same oracle
    await _walk(setup, setup.targets(users=True), value)
