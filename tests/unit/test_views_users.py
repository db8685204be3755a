"""Users through the API: creation, uniqueness, self-protection, passwords, deletion, who sees whom."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer

from ovsd.auth.passwords import verify_password
from ovsd.dal.repository import ObjectNotFound
from tests.views_support import ViewsNode, store_snapshot, views_node

__all__ = ["views_node"]  # fixtures

NOBODY = "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"


async def create_user(node: ViewsNode, token: str, username: str, password: str, group: str = "viewers") -> str:
    reply = await node.call("POST", "/api/users/", token, body={
        "username": username, "password": password, "group_guid": (await node.group(group)).guid, "is_active": True,
    })
    assert reply.status == 201, reply.body
    return str(reply.body["guid"])


@pytest_twisted.ensureDeferred
async def test_a_created_user_has_a_hashed_password_that_is_never_sent_and_can_log_in(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    viewers = await node.group("viewers")
    reply = await node.call("POST", "/api/users/", token, body={
        "username": "bob", "password": "bob-pw-1", "group_guid": viewers.guid, "is_active": True,
        "language": "nl-NL"})
    assert reply.status == 201
    assert reply.header("Content-Type") == "application/json; version=1"
    user = reply.body
    assert {k: user[k] for k in ("username", "is_active", "language", "group_guid")} == {
        "username": "bob", "is_active": True, "language": "nl-NL", "group_guid": viewers.guid}
    assert not [k for k in user if "password" in k]
    stored = await node.repository.get("user", user["guid"])
    assert stored.data["password"].startswith("$argon2id$")
    assert await verify_password(stored.data["password"], "bob-pw-1")
    # the user came with its GUI client, which the password grant uses
    [client] = await node.repository.get_many("client", user["clients_guids"])
    assert (client.data["ovs_type"], client.data["grant_type"]) == ("INTERNAL", "PASSWORD")
    bob = await node.password_token("bob", "bob-pw-1")
    meta = await node.call("GET", "/api", bob, version=None)
    assert (meta.body["username"], meta.body["roles"]) == ("bob", ["read"])
    fetched = await node.call("GET", f"/api/users/{user['guid']}/", token)
    assert fetched.status == 200 and fetched.body == user


@pytest_twisted.ensureDeferred
async def test_a_taken_username_is_a_conflict_and_creates_nothing(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    await create_user(node, token, "bob", "pw")
    before = await store_snapshot(node.store)
    reply = await node.call("POST", "/api/users/", token, body={
        "username": "bob", "password": "other", "group_guid": (await node.group("administrators")).guid})
    assert reply.status == 409
    assert reply.body == {"error": "conflict", "error_description": "A user with this username already exists"}
    assert await store_snapshot(node.store) == before


@pytest_twisted.ensureDeferred
async def test_nobody_changes_or_deletes_itself(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    admin = await node.user("admin")
    before = await store_snapshot(node.store)
    reply = await node.call("PATCH", f"/api/users/{admin.guid}/", token, body={"is_active": False})
    assert reply.status == 403
    assert reply.body == {"error": "forbidden", "error_description": "A user cannot change itself"}
    reply = await node.call("DELETE", f"/api/users/{admin.guid}/", token)
    assert reply.status == 403
    assert reply.body == {"error": "forbidden", "error_description": "A user cannot delete itself"}
    assert await store_snapshot(node.store) == before
    assert (await node.call("GET", "/api/users/", token)).body == [admin.guid]


@pytest_twisted.ensureDeferred
async def test_changing_your_own_password_needs_the_current_one_and_revokes_your_tokens(views_node: ViewsNode) -> None:
    node = views_node
    admin_token = await node.admin_token()
    dave = await create_user(node, admin_token, "dave", "dave-old", group="administrators")
    # dave changes his own password with a read+write token (no manage needed for yourself)
    token = await node.password_token("dave", "dave-old", scope="read write")
    other = await node.password_token("dave", "dave-old")
    path = f"/api/users/{dave}/set_password/"
    reply = await node.call("POST", path, token, body={"new_password": "dave-new"})
    assert reply.status == 406
    assert reply.body == {"error": "invalid_data",
                          "error_description": "Invalid data passed: current_password is missing"}
    reply = await node.call("POST", path, token, body={"new_password": "dave-new", "current_password": "wrong"})
    assert reply.status == 403
    assert reply.body == {"error": "forbidden", "error_description": "The current password is not correct"}
    # nothing changed so far: the old password still logs in, the tokens still work
    assert (await node.call("GET", f"/api/users/{dave}/", other)).status == 200
    reply = await node.call("POST", path, token, body={"new_password": "dave-new", "current_password": "dave-old"})
    assert reply.status == 202
    assert reply.body["guid"] == dave and not [k for k in reply.body if "password" in k]
    for old in (token, other):
        gone = await node.call("GET", f"/api/users/{dave}/", old)
        assert gone.error == (401, "invalid_token")
    refused = await node.token_reply({"grant_type": "password", "username": "dave", "password": "dave-old"})
    assert refused.error == (400, "invalid_client")
    assert await node.password_token("dave", "dave-new")


@pytest_twisted.ensureDeferred
async def test_a_manager_resets_another_password_without_the_current_one(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    bob = await create_user(node, token, "bob", "bob-old")
    bob_token = await node.password_token("bob", "bob-old")
    reply = await node.call("POST", f"/api/users/{bob}/set_password/", token, body={"new_password": "bob-new"})
    assert reply.status == 202, reply.body
    assert (await node.call("GET", "/api/users/", bob_token)).error == (401, "invalid_token")
    assert await node.password_token("bob", "bob-new")
    # without manage, another user's password is not yours to set
    writer = await node.admin_token("read+write")
    reply = await node.call("POST", f"/api/users/{bob}/set_password/", writer, body={"new_password": "x"})
    assert reply.body == {"error": "forbidden", "error_description": "Only a manager can set another user's password"}
    # a misspelt field is refused, not ignored
    reply = await node.call("POST", f"/api/users/{bob}/set_password/", token,
                            body={"new_password": "bob-3", "curent_password": "bob-new"})
    assert reply.body == {"error": "invalid_data", "error_description": "Invalid data passed: unknown field(s): "
                                                                         "curent_password"}
    assert await node.password_token("bob", "bob-new")


@pytest_twisted.ensureDeferred
async def test_deleting_a_user_removes_its_clients_and_tokens(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    bob = await create_user(node, token, "bob", "bob-pw")
    client = await node.call("POST", "/api/clients/", token, body={"name": "app", "ovs_type": "USER", "user_guid": bob})
    assert client.status == 201
    tokens = [await node.password_token("bob", "bob-pw"),
              await node.client_token(client.body["client_id"], client.body["client_secret"])]
    clients = await node.repository.reverse_guids("user", bob, "clients")
    assert len(clients) == 2
    reply = await node.call("DELETE", f"/api/users/{bob}/", token)
    assert (reply.status, reply.raw) == (204, b"")
    assert (await node.call("GET", f"/api/users/{bob}/", token)).error == (404, "object_not_found")
    for guid in clients:
        assert (await node.call("GET", f"/api/clients/{guid}/", token)).error == (404, "object_not_found")
    for old in tokens:
        assert (await node.call("GET", "/api/groups/", old)).error == (401, "invalid_token")
    # nothing in the store remembers bob: no object, no index entry, no token
    snapshot = await store_snapshot(node.store)
    assert not [k for k, v in snapshot.items() if bob in k or bob in str(v)]
    assert not [k for k, v in snapshot.items() if any(c in k or c in str(v) for c in clients)]
    refused = await node.token_reply({"grant_type": "password", "username": "bob", "password": "bob-pw"})
    assert refused.error == (400, "invalid_client")


@pytest_twisted.ensureDeferred
async def test_without_manage_a_user_lists_and_fetches_only_itself(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    bob = await create_user(node, token, "bob", "bob-pw")
    admin = await node.user("admin")
    bob_token = await node.password_token("bob", "bob-pw")
    assert (await node.call("GET", "/api/users/", bob_token)).body == [bob]
    envelope = await node.call("GET", "/api/users/?contents=", bob_token, version="2")
    assert [u["username"] for u in envelope.body["data"]] == ["bob"]
    assert envelope.body["_paging"]["total_items"] == 1
    assert (await node.call("GET", f"/api/users/{bob}/", bob_token)).status == 200
    reply = await node.call("GET", f"/api/users/{admin.guid}/", bob_token)
    assert reply.body == {"error": "forbidden", "error_description": "Only the owner or a manager can access this user"}
    # the same for admin without manage in its token
    reader = await node.admin_token("read")
    assert (await node.call("GET", "/api/users/", reader)).body == [admin.guid]
    assert (await node.call("GET", "/api/users/?sort=username", token)).body == [admin.guid, bob]


@pytest_twisted.ensureDeferred
async def test_a_manager_deactivates_a_user_who_then_can_neither_log_in_nor_use_a_token(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    bob = await create_user(node, token, "bob", "bob-pw")
    bob_token = await node.password_token("bob", "bob-pw")
    reply = await node.call("PATCH", f"/api/users/{bob}/", token, body={"is_active": False, "language": "nl-NL"})
    assert reply.status == 202
    assert (reply.body["is_active"], reply.body["language"]) == (False, "nl-NL")
    assert (await node.call("GET", "/api/users/", bob_token)).error == (401, "inactive_user")
    refused = await node.token_reply({"grant_type": "password", "username": "bob", "password": "bob-pw"})
    assert refused.error == (400, "inactive_user")
    for body, field in (({"password": "x"}, "password"), ({"guid": bob}, "guid")):
        reply = await node.call("PATCH", f"/api/users/{bob}/", token, body=body)
        assert reply.body == {"error": "invalid_data", "error_description": f"Invalid data passed: unknown field(s): "
                                                                             f"{field}"}


@pytest_twisted.ensureDeferred
async def test_twenty_creations_of_one_username_at_once_make_one_user(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    viewers = await node.group("viewers")
    replies = await defer.gatherResults([
        defer.ensureDeferred(node.call("POST", "/api/users/", token, body={
            "username": "racer", "password": f"pw-{n}", "group_guid": viewers.guid}))
        for n in range(20)
    ])
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] + [409] * 19, [r.body for r in replies]
    [winner] = [r.body for r in replies if r.status == 201]
    users = [u for u in await node.repository.load_all("user") if u.data["username"] == "racer"]
    assert [u.guid for u in users] == [winner["guid"]]
    # exactly one client was made, for the winner: the losers left nothing behind
    admin = await node.user("admin")
    clients = await node.repository.load_all("client")
    assert [c.data["user_guid"] for c in clients if c.data["user_guid"] != admin.guid] == [winner["guid"]]
    assert await node.password_token("racer", next(f"pw-{n}" for n, r in enumerate(replies) if r.status == 201))


@pytest_twisted.ensureDeferred
async def test_an_unknown_group_or_user_is_named_in_the_answer(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    reply = await node.call("POST", "/api/users/", token, body={"username": "x", "password": "y", "group_guid": NOBODY})
    assert reply.body == {"error": "invalid_data",
                          "error_description": f"Invalid data passed: group {NOBODY} does not exist"}
    assert await node.repository.find("user", "username", "x") is None
    reply = await node.call("PATCH", f"/api/users/{NOBODY}/", token, body={"language": "nl-NL"})
    assert reply.body == {"error": "object_not_found", "error_description": "The requested user could not be found"}
    with pytest.raises(ObjectNotFound):
        await node.repository.get("user", NOBODY)


@pytest_twisted.ensureDeferred
async def test_moving_a_user_to_another_group_changes_what_it_may_do(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    bob = await create_user(node, token, "bob", "bob-pw", group="administrators")
    client = (await node.call("POST", "/api/clients/", token, body={"name": "app", "ovs_type": "USER",
                                                                     "user_guid": bob})).body
    old = await node.password_token("bob", "bob-pw")
    viewers = await node.group("viewers")
    reply = await node.call("PATCH", f"/api/users/{bob}/", token, body={"group_guid": viewers.guid})
    assert reply.status == 202 and reply.body["group_guid"] == viewers.guid
    # the tokens issued with manage are gone; new ones carry the new group's roles only
    assert (await node.call("GET", "/api", old, version=None)).body["authentication_state"] == "invalid token"
    for fresh in (await node.password_token("bob", "bob-pw"),
                  await node.client_token(client["client_id"], client["client_secret"])):
        assert (await node.call("GET", "/api", fresh, version=None)).body["roles"] == ["read"]
        assert (await node.call("DELETE", f"/api/users/{bob}/", fresh)).error == (403, "invalid_roles")
    # and back: the password client follows the group again
    administrators = await node.group("administrators")
    reply = await node.call("PATCH", f"/api/users/{bob}/", token, body={"group_guid": administrators.guid})
    assert reply.status == 202
    promoted = await node.password_token("bob", "bob-pw")
    assert (await node.call("GET", "/api", promoted, version=None)).body["roles"] == ["manage", "read", "write"]
