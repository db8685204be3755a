"""The token endpoint as a client sees it over HTTPS: both grants, scopes, lifetimes, every error code."""

from __future__ import annotations

import base64
from typing import Any

import pytest_twisted

from ovsd.auth.accounts import create_client, create_user, delete_client, regenerate_secret
from ovsd.auth.tokens import digest
from ovsd.dal.grants import role_guids_of, set_roles
from ovsd.dal.repository import DataObject
from tests.auth_support import ADMIN_PASSWORD, AuthNode, NodeFactory, auth_nodes, basic, node

__all__ = ["auth_nodes", "node"]  # fixtures


async def _group(node: AuthNode, name: str) -> DataObject:
    found = await node.repository.find("group", "name", name)
    assert found is not None
    return found


async def _admin_client(node: AuthNode) -> tuple[str, str]:
    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None
    client, secret = await create_client(node.repository, admin.guid, "automation")
    return client.guid, secret


def _header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


@pytest_twisted.ensureDeferred
async def test_seed_basic_example_flow_end_to_end(node: AuthNode) -> None:
    client_id, secret = await _admin_client(node)
    # exactly the seed's request: Basic credentials, a form body with only the grant type
    status, body, response = await node.api.request(
        "POST", "/api/oauth2/token/", data=b"grant_type=client_credentials",
        headers={"Authorization": basic(client_id, secret), "Cache-Control": "no-cache",
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) >= 43
    assert _header(response, "Cache-Control") == "no-store"
    assert _header(response, "Pragma") == "no-cache"
    assert (_header(response, "Content-Type") or "").startswith("application/json")

    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None
    meta = await node.metadata(f"Bearer {body['access_token']}")
    assert meta["authenticated"] is True
    assert meta["authentication_state"] is None
    assert meta["username"] == "admin"
    assert meta["userguid"] == admin.guid
    assert meta["roles"] == ["manage", "read", "write"]

    status, who, _ = await node.whoami(f"Bearer {body['access_token']}")
    assert status == 200 and who == {"username": "admin", "roles": ["manage", "read", "write"]}


SEED_AUTHORIZATION = (
    "Basic MzMyZTFhYTgtYjc5Ni00M2ZhLThjN2EtZDYxZDM1ODlkMDBiOlRaQHl6SUpnIVVCTCw+cFZ9Ik9BUyxyNUVoUmdxSkREXSoycjBLI0N"
    "fSjptTiIqQUJfLTA5dFM9OyJDMmtbUjg="
)


@pytest_twisted.ensureDeferred
async def test_the_seeds_literal_header_works_for_a_client_with_that_id_and_secret(node: AuthNode) -> None:
    # the seed's secret holds colons and quotes: only the first colon separates id from secret
    client_id = "332e1aa8-b796-43fa-8c7a-d61d3589d00b"
    secret = 'TZ@yzIJg!UBL,>pV}"OAS,r5EhRgqJDD]*2r0K#C_J:mN"*AB_-09tS=;"C2k[R8'
    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None
    await node.repository.create("client", {
        "name": "seed", "client_secret": digest(secret), "grant_type": "CLIENT_CREDENTIALS", "ovs_type": "USER",
        "user_guid": admin.guid,
    }, guid=client_id)
    await set_roles(node.repository, "client", client_id,
                    await role_guids_of(node.repository, "group", (await _group(node, "viewers")).guid))
    status, body, _ = await node.token({"grant_type": "client_credentials"}, {"Authorization": SEED_AUTHORIZATION})
    assert status == 200, body
    meta = await node.metadata(f"Bearer {body['access_token']}")
    assert (meta["authenticated"], meta["username"], meta["roles"]) == (True, "admin", ["read"])


@pytest_twisted.ensureDeferred
async def test_basic_scheme_word_is_case_insensitive_and_the_path_works_without_slash(node: AuthNode) -> None:
    client_id, secret = await _admin_client(node)
    for scheme in ("basic", "BASIC"):
        status, body, _ = await node.client_credentials(client_id, secret, scheme=scheme)
        assert status == 200, body
    status, body, _ = await node.api.request(
        "POST", "/api/oauth2/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(client_id, secret)},
    )
    assert status == 200, body


@pytest_twisted.ensureDeferred
async def test_password_grant_gives_the_gui_a_day_long_token_with_the_users_roles(node: AuthNode) -> None:
    status, body, response = await node.password()
    assert status == 200, body
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400
    assert _header(response, "Cache-Control") == "no-store"
    meta = await node.metadata(f"Bearer {body['access_token']}")
    assert (meta["username"], meta["roles"]) == ("admin", ["manage", "read", "write"])


@pytest_twisted.ensureDeferred
async def test_lifetimes_come_from_configuration(auth_nodes: NodeFactory) -> None:
    node = await auth_nodes(auth={"password_token_lifetime": 600, "client_token_lifetime": 120})
    client_id, secret = await _admin_client(node)
    status, body, _ = await node.client_credentials(client_id, secret)
    assert (status, body["expires_in"]) == (200, 120)
    status, body, _ = await node.password()
    assert (status, body["expires_in"]) == (200, 600)
    token = body["access_token"]
    node.clock.advance(599)
    assert (await node.metadata(f"Bearer {token}"))["authenticated"] is True
    node.clock.advance(1)
    assert (await node.metadata(f"Bearer {token}"))["authentication_state"] == "token expired"


@pytest_twisted.ensureDeferred
async def test_scope_narrows_the_token_and_unknown_codes_are_ignored(node: AuthNode) -> None:
    client_id, secret = await _admin_client(node)
    status, body, _ = await node.client_credentials(client_id, secret, scope="read")
    assert status == 200, body
    assert (await node.metadata(f"Bearer {body['access_token']}"))["roles"] == ["read"]

    status, body, _ = await node.client_credentials(client_id, secret, scope="read write no-such-role")
    assert status == 200, body
    assert (await node.metadata(f"Bearer {body['access_token']}"))["roles"] == ["read", "write"]

    status, body, _ = await node.password(scope="manage")
    assert status == 200, body
    assert (await node.metadata(f"Bearer {body['access_token']}"))["roles"] == ["manage"]
    # a token without read cannot call what needs read
    status, refusal, _ = await node.whoami(f"Bearer {body['access_token']}")
    assert status == 403 and refusal["error"] == "invalid_roles"


@pytest_twisted.ensureDeferred
async def test_a_role_the_client_does_not_hold_is_invalid_scope(node: AuthNode) -> None:
    viewers = await _group(node, "viewers")
    viewer = await create_user(node.repository, "vera", "vera-pw-123", viewers.guid)
    client, secret = await create_client(node.repository, viewer.guid, "vera's script")
    status, body, _ = await node.client_credentials(client.guid, secret, scope="read manage")
    assert status == 400
    assert body["error"] == "invalid_scope"
    # what the client holds is fine
    status, body, _ = await node.client_credentials(client.guid, secret, scope="read")
    assert status == 200, body


@pytest_twisted.ensureDeferred
async def test_a_client_gets_only_roles_its_users_group_holds(node: AuthNode) -> None:
    viewers = await _group(node, "viewers")
    admins = await _group(node, "administrators")
    viewer = await create_user(node.repository, "vic", "vic-pw-123", viewers.guid)
    # asking for manage on a viewer's client grants only what the group holds
    client, secret = await create_client(node.repository, viewer.guid, "c",
                                         await role_guids_of(node.repository, "group", admins.guid))
    status, body, _ = await node.client_credentials(client.guid, secret)
    assert status == 200, body
    assert (await node.metadata(f"Bearer {body['access_token']}"))["roles"] == ["read"]


@pytest_twisted.ensureDeferred
async def test_every_error_code_of_the_token_endpoint(node: AuthNode) -> None:
    repo = node.repository
    client_id, secret = await _admin_client(node)
    admins = await _group(node, "administrators")
    await create_user(repo, "sleepy", "sleepy-pw-1", admins.guid, is_active=False)
    inactive_owner = await create_user(repo, "dormant", "dormant-pw-1", admins.guid)
    dormant_client, dormant_secret = await create_client(repo, inactive_owner.guid, "dormant's")
    await repo.update("user", inactive_owner.guid, {"is_active": False})
    orphan = await create_user(repo, "orphan", "orphan-pw-1", admins.guid)
    for guid in await repo.reverse_guids("user", orphan.guid, "clients"):
        await delete_client(repo, guid)
    admin = await repo.find("user", "username", "admin")
    assert admin is not None
    internal = (await repo.reverse_guids("user", admin.guid, "clients"))
    password_client = next(c for c in await repo.get_many("client", internal) if c.data["ovs_type"] == "INTERNAL")
    password_client_secret = await regenerate_secret(repo, password_client.guid)

    cc = {"grant_type": "client_credentials"}
    cases: list[tuple[str, dict[str, str], dict[str, str] | None]] = [
        ("invalid_request", {}, None),
        ("invalid_request", {"grant_type": ""}, None),
        ("invalid_request", {"grant_type": "password", "password": "x"}, None),
        ("invalid_request", {"grant_type": "password", "username": "admin"}, None),
        ("invalid_client", {"grant_type": "password", "username": "nobody", "password": "x"}, None),
        ("invalid_client", {"grant_type": "password", "username": "admin", "password": "wrong"}, None),
        ("inactive_user", {"grant_type": "password", "username": "sleepy", "password": "sleepy-pw-1"}, None),
        ("unauthorized_client", {"grant_type": "password", "username": "orphan", "password": "orphan-pw-1"}, None),
        ("missing_header", cc, None),
        ("invalid_request", cc, {"Authorization": "Basic !!!not-base64"}),
        ("invalid_request", cc, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}),
        ("invalid_request", cc, {"Authorization": "Bearer something"}),
        ("invalid_client", cc, {"Authorization": basic("00000000-0000-4000-8000-000000000000", secret)}),
        ("invalid_client", cc, {"Authorization": basic("not-a-guid", secret)}),
        ("invalid_client", cc, {"Authorization": basic(client_id, secret + "x")}),
        ("invalid_client", cc, {"Authorization": basic(client_id, "")}),
        ("invalid_grant", cc, {"Authorization": basic(password_client.guid, password_client_secret)}),
        ("inactive_user", cc, {"Authorization": basic(dormant_client.guid, dormant_secret)}),
        ("unsupported_grant_type", {"grant_type": "authorization_code", "code": "x"}, None),
        ("unsupported_grant_type", {"grant_type": "refresh_token", "refresh_token": "x"}, None),
    ]
    for code, form, headers in cases:
        status, body, response = await node.token(form, headers)
        assert (status, body["error"]) == (400, code), (form, headers, body)
        assert set(body) == {"error", "error_description"} and body["error_description"]
        assert _header(response, "Cache-Control") == "no-store"
        node.clock.advance(61)  # keep the brute-force limit out of this test

    # an unknown user and a wrong password cannot be told apart
    _, unknown, _ = await node.password("nobody", "x")
    node.clock.advance(61)
    _, wrong, _ = await node.password("admin", "wrong")
    assert unknown == wrong


@pytest_twisted.ensureDeferred
async def test_only_the_body_carries_credentials(node: AuthNode) -> None:
    status, body, _ = await node.api.request(
        "POST", f"/api/oauth2/token/?grant_type=password&username=admin&password={ADMIN_PASSWORD}", data=b"",
    )
    assert (status, body["error"]) == (400, "invalid_request")


@pytest_twisted.ensureDeferred
async def test_a_regenerated_secret_replaces_the_old_one(node: AuthNode) -> None:
    client_id, secret = await _admin_client(node)
    new_secret = await regenerate_secret(node.repository, client_id)
    assert new_secret != secret
    status, body, _ = await node.client_credentials(client_id, secret)
    assert (status, body["error"]) == (400, "invalid_client")
    status, body, _ = await node.client_credentials(client_id, new_secret)
    assert status == 200, body
