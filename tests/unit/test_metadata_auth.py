"""``GET /api`` reports who the caller is for every authentication state, and never answers 401."""

from __future__ import annotations

import pytest_twisted

from ovsd.auth.tokens import digest
from ovsd.store import keys
from tests.auth_support import AuthNode, auth_nodes, node

__all__ = ["auth_nodes", "node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_authentication_state_for_each_case(node: AuthNode) -> None:
    status, body, _ = await node.password(scope="read write")
    assert status == 200, body
    token = body["access_token"]
    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None

    meta = await node.metadata(f"Bearer {token}")
    assert meta["authenticated"] is True and meta["authentication_state"] is None
    assert (meta["username"], meta["userguid"], meta["roles"]) == ("admin", admin.guid, ["read", "write"])
    assert meta["versions"] == [1, 2]

    cases = [
        (None, "unauthenticated"),
        (f"Basic {token}", "invalid authorization type"),
        ("Bearer not-a-token", "invalid token"),
    ]
    for authorization, state in cases:
        meta = await node.metadata(authorization)
        assert meta["authenticated"] is False
        assert meta["authentication_state"] == state, authorization
        assert (meta["username"], meta["userguid"], meta["roles"]) == (None, None, [])

    await node.repository.update("user", admin.guid, {"is_active": False})
    assert (await node.metadata(f"Bearer {token}"))["authentication_state"] == "inactive user"
    await node.repository.update("user", admin.guid, {"is_active": True})

    node.clock.advance(86400)
    assert (await node.metadata(f"Bearer {token}"))["authentication_state"] == "token expired"
    # the expired token was removed: the next try finds nothing (as the seed warns)
    assert (await node.metadata(f"Bearer {token}"))["authentication_state"] == "invalid token"


@pytest_twisted.ensureDeferred
async def test_corrupt_token_data_is_an_unexpected_exception_not_an_error(node: AuthNode) -> None:
    status, body, _ = await node.password()
    assert status == 200, body
    token = body["access_token"]

    guid = await node.store.execute("GET", keys.unique("bearertoken", "access_token", digest(token)))
    await node.store.execute("SET", keys.obj("bearertoken", guid), "{not json")
    meta = await node.metadata(f"Bearer {token}")
    assert meta["authenticated"] is False
    assert meta["authentication_state"] == "unexpected exception"


@pytest_twisted.ensureDeferred
async def test_storagerouter_ips_lists_every_router_and_this_node(node: AuthNode) -> None:
    repo = node.repository
    pmachine = await repo.create("pmachine", {"name": "host-a", "hvtype": "KVM", "ip": "10.0.0.9"})
    for n, ip in enumerate(("10.0.0.12", "10.0.0.2", "127.0.0.1")):
        await repo.create("storagerouter", {"name": f"sr{n}", "machine_id": f"m{n}", "ip": ip,
                                            "pmachine_guid": pmachine.guid})
    meta = await node.metadata()
    assert meta["storagerouter_ips"] == ["10.0.0.2", "10.0.0.12", "127.0.0.1"]
