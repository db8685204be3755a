"""Role grants as junction objects (contract §6), and the migration that turns the previous release's role
lists into them at start (schema 0 -> 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ovsd.auth.accounts import follow_group
from ovsd.auth.tokens import find_token
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.grants import grant, grant_guid
from ovsd.dal.migrations import SCHEMA_VERSION, SchemaTooNew, schema_version
from ovsd.dal.repository import Repository
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.views_support import ViewsNode, cheap_user, store_snapshot, views_node

__all__ = ["views_node"]  # fixtures

#: a store as the release before junctions wrote it (written by that release's own code)
PREVIOUS = json.loads((Path(__file__).parent.parent / "fixtures" / "store_schema_0.json").read_text())


async def roles_as_the_gui_finds_them(node: ViewsNode, token: str) -> dict[str, list[str]]:
    """guid -> role codes of every client and group, by intersecting their ``roles_guids`` with each role's
    ``clients_guids`` / ``groups_guids``, as the seed era's GUI does; every junction is on both sides."""
    roles = (await node.call("GET", "/api/roles/?contents=_relations", token)).body
    found: dict[str, list[str]] = {}
    for path, side in (("clients", "clients_guids"), ("groups", "groups_guids")):
        holders = (await node.call("GET", f"/api/{path}/?contents=_relations", token)).body
        assert holders, path
        listed_by_roles = {j for r in roles for j in r[side]}
        listed_by_holders = [j for h in holders for j in h["roles_guids"]]
        assert len(listed_by_holders) == len(set(listed_by_holders)), "a junction belongs to one holder"
        assert set(listed_by_holders) == listed_by_roles, f"{path}: the same junction guids on both sides"
        for holder in holders:
            found[holder["guid"]] = sorted(r["code"] for r in roles if set(r[side]) & set(holder["roles_guids"]))
    role_guids = {r["guid"] for r in roles}
    assert not role_guids & set().union(*[set(r["clients_guids"]) | set(r["groups_guids"]) for r in roles])
    return found


