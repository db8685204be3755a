"""Bad input never breaks the API: every POST and PATCH endpoint answers malformed, mistyped, unknown and
oversized bodies with a 4xx in the contract's error shape, and nothing in the store changes.

Each bad body is a good one (what the call needs to succeed: a reachable TLS server for a management
center, a user whose password a manager may set …) with one thing wrong, so an input the API wrongly
accepted would show up as a success and as a change in the store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest_twisted

from ovsd.api.declare import Endpoint, load_views
from ovsd.api.errors import ApiError
from ovsd.api.http import MAX_BODY
from ovsd.dal.fields import Prop, Relation
from ovsd.dal.registry import TYPES
from ovsd.dal.repository import is_guid
from tests.views_support import (
    MADE_UP,
    VOLATILE,
    Cluster,
    Reply,
    ViewsNode,
    cheap_user,
    fill_path,
    has_key,
    populate,
    store_snapshot,
    tls_server,
    views_node,
)

__all__ = ["views_node"]  # fixtures

ENDPOINTS = [e for e in load_views().endpoints() if e.method in ("POST", "PATCH")]
#: endpoints whose body is a JSON array, not an object (contract §8)
ARRAY_BODIES = {("POST", "/api/messages/{sid}/subscribe/")}
#: values of every JSON type; a field gets those its declaration refuses
CANDIDATES: tuple[Any, ...] = (12345, "not-a-guid", "maybe", [1], {"x": 1}, 1.5, True)
SAMPLES: dict[Any, Any] = {str: "x", int: 1, float: 1.0, bool: True, dict: {}, list: [], "guid": MADE_UP["guid"],
                           object: "x"}
NOT_OBJECTS = (b"[1, 2]", b'"text"', b"42", b"true", b"null")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Bad:
    """One bad request: what is wrong with it, and what it sends."""

    what: str
    path: str
    raw: bytes | None = None
    content_type: str = JSON
    form: dict[str, str] | None = None
    status: int | None = None  # the exact status expected (else any 4xx)


@dataclass
class Fields:
    """The body fields an endpoint declares, each with a check of whether it accepts a value."""

    accepts: dict[str, Callable[[Any], bool]] = field(default_factory=dict)
    kinds: dict[str, Any] = field(default_factory=dict)  # the declared type of each field
    guids: set[str] = field(default_factory=set)  # fields holding one GUID


def _prop_accepts(prop: Prop, value: Any) -> bool:
    return prop.check(value) is None


def _relation_accepts(relation: Relation, value: Any) -> bool:
    return (value is None and not relation.mandatory) or is_guid(value)


def fields_of(endpoint: Endpoint) -> Fields:
    found = Fields()
    for param in endpoint.params:
        if param.where != "body":
            continue

        def accepts(value: Any, param: Any = param) -> bool:
            try:
                param.value_of(value)
            except ApiError:
                return False
            return True

        found.accepts[param.name] = accepts
        found.kinds[param.name] = param.type
        if param.type == "guid":
            found.guids.add(param.name)
    if endpoint.kind == "patch" and endpoint.resource is not None:
        t = TYPES[endpoint.resource.kind]
        for name in endpoint.allowed_fields or ():
            prop = t.prop_by_name.get(name)
            if prop is not None:
                found.accepts[name] = partial(_prop_accepts, prop)
                found.kinds[name] = prop.kind
                continue
            found.accepts[name] = partial(_relation_accepts, t.relation_by_key[name])
            found.kinds[name] = "guid"
            found.guids.add(name)
    return found


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def as_form(body: dict[str, Any]) -> dict[str, str]:
    """A JSON body as form fields (structures and numbers in their JSON text, as the contract allows)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}


