"""OAuth 2 clients through the API: the secret shown once and working, regeneration, who sees which
client, and roles narrowed to what the user's group holds."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from ovsd.auth.tokens import digest
from tests.views_support import ViewsNode, cheap_user, views_node

__all__ = ["views_node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_a_client_secret_is_shown_at_creation_only_and_works(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    admin = await node.user("admin")
    reply = await node.call("POST", "/api/clients/", token, body={"name": "backup", "ovs_type": "USER"})
    assert reply.status == 201
    created = reply.body
    client_id, secret = created["client_id"], created["client_secret"]
    assert client_id == created["guid"]
    assert (created["name"], created["ovs_type"], created["grant_type"], created["user_guid"]) == (
        "backup", "USER", "CLIENT_CREDENTIALS", admin.guid)
    assert len(secret) >= 43
    # the store keeps its digest only
    stored = await node.repository.get("client", client_id)
    assert stored.data["client_secret"] == digest(secret)
    # no read shows it again
    for path in (f"/api/clients/{client_id}/", f"/api/clients/{client_id}/?contents=client_secret,_dynamics",
                 "/api/clients/?contents=_dynamics,_relations"):
        seen = await node.call("GET", path, token)
        assert seen.status == 200
        assert secret not in seen.raw.decode() and b"client_secret" not in seen.raw
    fetched = await node.call("GET", f"/api/clients/{client_id}/", token)
    assert fetched.body["client_id"] == client_id
    assert fetched.body["roles_guids"] == created["roles_guids"]
    # the secret gets a token carrying every role of the user's group
    client_token = await node.client_token(client_id, secret)
    meta = await node.call("GET", "/api", client_token, version=None)
    assert (meta.body["username"], meta.body["roles"]) == ("admin", ["manage", "read", "write"])


@pytest_twisted.ensureDeferred
async def test_regenerating_the_secret_invalidates_the_old_one(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    created = (await node.call("POST", "/api/clients/", token, body={"name": "ci", "ovs_type": "USER"})).body
    client_id, old = created["client_id"], created["client_secret"]
    reply = await node.call("POST", f"/api/clients/{client_id}/regenerate_secret/", token)
    assert reply.status == 200
    assert set(reply.body) == {"client_id", "client_secret"} and reply.body["client_id"] == client_id
    new = reply.body["client_secret"]
    assert new != old
    refused = await node.client_token_reply(client_id, old)
    assert refused.body == {"error": "invalid_client", "error_description": "Invalid client_id or client_secret"}
    assert await node.client_token(client_id, new)
    # the password client has no secret to regenerate
    admin = await node.user("admin")
    [internal] = [c for c in await node.repository.get_many(
        "client", await node.repository.reverse_guids("user", admin.guid, "clients"))
        if c.data["ovs_type"] == "INTERNAL"]
    reply = await node.call("POST", f"/api/clients/{internal.guid}/regenerate_secret/", token)
    assert reply.body == {"error": "invalid_data",
                          "error_description": "Invalid data passed: only client-credentials clients have a secret"}


@pytest_twisted.ensureDeferred
async def test_without_manage_you_see_your_own_api_clients_and_the_internal_one_on_request(
        views_node: ViewsNode) -> None:
    node = views_node
    manager = await node.admin_token()
    admin = await node.user("admin")
    bob = await cheap_user(node.repository, "bob", (await node.group("administrators")).guid)
    bob_writer = await node.password_token("bob", "shared-password", scope="read write")
    mine = await node.call("POST", "/api/clients/", bob_writer, body={"name": "mine", "ovs_type": "USER"})
    assert mine.status == 201 and mine.body["user_guid"] == bob.guid
    admins = await node.call("POST", "/api/clients/", manager, body={"name": "admins", "ovs_type": "USER"})
    bob_clients = await node.repository.get_many("client", await node.repository.reverse_guids(
        "user", bob.guid, "clients"))
    [bob_internal] = [c.guid for c in bob_clients if c.data["ovs_type"] == "INTERNAL"]

    assert (await node.call("GET", "/api/clients/", bob_writer)).body == [mine.body["guid"]]
    assert (await node.call("GET", "/api/clients/?ovs_type=INTERNAL", bob_writer)).body == [bob_internal]
    assert (await node.call("GET", f"/api/clients/?userguid={admin.guid}", bob_writer)).body == []
    reply = await node.call("GET", f"/api/clients/{admins.body['guid']}/", bob_writer)
    assert reply.body == {"error": "forbidden",
                          "error_description": "Only the owner or a manager can access this client"}
    reply = await node.call("POST", f"/api/clients/{admins.body['guid']}/regenerate_secret/", bob_writer)
    assert reply.error == (403, "forbidden")
    reply = await node.call("DELETE", f"/api/clients/{admins.body['guid']}/", bob_writer)
    assert reply.error == (403, "forbidden")
    reply = await node.call("POST", "/api/clients/", bob_writer, body={
        "name": "theirs", "ovs_type": "USER", "user_guid": admin.guid})
    assert reply.body == {"error": "forbidden",
                          "error_description": "Only a manager can create clients for another user"}
    # a manager sees every client of every user, the internal ones included
    everything = (await node.call("GET", "/api/clients/", manager)).body
    assert set(everything) == set(await node.repository.guids("client"))
    assert bob_internal in everything and admins.body["guid"] in everything
    by_user = (await node.call("GET", f"/api/clients/?userguid={bob.guid}", manager)).body
    assert set(by_user) == {bob_internal, mine.body["guid"]}


async def granted(node: ViewsNode, token: str, client: dict[str, Any]) -> list[str]:
    """The codes of a client's roles, found as the seed era's GUI finds them: its role junctions
    intersected with each role's client junctions."""
    roles = (await node.call("GET", "/api/roles/?contents=_relations", token)).body
    return sorted(r["code"] for r in roles if set(r["clients_guids"]) & set(client["roles_guids"]))