@pytest_twisted.ensureDeferred
async def test_each_grant_is_one_junction_guid_listed_on_both_sides(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    found = await roles_as_the_gui_finds_them(node, token)
    assert found[(await node.group("administrators")).guid] == ["manage", "read", "write"]
    assert found[(await node.group("viewers")).guid] == ["read"]
    admin = await node.user("admin")
    codes = sorted(tuple(found[c]) for c in await node.repository.reverse_guids("user", admin.guid, "clients"))
    assert codes == [("manage", "read", "write")] * 2  # its password client and the tests' client


@pytest_twisted.ensureDeferred
async def test_a_new_client_and_a_demoted_user_keep_both_sides_in_step(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    admins, viewers = await node.group("administrators"), await node.group("viewers")
    carol = await cheap_user(node.repository, "carol", admins.guid)
    roles = {code: (await node.role(code)).guid for code in ("read", "write", "manage")}
    made = await node.call("POST", "/api/clients/", token, body={
        "name": "deploy", "ovs_type": "USER", "user_guid": carol.guid, "role_guids": [roles["read"], roles["write"]]})
    assert made.status == 201, made.body
    [internal] = [c for c in await node.repository.reverse_guids("user", carol.guid, "clients")
                  if c != made.body["guid"]]
    found = await roles_as_the_gui_finds_them(node, token)
    assert (found[made.body["guid"]], found[internal]) == (["read", "write"], ["manage", "read", "write"])
    client_token = await node.client_token(made.body["client_id"], made.body["client_secret"])

    demoted = await node.call("PATCH", f"/api/users/{carol.guid}/", token, body={"group_guid": viewers.guid})
    assert demoted.status == 202, demoted.body
    found = await roles_as_the_gui_finds_them(node, token)
    assert (found[made.body["guid"]], found[internal]) == (["read"], ["read"])
    # the write grant is gone from both sides, and so is the token that carried it
    write = (await node.call("GET", f"/api/roles/{roles['write']}/?contents=_relations", token)).body
    assert not set(write["clients_guids"]) & set(made.body["roles_guids"])
    assert (await node.call("GET", "/api", client_token, version=None)).body["authenticated"] is False
    # following the same group again changes nothing
    before = await store_snapshot(node.store)
    await follow_group(node.repository, carol.guid)
    assert await store_snapshot(node.store) == before
    # a deleted client takes its grants along
    assert (await node.call("DELETE", f"/api/clients/{made.body['guid']}/", token)).status == 204
    await roles_as_the_gui_finds_them(node, token)
    held = [await node.repository.reverse_guids("client", c, "roles") for c in await node.repository.guids("client")]
    assert sorted(await node.repository.guids("roleclient")) == sorted(j for js in held for j in js)


# --- the migration -----------------------------------------------------------------------------------------
async def load_previous_release(store: Store) -> None:
    await store.execute("FLUSHALL")
    commands: list[tuple[Any, ...]] = []
    for key, (kind, value) in PREVIOUS["keys"].items():
        commands.append(("SET", key, value) if kind == "string" else ("SADD", key, *value))
    await store.pipeline(commands)


def previous_role_guids() -> dict[str, str]:
    """code -> guid of the previous release's roles."""
    return {json.loads(value)["code"]: key.rsplit(":", 1)[1]
            for key, (_, value) in PREVIOUS["keys"].items() if key.startswith("ovs:obj:role:")}


def previous_roles() -> dict[str, list[str]]:
    """guid -> role codes of every client and group, as the previous release stored them."""
    codes = {guid: code for code, guid in previous_role_guids().items()}
    return {key.rsplit(":", 1)[1]: sorted(codes[g] for g in json.loads(value)["roles_guids"])
            for key, (_, value) in PREVIOUS["keys"].items() if key.startswith(("ovs:obj:client:", "ovs:obj:group:"))}


async def migrated_start(node: ViewsNode) -> None:
    """What a start does: migrations, then bootstrap (which finds the model complete)."""
    await bootstrap(node.repository, node.api.context.config)


@pytest_twisted.ensureDeferred
async def test_a_previous_release_store_is_migrated_at_start_with_nothing_lost(views_node: ViewsNode) -> None:
    node = views_node
    await load_previous_release(node.store)
    expected = previous_roles()
    assert len(expected) == 6 and await schema_version(node.repository) == 0
    await migrated_start(node)
    assert await schema_version(node.repository) == SCHEMA_VERSION
    # every token still authenticates, with exactly its roles
    for token, codes in PREVIOUS["tokens"].items():
        meta = (await node.call("GET", "/api", token, version=None)).body
        assert (meta["authenticated"], meta["roles"]) == (True, codes)
    admin_token = next(t for t, codes in PREVIOUS["tokens"].items() if codes == ["manage", "read", "write"])
    # every client and group keeps exactly its roles, as the GUI finds them
    assert await roles_as_the_gui_finds_them(node, admin_token) == expected
    # and the clients' secrets and the users' passwords still give tokens with those roles
    for client_id, secret in PREVIOUS["client_secrets"].items():
        token = await node.client_token(client_id, secret)
        assert (await node.call("GET", "/api", token, version=None)).body["roles"] == expected[client_id]
    token = await node.password_token("bob", PREVIOUS["passwords"]["bob"])
    assert (await node.call("GET", "/api", token, version=None)).body["roles"] == ["read"]
    # nothing of the old layout is left: no role lists on the documents, no indexes of them
    for kind in ("client", "group"):
        for guid in await node.repository.guids(kind):
            assert "roles_guids" not in json.loads(await node.store.execute("GET", keys.obj(kind, guid)))
        assert await node.store.execute("KEYS", keys.reverse(kind, "roles", "*")) == []
    # a second start changes nothing
    before = await store_snapshot(node.store)
    await migrated_start(node)
    assert await store_snapshot(node.store) == before


@pytest_twisted.ensureDeferred
async def test_nodes_starting_together_migrate_once_even_after_a_crash_half_way(views_node: ViewsNode) -> None:
    node = views_node
    await load_previous_release(node.store)
    expected = previous_roles()
    # a node that died half-way: one client's grants made, its list not yet taken off
    half = next(g for g, codes in expected.items() if len(codes) == 2)
    await grant(node.repository, "client", half, previous_role_guids()[expected[half][0]])
    config = node.api.context.config
    others = [Repository(node.store, reactor=node.repository.reactor) for _ in range(3)]
    await defer.gatherResults([defer.ensureDeferred(bootstrap(r, config)) for r in others])
    assert await schema_version(node.repository) == SCHEMA_VERSION
    assert await node.store.execute("EXISTS", keys.SCHEMA_LOCK) == 0
    token = next(t for t, codes in PREVIOUS["tokens"].items() if codes == ["manage", "read", "write"])
    assert await roles_as_the_gui_finds_them(node, token) == expected
    junctions = len(await node.repository.guids("roleclient")) + len(await node.repository.guids("rolegroup"))
    assert junctions == sum(len(codes) for codes in expected.values())


@pytest_twisted.ensureDeferred
async def test_a_store_written_by_a_newer_ovsd_is_refused_and_left_alone(views_node: ViewsNode) -> None:
    node = views_node
    await node.store.execute("SET", keys.SCHEMA_VERSION, SCHEMA_VERSION + 1)
    before = await store_snapshot(node.store)
    with pytest.raises(SchemaTooNew) as refused:
        await migrated_start(node)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value) and "newer ovsd" in str(refused.value)
    assert await store_snapshot(node.store) == before


@pytest_twisted.ensureDeferred
async def test_a_role_lists_its_tokens_as_role_bearer_token_junctions(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token("read")  # a token carrying exactly the read role
    found = await find_token(node.repository, token)
    assert found is not None
    roles = (await node.call("GET", "/api/roles/?contents=code,tokens_guids", token)).body
    listed = {r["code"]: r["tokens_guids"] for r in roles}
    read_guid = (await node.role("read")).guid
    junction = grant_guid("bearertoken", found.guid, read_guid)
    assert junction in listed["read"]
    assert found.guid not in listed["read"]  # the junction, not the token itself (contract §6)
    assert all(junction not in listed[code] for code in ("write", "manage"))
    single = (await node.call("GET", f"/api/roles/{read_guid}/?contents=tokens_guids", token)).body
    assert junction in single["tokens_guids"]