def unreadable_bodies(endpoint: Endpoint, path: str, good: dict[str, Any] | None) -> Iterator[Bad]:
    """Bodies that are not a JSON object (or a form) at all: the parser's refusals."""
    yield Bad("malformed JSON", path, b'{"name": "x"', status=400)
    yield Bad("deeply nested JSON", path, b"[" * 200_000 + b"]" * 200_000, status=400)
    yield Bad("invalid UTF-8", path, b'{"name": "\xff\xfe"}', status=400)
    yield Bad("a form that is not UTF-8", path, b"name=\xff\xfe", content_type=FORM, status=400)
    yield Bad("a broken multipart body", path, b"--x\r\ngarbage", content_type="multipart/form-data; boundary=x",
              status=400)
    if (endpoint.method, endpoint.path) in ARRAY_BODIES:
        yield Bad("an object instead of an array", path, encode({"types": ["EVENT"]}), status=400)
        return
    for raw in NOT_OBJECTS:
        yield Bad(f"JSON that is not an object: {raw.decode()}", path, raw, status=400)
    for name, kind in fields_of(endpoint).kinds.items():
        if kind is dict:  # a field that takes any JSON object: only the parser can refuse NaN there
            text = json.dumps({**(good or {}), name: {"a": float("nan")}}, allow_nan=True)
            yield Bad(f"a NaN literal in {name} (NaN is not JSON)", path, text.encode(), status=400)


def bad_requests(endpoint: Endpoint, path: str, good: dict[str, Any] | None) -> Iterator[Bad]:
    """Readable bodies with one thing wrong: unknown or mistyped fields, unknown objects, too large."""
    base = dict(good or {})
    if (endpoint.method, endpoint.path) not in ARRAY_BODIES:
        yield Bad("an unknown field", path, encode({**base, "no_such_field": 1}), status=400)
        yield Bad("an unknown field in a form", path, form={**as_form(base), "no_such_field": "1"}, status=400)
    fields = fields_of(endpoint)
    for name, accepts in fields.accepts.items():
        wrong = [value for value in CANDIDATES if not accepts(value)][:3]
        for value in wrong:
            yield Bad(f"{name} = {value!r}", path, encode({**base, name: value}), status=400)
        for text in ("maybe", "twelve", "{not json"):
            if not accepts(text):
                yield Bad(f"{name} = {text!r} in a form", path, form={**as_form(base), name: text})
                break
    for name in fields.guids:
        yield Bad(f"{name} names no object", path, encode({**base, name: str(uuid.uuid4())}))
        yield Bad(f"{name} is a malformed GUID", path, encode({**base, name: "1234-not-a-guid"}), status=400)
    oversized = b'{"description": "' + b"x" * MAX_BODY + b'"}'
    yield Bad("a body over 1 MiB", path, oversized, status=413)
    if has_key(endpoint):
        yield Bad("an unknown object in the path", fill_path(endpoint), encode(good) if good else None)
        yield Bad("a malformed key in the path", fill_path(endpoint, "not-a-guid"), encode(good) if good else None)


@dataclass
class Goods:
    """What makes each endpoint's call good: the objects it acts on and a body it accepts."""

    node: ViewsNode
    cluster: Cluster
    other_user: str
    client: str
    center_port: int

    async def path(self, endpoint: Endpoint) -> str:
        if not has_key(endpoint) or endpoint.path_params:
            return fill_path(endpoint)
        assert endpoint.resource is not None
        kind = endpoint.resource.kind
        guid = {"user": self.other_user, "client": self.client}.get(kind) or self.cluster.guid_of(kind)
        return fill_path(endpoint, guid)

    async def body(self, endpoint: Endpoint) -> dict[str, Any] | None:
        key = (endpoint.method, endpoint.path)
        if key == ("POST", "/api/users/"):
            viewers = await self.node.group("viewers")
            return {"username": "newcomer", "password": "pw", "group_guid": viewers.guid, "is_active": True}
        if key == ("POST", "/api/clients/"):
            admin = await self.node.user("admin")
            return {"name": "app", "ovs_type": "USER", "user_guid": admin.guid}
        if key == ("POST", "/api/mgmtcenters/"):
            return {"name": "vc", "username": "u", "password": "p", "ip": "127.0.0.1", "port": self.center_port,
                    "type": "VCENTER", "description": "a center"}
        if key == ("POST", "/api/users/{guid}/set_password/"):
            return {"new_password": "changed"}
        if endpoint.kind == "patch" and "description" in (endpoint.allowed_fields or ()):
            return {"description": "changed"}
        # an endpoint this file does not know: its mandatory parameters, each with a value of its type, so
        # that a bad field is the only thing wrong with the call
        mandatory = {p.name: SAMPLES[p.type[0] if isinstance(p.type, tuple) else p.type]
                     for p in endpoint.params if p.where == "body" and p.mandatory}
        return mandatory or None


