"""Bearer tokens on calls that need one: every 401 case with its challenge, expiry, revocation, roles."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from ovsd.auth.accounts import create_client, create_user, delete_client, delete_user, set_password
from ovsd.auth.tokens import digest
from tests.auth_support import AuthNode, auth_nodes, node

__all__ = ["auth_nodes", "node"]  # fixtures


async def _token(node: AuthNode, **kwargs: Any) -> str:
    status, body, _ = await node.password(**kwargs)
    assert status == 200, body
    return str(body["access_token"])


def _challenge(response: Any) -> str:
    return str(response.headers.getRawHeaders("WWW-Authenticate")[0])


@pytest_twisted.ensureDeferred
async def test_every_401_case_with_its_code_and_challenge(node: AuthNode) -> None:
    token = await _token(node)
    cases = [
        (None, "not_authenticated"),
        (f"Basic {token}", "invalid_authorization_type"),
        (f"Token {token}", "invalid_authorization_type"),
        ("Bearer", "invalid_token"),
        ("Bearer not-a-token-we-issued", "invalid_token"),
        (f"Bearer {token}x", "invalid_token"),
    ]
    for authorization, code in cases:
        status, body, response = await node.whoami(authorization)
        assert (status, body["error"]) == (401, code), authorization
        assert set(body) == {"error", "error_description"}
        assert _challenge(response) == f'Bearer realm="ovsd", error="{code}"'
    # the scheme word is case-insensitive
    for scheme in ("bearer", "BEARER"):
        status, body, _ = await node.whoami(f"{scheme} {token}")
        assert status == 200, body


@pytest_twisted.ensureDeferred
async def test_an_expired_token_is_refused_once_as_expired_and_then_gone(node: AuthNode) -> None:
    token = await _token(node)
    node.clock.advance(86400 - 1)
    status, _, _ = await node.whoami(f"Bearer {token}")
    assert status == 200
    node.clock.advance(1)
    status, body, response = await node.whoami(f"Bearer {token}")
    assert (status, body) == (401, {"error": "token_expired", "error_description": "Token expired"})
    assert _challenge(response) == 'Bearer realm="ovsd", error="token_expired"'
    assert await node.repository.find("bearertoken", "access_token", digest(token)) is None
    status, body, _ = await node.whoami(f"Bearer {token}")
    assert (status, body["error"]) == (401, "invalid_token")


@pytest_twisted.ensureDeferred
async def test_a_deactivated_user_cannot_use_its_tokens(node: AuthNode) -> None:
    token = await _token(node)
    admin = await node.repository.find("user", "username", "admin")
    assert admin is not None
    await node.repository.update("user", admin.guid, {"is_active": False})
    status, body, response = await node.whoami(f"Bearer {token}")
    assert (status, body["error"]) == (401, "inactive_user")
    assert _challenge(response) == 'Bearer realm="ovsd", error="inactive_user"'
    await node.repository.update("user", admin.guid, {"is_active": True})
    status, _, _ = await node.whoami(f"Bearer {token}")
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_revocation_by_password_change_client_and_user_deletion(node: AuthNode) -> None:
    repo = node.repository
    admin = await repo.find("user", "username", "admin")
    assert admin is not None
    gui = await _token(node)
    client, secret = await create_client(repo, admin.guid, "script")
    status, body, _ = await node.client_credentials(client.guid, secret)
    script = body["access_token"]
    await set_password(repo, admin.guid, "a-new-admin-password")
    for token in (gui, script):
        status, body, _ = await node.whoami(f"Bearer {token}")
        assert (status, body["error"]) == (401, "invalid_token")
    status, _, _ = await node.password(password="a-new-admin-password")
    assert status == 200

    status, body, _ = await node.client_credentials(client.guid, secret)
    script = body["access_token"]
    await delete_client(repo, client.guid)
    status, body, _ = await node.whoami(f"Bearer {script}")
    assert (status, body["error"]) == (401, "invalid_token")

    administrators = await repo.find("group", "name", "administrators")
    assert administrators is not None
    other = await create_user(repo, "olga", "olga-pw-123", administrators.guid)
    token = await _token(node, username="olga", password="olga-pw-123")
    await delete_user(repo, other.guid)
    status, body, _ = await node.whoami(f"Bearer {token}")
    assert (status, body["error"]) == (401, "invalid_token")
    assert await repo.find("user", "username", "olga") is None


@pytest_twisted.ensureDeferred
async def test_expired_tokens_of_a_client_are_cleared_when_it_gets_a_new_one(node: AuthNode) -> None:
    for _ in range(3):
        await _token(node)
    node.clock.advance(86401)
    await _token(node)
    assert len(await node.repository.guids("bearertoken")) == 1


@pytest_twisted.ensureDeferred
async def test_expired_tokens_nobody_presents_again_are_swept(node: AuthNode) -> None:
    from ovsd.auth.tokens import sweep_expired_tokens

    status, first, _ = await node.password()
    assert status == 200
    lifetime = first["expires_in"]
    node.clock.advance(lifetime / 2)
    status, second, _ = await node.password()
    assert status == 200
    assert len(await node.repository.guids("bearertoken")) == 2
    node.clock.advance(lifetime / 2 + 1)  # the first has expired, the second has not
    assert await sweep_expired_tokens(node.repository) == 1
    assert len(await node.repository.guids("bearertoken")) == 1
    status, _, _ = await node.whoami(f"Bearer {second['access_token']}")
    assert status == 200
    status, body, _ = await node.whoami(f"Bearer {first['access_token']}")
    assert (status, body["error"]) == (401, "invalid_token")  # swept: gone, not merely expired
