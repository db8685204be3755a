"""A client that hangs up never cuts a write short: the write runs to its end and leaves the store consistent,
while a read or a long-poll of a client that went away stops at once (issue 11, "writes finish")."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.web.client import ResponseNeverReceived
from twisted.web.http_headers import Headers

from ovsd.api.declare import Endpoint
from ovsd.auth.accounts import create_client
from ovsd.auth.tokens import find_token
from tests.views_support import ViewsNode, views_node  # noqa: F401 - fixture
from tests.work_support import until

PASSWORD = "Bob-password-1"


async def hang_up_during(node: ViewsNode, method: str, path: str, token: str, body: bytes | None = None) -> None:
    """Send the call and hang up as soon as the node holds it (its handler is running)."""
    site = node.api.service.site
    headers = {"Accept": ["application/json; version=1"], "Authorization": [f"Bearer {token}"]}
    if body is not None:
        headers["Content-Type"] = ["application/json"]
    request = node.api.client.request(method, node.api.url(path), headers=Headers(headers), data=body)
    await until(lambda: site.in_flight > 0, timeout=5, interval=0.001)
    request.cancel()  # closes the connection while the handler runs
    try:
        await request
    except (ResponseNeverReceived, defer.CancelledError):
        pass
    await until(lambda: site.in_flight == 0, timeout=10)


async def bob(node: ViewsNode, group: str = "administrators") -> tuple[str, str, str]:
    """User bob in ``group``, with a password token and a client: (guid, password token, client guid)."""
    admin = await node.admin_token()
    reply = await node.call("POST", "/api/users/", admin, body={
        "username": "bob", "password": PASSWORD, "is_active": True, "group_guid": (await node.group(group)).guid,
    })
    assert reply.status == 201, reply.body
    token = await node.password_token("bob", PASSWORD)
    client, _ = await create_client(node.repository, reply.body["guid"], "bob's app")
    return reply.body["guid"], token, client.guid


async def token_is_valid(node: ViewsNode, token: str) -> bool:
    reply = await node.call("GET", "/api/", token)
    return bool(reply.body["authenticated"])


@pytest_twisted.ensureDeferred
async def test_a_write_whose_client_hung_up_before_its_body_was_read_still_runs(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    node = views_node
    guid, token, _ = await bob(node)
    admin = await node.admin_token()
    site = node.api.service.site
    authenticator = node.api.context.authenticator
    check, gate = authenticator.authenticate, defer.Deferred[None]()

    async def held(request: Any) -> Any:  # the body is read once the caller is known: hold that moment
        await gate
        return await check(request)

    monkeypatch.setattr(authenticator, "authenticate", held)
    headers = {"Accept": ["application/json; version=1"], "Authorization": [f"Bearer {admin}"],
               "Content-Type": ["application/json"]}
    request = node.api.client.request("POST", node.api.url(f"/api/users/{guid}/set_password/"),
                                      headers=Headers(headers), data=b'{"new_password": "New-pw-22"}')
    await until(lambda: site.in_flight > 0, timeout=5, interval=0.001)
    connections = len(site.protocols)
    request.cancel()  # the client goes while its call waits for the token check, its body not read yet
    try:
        await request
    except (ResponseNeverReceived, defer.CancelledError):
        pass
    await until(lambda: len(site.protocols) < connections, timeout=5, interval=0.001)
    monkeypatch.setattr(authenticator, "authenticate", check)
    gate.callback(None)
    await until(lambda: site.in_flight == 0, timeout=10)
    assert not await token_is_valid(node, token), "the write did not run: the old token still works"
    await node.password_token("bob", "New-pw-22")


@pytest_twisted.ensureDeferred
async def test_a_password_change_whose_client_hung_up_still_revokes_the_old_tokens(
    views_node: ViewsNode,  # noqa: F811
) -> None:
    node = views_node
    guid, token, _ = await bob(node)
    admin = await node.admin_token()
    await hang_up_during(node, "POST", f"/api/users/{guid}/set_password/", admin, b'{"new_password": "New-pw-22"}')
    assert not await token_is_valid(node, token), "the password changed but the old token still works"
    await node.password_token("bob", "New-pw-22")
    refused = await node.token_reply({"grant_type": "password", "username": "bob", "password": PASSWORD})
    assert refused.status == 400


@pytest_twisted.ensureDeferred
async def test_a_group_change_whose_client_hung_up_still_trims_roles_and_revokes_tokens(
    views_node: ViewsNode,  # noqa: F811
) -> None:
    node = views_node
    guid, token, client = await bob(node)
    viewers = (await node.group("viewers")).guid
    admin = await node.admin_token()
    await hang_up_during(node, "PATCH", f"/api/users/{guid}/", admin, f'{{"group_guid": "{viewers}"}}'.encode())
    user = await node.user("bob")
    assert user["group_guid"] == viewers
    assert not await token_is_valid(node, token)
    reply = await node.call("GET", f"/api/clients/{client}/?contents=_relations", admin)
    roles = await node.call("GET", "/api/roles/?contents=code,clients_guids", admin)
    granted = {r["code"] for r in roles.body if set(r["clients_guids"]) & set(reply.body["roles_guids"])}
    assert granted <= {"read"}, granted


@pytest_twisted.ensureDeferred
async def test_a_create_whose_client_hung_up_is_stored_with_its_indexes(
    views_node: ViewsNode,  # noqa: F811
) -> None:
    node = views_node
    admin = await node.admin_token()
    viewers = (await node.group("viewers")).guid
    body = f'{{"username": "carol", "password": "{PASSWORD}", "group_guid": "{viewers}"}}'.encode()
    await hang_up_during(node, "POST", "/api/users/", admin, body)
    carol = await node.user("carol")  # found through the unique index
    listed = await node.call("GET", "/api/users/", admin)
    assert carol.guid in listed.body
    await node.password_token("carol", PASSWORD)


@pytest_twisted.ensureDeferred
async def test_a_delete_whose_client_hung_up_removes_the_user_with_its_clients_and_tokens(
    views_node: ViewsNode,  # noqa: F811
) -> None:
    node = views_node
    guid, token, client = await bob(node)
    admin = await node.admin_token()
    await hang_up_during(node, "DELETE", f"/api/users/{guid}/", admin)
    assert await node.repository.find("user", "username", "bob") is None
    assert (await node.call("GET", f"/api/clients/{client}/", admin)).status == 404
    assert not await token_is_valid(node, token)
    assert await find_token(node.repository, token) is None


def test_only_reads_may_be_cancelled_by_a_hang_up() -> None:
    async def handler(call: Any) -> None:
        return None

    declared = {"kind": "action", "name": "x", "roles": (), "handler": handler, "path": "/api/x/"}
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        assert not Endpoint(method=method, **declared).cancellable  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="hang-up"):
            Endpoint(method=method, cancellable=True, **declared)  # type: ignore[arg-type]
    assert Endpoint(method="GET", **{**declared, "kind": "link"}).cancellable  # type: ignore[arg-type]