def shape_problem(reply: Reply, bad: Bad) -> str | None:
    if reply.status >= 500 or reply.status < 400:
        return f"answered {reply.status}"
    if bad.status is not None and reply.status != bad.status:
        return f"answered {reply.status}, not {bad.status}"
    if not isinstance(reply.body, dict) or set(reply.body) != {"error", "error_description"}:
        return f"answered a body that is not the error shape: {reply.raw[:200]!r}"
    if not all(isinstance(v, str) and v for v in reply.body.values()):
        return f"answered empty error fields: {reply.body}"
    return None


Variants = Callable[[Endpoint, str, "dict[str, Any] | None"], Iterator[Bad]]


async def refuse_all(node: ViewsNode, variants: Variants) -> list[str]:
    """Send every variant to every POST and PATCH endpoint; the problems found (none is the goal)."""
    assert len(ENDPOINTS) >= 10
    cluster = await populate(node.repository)
    other = await cheap_user(node.repository, "other", (await node.group("viewers")).guid)
    token = await node.admin_token()
    admin = await node.user("admin")
    client_reply = await node.call("POST", "/api/clients/", token, body={"name": "mine", "ovs_type": "USER",
                                                                           "user_guid": admin.guid})
    assert client_reply.status == 201
    center = await tls_server(node.tls_dir)
    goods = Goods(node, cluster, other.guid, client_reply.body["client_id"], center.port)
    problems: list[str] = []
    sent = 0
    try:
        before = await store_snapshot(node.store, VOLATILE)
        for endpoint in ENDPOINTS:
            path = await goods.path(endpoint)
            for bad in variants(endpoint, path, await goods.body(endpoint)):
                sent += 1
                reply = await node.call(endpoint.method, bad.path, token, raw=bad.raw, form=bad.form,
                                        content_type=None if bad.form is not None else bad.content_type)
                problem = shape_problem(reply, bad)
                if problem is not None:
                    problems.append(f"{endpoint.method} {endpoint.path} with {bad.what}: {problem} {reply.body!r:.200}")
        after = await store_snapshot(node.store, VOLATILE)
    finally:
        await center.stop()
    changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    if changed:
        problems.append(f"the store changed: {changed}")
    assert sent > 5 * len(ENDPOINTS)
    return problems


@pytest_twisted.ensureDeferred
async def test_every_post_and_patch_refuses_wrong_fields_and_changes_nothing(views_node: ViewsNode) -> None:
    problems = await refuse_all(views_node, bad_requests)
    assert not problems, "\n".join(problems)


@pytest_twisted.ensureDeferred
async def test_every_post_and_patch_refuses_bodies_that_are_not_an_object(views_node: ViewsNode) -> None:
    problems = await refuse_all(views_node, unreadable_bodies)
    assert not problems, "\n".join(problems)


@pytest_twisted.ensureDeferred
async def test_the_good_bodies_of_this_file_do_succeed(views_node: ViewsNode) -> None:
    """The bad requests above are each one mistake away from a call that works."""
    node = views_node
    cluster = await populate(node.repository)
    other = await cheap_user(node.repository, "other", (await node.group("viewers")).guid)
    token = await node.admin_token()
    center = await tls_server(node.tls_dir)
    goods = Goods(node, cluster, other.guid, MADE_UP["guid"], center.port)
    try:
        for key in (("POST", "/api/users/"), ("POST", "/api/clients/"), ("POST", "/api/mgmtcenters/"),
                    ("POST", "/api/users/{guid}/set_password/"), ("PATCH", "/api/vpools/{guid}/")):
            [endpoint] = [e for e in ENDPOINTS if (e.method, e.path) == key]
            reply = await node.call(endpoint.method, await goods.path(endpoint), token,
                                    body=await goods.body(endpoint))
            assert reply.status == endpoint.status, (key, reply.body)
    finally:
        await center.stop()
