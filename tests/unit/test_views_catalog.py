"""The read-only catalogues: branding (served without a token), groups and roles."""

from __future__ import annotations

import pytest_twisted

from tests.views_support import ViewsNode, views_node

__all__ = ["views_node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_the_branding_needs_no_token_but_a_bad_token_still_fails(views_node: ViewsNode) -> None:
    node = views_node
    listed = await node.call("GET", "/api/branding/")
    assert listed.status == 200
    [guid] = listed.body
    fetched = await node.call("GET", f"/api/branding/{guid}")
    assert fetched.status == 200
    assert {k: fetched.body[k] for k in ("name", "productname", "css", "is_default")} == {
        "name": "Default", "productname": "Open vStorage", "css": "bootstrap-default.min.css", "is_default": True}
    v2 = await node.call("GET", "/api/branding/?contents=", version="2")
    assert v2.header("Content-Type") == "application/json; version=2"
    assert [b["productname"] for b in v2.body["data"]] == ["Open vStorage"]
    star = await node.call("GET", "/api/branding/?contents=", version="*")
    assert star.header("Content-Type") == "application/json; version=1"
    assert [b["productname"] for b in star.body] == ["Open vStorage"]
    bad = (("Bearer not-a-token", "invalid_token"), ("Basic dXNlcjpwdw==", "invalid_authorization_type"))
    for authorization, code in bad:
        for path in ("/api/branding/", f"/api/branding/{guid}/"):
            reply = await node.call("GET", path, authorization=authorization)
            assert reply.error == (401, code), path
            assert reply.header("WWW-Authenticate") == f'Bearer realm="ovsd", error="{code}"'
    # a good token is welcome too
    assert (await node.call("GET", "/api/branding/", await node.admin_token("none"))).body == [guid]


@pytest_twisted.ensureDeferred
async def test_groups_and_roles_are_listed_with_what_they_grant(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token("read")
    roles = (await node.call("GET", "/api/roles/?contents=&sort=code", token)).body
    assert [(r["code"], r["name"], r["description"]) for r in roles] == [
        ("manage", "Manage", "Can manage the system"), ("read", "Read", "Can read objects"),
        ("write", "Write", "Can write objects")]
    by_guid = {r["guid"]: r["code"] for r in roles}
    groups = (await node.call("GET", "/api/groups/?contents=_relations&sort=name", token)).body
    assert [g["name"] for g in groups] == ["administrators", "viewers"]
    # role grants are junctions: a group's roles_guids meet each granted role's groups_guids (as the GUI finds them)
    roles_related = (await node.call("GET", "/api/roles/?contents=_relations", token)).body
    assert [sorted(r["code"] for r in roles_related if set(r["groups_guids"]) & set(g["roles_guids"]))
            for g in groups] == [["manage", "read", "write"], ["read"]]
    assert not set(by_guid) & {j for g in groups for j in g["roles_guids"]}  # junction guids, not role guids
    admin = await node.user("admin")
    assert groups[0]["users_guids"] == [admin.guid] and groups[1]["users_guids"] == []
    for kind, items in (("roles", roles), ("groups", groups)):
        for item in items:
            fetched = await node.call("GET", f"/api/{kind}/{item['guid']}/", token)
            assert fetched.status == 200 and fetched.body["guid"] == item["guid"]
    v2 = (await node.call("GET", "/api/groups/", token, version="2")).body
    assert sorted(v2["data"]) == sorted(g["guid"] for g in groups)
    assert v2["_paging"]["total_items"] == 2


@pytest_twisted.ensureDeferred
async def test_the_catalogues_cannot_be_changed_through_the_api(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    role = await node.role("read")
    group = await node.group("viewers")
    branding = (await node.call("GET", "/api/branding/")).body[0]
    for method, path in (("POST", "/api/roles/"), ("PATCH", f"/api/roles/{role.guid}/"),
                         ("DELETE", f"/api/groups/{group.guid}/"), ("POST", "/api/groups/"),
                         ("DELETE", f"/api/branding/{branding}/")):
        reply = await node.call(method, path, token, body={"name": "x"})
        assert reply.error == (405, "method_not_allowed"), (method, path)
        assert "GET" in (reply.header("Allow") or "")
    assert (await node.role("read")).data["name"] == "Read"
    assert (await node.call("GET", "/api/roles/6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5/", token)).body == {
        "error": "object_not_found", "error_description": "The requested role could not be found"}
