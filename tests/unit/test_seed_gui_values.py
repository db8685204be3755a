"""What the seed era's web GUI reads without checks: plain lists for ``version=*`` and no nulls where it
walks a value (contract §2, §6 "Never null")."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest_twisted

from ovsd.dal.registry import PUBLIC_KINDS, TYPES
from tests.views_support import ViewsNode, populate, views_node

__all__ = ["views_node"]  # fixtures

PATHS = {kind: "branding" if kind == "branding" else f"{kind}s" for kind in PUBLIC_KINDS}


def list_fields(kind: str) -> set[str]:
    """Every list-valued field a kind declares: many-relations, reverse relations, list dynamics."""
    t = TYPES[kind]
    names = {r.key for r in t.relations if r.many} | {rr.key for rr in t.reverse}
    return names | {d.name for d in t.dynamics if d.kind is list}


@pytest_twisted.ensureDeferred
async def test_version_star_lists_are_plain_arrays_and_version_2_the_envelope(views_node: ViewsNode) -> None:
    node = views_node
    await populate(node.repository)
    token = await node.admin_token()
    for path in PATHS.values():
        star = await node.call("GET", f"/api/{path}/?contents=", token, version="*")
        assert star.status == 200, (path, star.body)
        assert star.header("Content-Type") == "application/json; version=1", path
        assert isinstance(star.body, list) and star.body, path
        assert all(isinstance(item, dict) and "guid" in item for item in star.body), path
        guids = await node.call("GET", f"/api/{path}/", token, version="*")
        assert isinstance(guids.body, list) and all(isinstance(g, str) for g in guids.body), path
        two = await node.call("GET", f"/api/{path}/", token, version="2")
        assert two.header("Content-Type") == "application/json; version=2", path
        assert set(two.body) >= {"data", "_paging"} and sorted(two.body["data"]) == sorted(guids.body), path


@pytest_twisted.ensureDeferred
async def test_no_list_valued_field_of_any_resource_is_null(views_node: ViewsNode) -> None:
    node = views_node
    repo = node.repository
    await populate(repo)
    # a second cluster with nothing in it: a vPool without vDisks, a vMachine without disks, a lone router
    lone = await populate(repo, "2")
    await repo.delete("vdisk", lone.vdisk)
    token = await node.admin_token()
    seen: dict[str, int] = {}
    for kind, path in PATHS.items():
        wanted = list_fields(kind)
        listed = await node.call("GET", f"/api/{path}/?contents=_dynamics,_relations", token, version="*")
        assert listed.status == 200, (path, listed.body)
        fetched = [(await node.call("GET", f"/api/{path}/{item['guid']}/", token)).body for item in listed.body]
        for item in [*listed.body, *fetched]:
            for name in wanted:
                assert isinstance(item.get(name), list), f"{path} {item['guid']} {name} = {item.get(name)!r}"
            check_gui_values(path, item)
        seen[kind] = len(listed.body)
    assert all(seen[k] >= 1 for k in ("storagerouter", "vpool", "vmachine", "vdisk", "client", "group", "role"))


def check_gui_values(path: str, item: dict[str, Any]) -> None:
    """The values the GUI formats or lower-cases: present and of their type, never null."""
    where = f"{path} {item['guid']}"
    if "failover_mode" in item:
        assert isinstance(item["failover_mode"], str) and item["failover_mode"], where
    if "hypervisor_status" in item:
        assert isinstance(item["hypervisor_status"], str), where
    if "stored_data" in item:
        assert item["stored_data"] == 0, where  # nothing is measured before the data plane exists
    if "statistics" in item:
        stats = item["statistics"]
        assert isinstance(stats, dict), where
        for counter in ("data_read", "data_written", "read_operations", "write_operations", "operations",
                        "data_transferred", "cache_hits", "sco_cache_hits", "cluster_cache_hits",
                        "sco_cache_misses", "backend_data_read", "backend_data_written"):
            assert stats[counter] == 0 and stats[f"{counter}_ps"] == 0, (where, counter)
        assert isinstance(stats["timestamp"], float), where
    if path == "vdisks":
        assert item["info"]["failover_mode"] == "UNKNOWN" and item["info"]["stored"] == 0, where


@pytest_twisted.ensureDeferred
async def test_the_gui_s_vmachine_queries_work_with_version_star(views_node: ViewsNode) -> None:
    """The vMachines page leaves templates out with a query, the vTemplates page keeps only them; the seed
    era's API read that query in version 1, and its GUI sends it with ``version=*``."""
    node = views_node
    cluster = await populate(node.repository)
    template = await populate(node.repository, "2")
    await node.repository.update("vmachine", template.vmachine, {"is_vtemplate": True})
    token = await node.admin_token("read")
    pages = {
        "vmachines": ({"type": "AND", "items": [["is_vtemplate", "EQUALS", False],
                                                ["status", "NOT_EQUALS", "CREATED"]]}, [cluster.vmachine]),
        "vtemplates": ({"type": "AND", "items": [["is_vtemplate", "EQUALS", True]]}, [template.vmachine]),
    }
    for page, (query, expected) in pages.items():
        options = urlencode({"query": json.dumps(query), "sort": "name", "contents": "_relations"})
        reply = await node.call("GET", f"/api/vmachines/?{options}", token, version="*")
        assert reply.status == 200, (page, reply.body)
        assert [vm["guid"] for vm in reply.body] == expected, page


@pytest_twisted.ensureDeferred
async def test_a_vpool_lists_the_storagerouters_serving_it(views_node: ViewsNode) -> None:
    node = views_node
    repo = node.repository
    one = await populate(repo)
    two = await populate(repo, "2")
    # the second router serves the first vPool too
    await repo.create("storagedriver", {"name": "sd-x", "storagedriver_id": "vpool1-sr2", "vpool_guid": one.vpool,
                                        "storagerouter_guid": two.storagerouter})
    token = await node.admin_token("read")
    reply = await node.call("GET", f"/api/vpools/{one.vpool}/storagerouters/", token, version="*")
    assert reply.body == [one.storagerouter, two.storagerouter]  # by name, the default sort
    reply = await node.call("GET", f"/api/vpools/{two.vpool}/storagerouters/?contents=", token, version="*")
    assert [r["name"] for r in reply.body] == ["sr2"]
    reply = await node.call("GET", f"/api/vpools/{one.vpool}/storagerouters/?contents=&sort=-name", token, version="2")
    assert [r["name"] for r in reply.body["data"]] == ["sr2", "sr1"]
    missing = await node.call("GET", "/api/vpools/6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5/storagerouters/", token)
    assert missing.error == (404, "object_not_found")
    assert (await node.call("GET", f"/api/vpools/{one.vpool}/storagerouters/")).status == 401
