"""The role matrix, generated from the declarations: every endpoint against every role set a token can carry.

A call passes the role check exactly when its token holds every role the endpoint declares: then the
answer is the endpoint's success (or, for endpoints this file does not know how to feed, some answer of
the domain: 404 for a made-up id, 406 for a missing parameter …, never 401 or 403 invalid_roles).
Otherwise it is 403 invalid_roles with ``This call requires roles: …`` and nothing in the store changes.
Without a token every endpoint that needs one answers 401 not_authenticated.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest_twisted

from ovsd.api.declare import Endpoint, load_views
from ovsd.auth.accounts import create_client
from ovsd.dal.repository import DataObject
from tests.views_support import (
    MISSING,
    ROLE_SETS,
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

ENDPOINTS = load_views().endpoints()
CHALLENGE = 'Bearer realm="ovsd", error="not_authenticated"'
SET_PASSWORD = ("POST", "/api/users/{guid}/set_password/")
#: object-level refusals the matrix meets on purpose: the callers are all user admin, and admin without
#: manage may not set another user's password (the role check passed: this is not invalid_roles)
OBJECT_REFUSALS = {(*SET_PASSWORD, "read+write"): (403, "forbidden",
                                                  "Only a manager can set another user's password")}


def requires(endpoint: Endpoint) -> str:
    return "This call requires roles: " + ", ".join(endpoint.roles)


@dataclass
class World:
    """What the calls act on: real objects of every kind, and fresh victims for deletions."""

    node: ViewsNode
    cluster: Cluster
    admin: DataObject
    other_user: DataObject
    own_client: str
    mgmtcenter_port: int
    counter: itertools.count[int]
    #: objects that the refused DELETEs aim at (and must leave in place)
    standing: dict[str, str | None] = field(default_factory=dict)

    async def object_for(self, endpoint: Endpoint, fresh: bool) -> str | None:
        """The GUID the path names: a real object the call can succeed on (None: make one up)."""
        assert endpoint.resource is not None
        kind = endpoint.resource.kind
        if endpoint.kind == "delete":
            if fresh:
                return await self.victim(kind)
            if kind not in self.standing:
                self.standing[kind] = await self.victim(kind)
            return self.standing[kind]
        if kind == "user":
            # admin may read itself; changes go to another user (admin may not change itself)
            return self.admin.guid if endpoint.kind == "fetch" else self.other_user.guid
        if kind == "client":
            return self.own_client
        if kind in ("branding", "group", "role"):
            return (await self.node.repository.guids(kind))[0]
        return self.cluster.guid_of(kind)

    async def victim(self, kind: str) -> str | None:
        """A new object that a DELETE may remove, for the kinds this test can make."""
        n = next(self.counter)
        repo = self.node.repository
        if kind == "client":
            client, _ = await create_client(repo, self.admin.guid, f"victim{n}")
            return client.guid
        if kind == "user":
            return (await cheap_user(repo, f"victim{n}", (await self.node.group("viewers")).guid)).guid
        if kind == "mgmtcenter":
            return (await repo.create("mgmtcenter", {"name": f"old{n}", "username": "u", "password": "p",
                                                    "ip": f"10.77.0.{n}", "port": 443, "type": "VCENTER"})).guid
        return None

    async def body_for(self, endpoint: Endpoint) -> Any:
        n = next(self.counter)
        key = (endpoint.method, endpoint.path)
        if key == ("POST", "/api/clients/"):
            return {"name": f"matrix{n}", "ovs_type": "USER"}
        if key == ("POST", "/api/users/"):
            viewers = await self.node.group("viewers")
            return {"username": f"matrix{n}", "password": "matrix-pw", "group_guid": viewers.guid}
        if key == ("POST", "/api/mgmtcenters/"):
            return {"name": f"center{n}", "username": "u", "password": "p", "ip": "127.0.0.1",
                    "port": self.mgmtcenter_port, "type": "OPENSTACK"}
        if key == SET_PASSWORD:
            return {"new_password": f"matrix-pw-{n}"}
        if endpoint.kind == "patch":
            fields = endpoint.allowed_fields or frozenset()
            return {"description": f"matrix {n}"} if "description" in fields else {"language": "nl-NL"}
        return MISSING

    def knows(self, endpoint: Endpoint) -> bool:
        """Whether this test feeds the endpoint what it needs to succeed (else any domain answer is fine)."""
        key = (endpoint.method, endpoint.path)
        return endpoint.kind in ("list", "fetch", "patch", "delete") or key in {
            ("POST", "/api/clients/"), ("POST", "/api/users/"), ("POST", "/api/mgmtcenters/"), SET_PASSWORD,
            ("POST", "/api/clients/{guid}/regenerate_secret/"),
        }

    async def path_for(self, endpoint: Endpoint, fresh: bool) -> tuple[str, bool]:
        """The concrete path, and whether every object it names exists."""
        if endpoint.path_params:
            return fill_path(endpoint), False
        if not has_key(endpoint):
            return endpoint.path, True
        assert endpoint.resource is not None
        guid = await self.object_for(endpoint, fresh) if endpoint.resource.key_type == "guid" else None
        return fill_path(endpoint, guid), guid is not None


async def call(world: World, endpoint: Endpoint, token: str | None, fresh: bool) -> tuple[Reply, bool]:
    path, real = await world.path_for(endpoint, fresh)
    body = await world.body_for(endpoint)
    reply = await world.node.call(endpoint.method, path, token, body=body)
    return reply, real


def describe(endpoint: Endpoint, caller: str, reply: Reply) -> str:
    return f"{endpoint.method} {endpoint.path} as {caller}: {reply.status} {reply.body!r}"


def is_domain_answer(reply: Reply) -> bool:
    """An answer past the role check: success, or a refusal of the domain (never 401/invalid_roles/500)."""
    if 200 <= reply.status < 300:
        return True
    if reply.status == 503:
        return reply.error[1] == "node_unavailable"
    return reply.status in (400, 403, 404, 405, 406, 409) and reply.error[1] != "invalid_roles"


@pytest_twisted.ensureDeferred
async def test_every_endpoint_needs_exactly_its_declared_roles(views_node: ViewsNode) -> None:
    node = views_node
    assert len(ENDPOINTS) >= 40, "the views declare their endpoints on import"
    repo = node.repository
    cluster = await populate(repo)
    admin = await node.user("admin")
    viewers = (await node.group("viewers")).guid
    other = await cheap_user(repo, "other", viewers)
    own_client, _ = await create_client(repo, admin.guid, "own")
    center = await tls_server(node.tls_dir)
    world = World(node, cluster, admin, other, own_client.guid, center.port, itertools.count(1))
    tokens = {name: await node.admin_token(name) for name in ROLE_SETS}
    viewer = await cheap_user(repo, "viewer", viewers)
    callers: list[tuple[str, frozenset[str], str]] = [(name, roles, tokens[name]) for name, roles in ROLE_SETS.items()]
    callers.append(("user viewer (group viewers)", frozenset({"read"}), await node.password_token(
        str(viewer.data["username"]), "shared-password")))
    problems: list[str] = []
    try:
        # 1. every refused call, and every call without a token: nothing may change in the store
        for endpoint in ENDPOINTS:
            if endpoint.kind == "delete":
                await world.path_for(endpoint, fresh=False)  # the objects they aim at exist before
        before = await store_snapshot(node.store)
        refused = 0
        for endpoint in ENDPOINTS:
            reply, _ = await call(world, endpoint, None, fresh=False)
            if endpoint.token:
                if reply.error != (401, "not_authenticated") or reply.header("WWW-Authenticate") != CHALLENGE:
                    problems.append("no token: " + describe(endpoint, "nobody", reply))
            elif not 200 <= reply.status < 300:
                problems.append("no token needed: " + describe(endpoint, "nobody", reply))
            for name, roles, token in callers:
                if set(endpoint.roles) <= roles:
                    continue
                refused += 1
                reply, _ = await call(world, endpoint, token, fresh=False)
                if reply.status != 403 or reply.body != {"error": "invalid_roles",
                                                         "error_description": requires(endpoint)}:
                    problems.append("should be refused: " + describe(endpoint, name, reply))
        assert refused > 50
        after = await store_snapshot(node.store)
        changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        if changed:
            problems.append(f"refused calls changed the store: {changed}")

        # 2. every allowed call: the declared success for what this test can feed, else a domain answer
        for endpoint in ENDPOINTS:
            for name, roles, token in callers:
                if not set(endpoint.roles) <= roles:
                    continue
                reply, real = await call(world, endpoint, token, fresh=True)
                refusal = OBJECT_REFUSALS.get((endpoint.method, endpoint.path, name))
                if refusal is not None:
                    if (reply.status, reply.error[1], reply.body.get("error_description")) != refusal:
                        problems.append("object-level refusal expected: " + describe(endpoint, name, reply))
                elif name in ROLE_SETS and real and world.knows(endpoint):
                    if reply.status != endpoint.status:
                        problems.append(f"expected {endpoint.status}: " + describe(endpoint, name, reply))
                elif not is_domain_answer(reply):
                    problems.append("should pass the role check: " + describe(endpoint, name, reply))
    finally:
        await center.stop()
    assert not problems, "\n".join(problems)


@pytest_twisted.ensureDeferred
async def test_a_refusal_names_the_roles_and_a_narrowed_token_shows_them(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token("read")
    meta = await node.call("GET", "/api", token, version=None)
    assert meta.body["roles"] == ["read"]
    reply = await node.call("POST", "/api/clients/", token, body={"name": "x", "ovs_type": "USER"})
    assert reply.status == 403
    assert reply.body == {"error": "invalid_roles", "error_description": "This call requires roles: read, write"}
    reply = await node.call("DELETE", f"/api/users/{uuid.uuid4()}/", await node.admin_token("read+write"))
    assert reply.body == {"error": "invalid_roles",
                          "error_description": "This call requires roles: read, write, manage"}
    # the same user with manage passes the role check and meets the object: an unknown one is 404
    reply = await node.call("DELETE", f"/api/users/{uuid.uuid4()}/", await node.admin_token())
    assert reply.error == (404, "object_not_found")


#: the roles the contract (spec/API.md §4 Roles, §6) names for the endpoints it lists
CONTRACT_ROLES = {
    ("GET", "/api/branding/"): (), ("GET", "/api/branding/{guid}/"): (),
    ("POST", "/api/users/"): ("read", "write", "manage"), ("PATCH", "/api/users/{guid}/"): ("read", "write", "manage"),
    ("DELETE", "/api/users/{guid}/"): ("read", "write", "manage"), SET_PASSWORD: ("read", "write"),
    ("POST", "/api/clients/"): ("read", "write"), ("DELETE", "/api/clients/{guid}/"): ("read", "write"),
    ("POST", "/api/clients/{guid}/regenerate_secret/"): ("read", "write"),
    ("POST", "/api/mgmtcenters/"): ("read", "write", "manage"),
    ("DELETE", "/api/mgmtcenters/{guid}/"): ("read", "write", "manage"),
    ("PATCH", "/api/pmachines/{guid}/"): ("read", "write", "manage"),
    ("PATCH", "/api/storagerouters/{guid}/"): ("read", "write", "manage"),
    ("PATCH", "/api/vdisks/{guid}/"): ("read", "write"), ("PATCH", "/api/vmachines/{guid}/"): ("read", "write"),
    ("PATCH", "/api/vpools/{guid}/"): ("read", "write"), ("PATCH", "/api/storagedrivers/{guid}/"): ("read", "write"),
}


def test_the_declarations_follow_the_contract() -> None:
    declared = {(e.method, e.path): e for e in ENDPOINTS}
    for key, roles in CONTRACT_ROLES.items():
        assert key in declared, key
        assert set(declared[key].roles) == set(roles), key
    for endpoint in ENDPOINTS:
        if endpoint.method == "GET" and endpoint.resource is not None and endpoint.resource.name != "branding":
            # every read of the contract needs exactly read
            assert endpoint.roles == ("read",), endpoint
        # only the branding is served without a token
        assert endpoint.token is (endpoint.resource is None or endpoint.resource.name != "branding"), endpoint