@pytest_twisted.ensureDeferred
async def test_a_client_holds_only_roles_its_users_group_holds(views_node: ViewsNode) -> None:
    node = views_node
    manager = await node.admin_token()
    viewer = await cheap_user(node.repository, "vera", (await node.group("viewers")).guid)
    roles = {code: (await node.role(code)).guid for code in ("read", "write", "manage")}
    reply = await node.call("POST", "/api/clients/", manager, body={
        "name": "greedy", "ovs_type": "USER", "user_guid": viewer.guid, "role_guids": list(roles.values())})
    assert reply.status == 201
    assert await granted(node, manager, reply.body) == ["read"]
    token = await node.client_token(reply.body["client_id"], reply.body["client_secret"])
    assert (await node.call("GET", "/api", token, version=None)).body["roles"] == ["read"]
    refused = await node.client_token_reply(reply.body["client_id"], reply.body["client_secret"], scope="write")
    assert refused.error == (400, "invalid_scope")
    # an administrator's client asked for read only carries read only
    narrow = await node.call("POST", "/api/clients/", manager, body={
        "name": "reader", "ovs_type": "USER", "role_guids": [roles["read"]]})
    assert await granted(node, manager, narrow.body) == ["read"]
    token = await node.client_token(narrow.body["client_id"], narrow.body["client_secret"])
    assert (await node.call("PATCH", f"/api/users/{viewer.guid}/", token, body={})).error == (403, "invalid_roles")


@pytest_twisted.ensureDeferred
async def test_deleting_a_client_revokes_its_tokens(views_node: ViewsNode) -> None:
    node = views_node
    manager = await node.admin_token()
    created = (await node.call("POST", "/api/clients/", manager, body={"name": "tmp", "ovs_type": "USER"})).body
    token = await node.client_token(created["client_id"], created["client_secret"])
    assert (await node.call("GET", "/api/roles/", token)).status == 200
    reply = await node.call("DELETE", f"/api/clients/{created['guid']}/", manager)
    assert (reply.status, reply.raw) == (204, b"")
    assert (await node.call("GET", "/api/roles/", token)).error == (401, "invalid_token")
    assert (await node.call("GET", f"/api/clients/{created['guid']}/", manager)).error == (404, "object_not_found")
    assert await node.repository.reverse_guids("client", created["guid"], "tokens") == []


@pytest_twisted.ensureDeferred
async def test_only_user_clients_can_be_created(views_node: ViewsNode) -> None:
    node = views_node
    manager = await node.admin_token()
    for body in ({"name": "x", "ovs_type": "INTERNAL"}, {"name": "x"}, {"ovs_type": "USER"}):
        reply = await node.call("POST", "/api/clients/", manager, body=body)
        assert reply.error == (400, "invalid_data"), body
    assert len(await node.repository.guids("client")) == 2  # admin's password client and the tests' own
