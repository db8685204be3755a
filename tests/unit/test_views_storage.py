"""StorageRouters, StorageDrivers, vPools, vDisks and vMachines: list filters, PATCH of what is writable
(and only that), and concurrent PATCHes that all survive."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer

from ovsd.dal.registry import TYPES
from tests.views_support import ViewsNode, populate, store_snapshot, views_node

__all__ = ["views_node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_vdisks_are_filtered_by_vpool_and_by_vmachine(views_node: ViewsNode) -> None:
    node = views_node
    one = await populate(node.repository, "1")
    two = await populate(node.repository, "2")
    create = node.repository.create
    loose = await create("vdisk", {"name": "loose", "size": 1, "vpool_guid": one.vpool})
    spare = await create("vdisk", {"name": "spare", "size": 1, "vpool_guid": two.vpool, "vmachine_guid": one.vmachine})
    token = await node.admin_token("read")

    async def names(query: str, version: str = "1") -> Any:
        reply = await node.call("GET", f"/api/vdisks/?contents=&{query}", token, version=version)
        assert reply.status == 200, reply.body
        items = reply.body["data"] if version == "2" else reply.body
        return sorted(d["name"] for d in items)

    assert await names("") == ["loose", "spare", "vd1", "vd2"]
    assert await names(f"vpoolguid={one.vpool}") == ["loose", "vd1"]
    assert await names(f"vpoolguid={two.vpool}") == ["spare", "vd2"]
    assert await names(f"vmachineguid={one.vmachine}") == ["spare", "vd1"]
    assert await names(f"vmachineguid={one.vmachine}&vpoolguid={two.vpool}", "2") == ["spare"]
    assert await names("vpoolguid=6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5") == []
    guids = (await node.call("GET", f"/api/vdisks/?vpoolguid={one.vpool}", token)).body
    assert sorted(guids) == sorted([loose.guid, one.vdisk])
    reply = await node.call("GET", "/api/vdisks/?vpoolguid=not-a-guid", token)
    assert reply.body == {"error": "invalid_data", "error_description": "Invalid data passed: vpoolguid must be a GUID"}
    vmachines = (await node.call("GET", f"/api/vmachines/?vpoolguid={two.vpool}", token)).body
    assert vmachines == [two.vmachine]
    assert spare.guid in (await node.call("GET", f"/api/vmachines/{one.vmachine}/", token)).body["vdisks_guids"]


WRITABLE: dict[str, dict[str, Any]] = {
    "storagerouters": {"name": "sr-renamed", "description": "in rack 7"},
    "storagedrivers": {"description": "fast", "port": 26300, "storage_ip": "10.0.2.1", "mountpoint_md": "/mnt/md"},
    "vpools": {"name": "pool-renamed", "description": "gold", "size": 1 << 40, "metadata": {"tier": 1}},
    "vdisks": {"name": "vd-renamed", "description": "db", "size": 2 << 30, "order": 2, "cinder_id": "c-1",
               "devicename": "db.raw"},
    "vmachines": {"name": "vm-renamed", "description": "db server", "status": "NOK", "is_vtemplate": True},
}
READ_ONLY: dict[str, dict[str, Any]] = {
    "storagerouters": {"machine_id": "other", "ip": "10.9.9.9", "heartbeats": {}},
    "storagedrivers": {"storagedriver_id": "other"},
    "vpools": {"type": "CEPH_S3"},
    "vdisks": {"volume_id": "v-1", "parentsnapshot": "s-1", "snapshots": []},
    "vmachines": {"snapshots": [], "vdisks_guids": []},
}
KINDS = {"storagerouters": "storagerouter", "storagedrivers": "storagedriver", "vpools": "vpool", "vdisks": "vdisk",
         "vmachines": "vmachine"}


@pytest_twisted.ensureDeferred
async def test_patch_changes_writable_fields_and_refuses_the_others(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    other = await populate(node.repository, "2")
    token = await node.admin_token()
    for resource, kind in KINDS.items():
        guid = cluster.guid_of(kind)
        path = f"/api/{resource}/{guid}/"
        reply = await node.call("PATCH", path, token, body=WRITABLE[resource])
        assert reply.status == 202, (resource, reply.body)
        assert {k: reply.body[k] for k in WRITABLE[resource]} == WRITABLE[resource]
        assert (await node.call("GET", path, token)).body == reply.body
        before = await store_snapshot(node.store)
        refused = [*READ_ONLY[resource], "guid", *[r.key for r in TYPES[kind].relations if not r.writable]]
        for name in refused:
            reply = await node.call("PATCH", path, token, body={"description": "sneaky", name: None})
            assert reply.body == {"error": "invalid_data",
                                  "error_description": f"Invalid data passed: unknown field(s): {name}"}, name
        assert await store_snapshot(node.store) == before, resource
    # a vDisk moves to another vMachine: both sides of the relation follow
    reply = await node.call("PATCH", f"/api/vdisks/{cluster.vdisk}/", token, body={"vmachine_guid": other.vmachine})
    assert reply.status == 202 and reply.body["vmachine_guid"] == other.vmachine
    assert (await node.call("GET", f"/api/vdisks/?vmachineguid={other.vmachine}", token)).body == sorted(
        [other.vdisk, cluster.vdisk])
    assert (await node.call("GET", f"/api/vmachines/{cluster.vmachine}/", token)).body["vdisks_guids"] == []
    reply = await node.call("PATCH", f"/api/vdisks/{cluster.vdisk}/", token,
                            body={"vmachine_guid": "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"})
    assert reply.error == (400, "invalid_data") and "vmachine_guid" in reply.body["error_description"]
    # a name that is unique stays unique
    reply = await node.call("PATCH", f"/api/vpools/{other.vpool}/", token, body={"name": "pool-renamed"})
    assert reply.body == {"error": "conflict", "error_description": "A vpool with this name already exists"}


@pytest_twisted.ensureDeferred
async def test_fifty_concurrent_patches_of_different_fields_all_survive(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token()
    path = f"/api/storagedrivers/{cluster.storagedriver}/"
    before = await node.repository.get("storagedriver", cluster.storagedriver)
    fields = sorted(n for n in TYPES["storagedriver"].writable_fields() if n != "port")
    patches = [{fields[n % len(fields)]: f"value-{n}"} for n in range(49)] + [{"port": 27000}]
    replies = await defer.gatherResults([
        defer.ensureDeferred(node.call("PATCH", path, token, body=patch)) for patch in patches])
    assert [r.status for r in replies] == [202] * 50, [r.body for r in replies if r.status != 202]
    after = await node.repository.get("storagedriver", cluster.storagedriver)
    # every PATCH was applied exactly once, on top of all the others
    assert after.version == before.version + 50
    final = (await node.call("GET", path, token)).body
    assert final["port"] == 27000
    for name in fields:
        written = {p[name] for p in patches if name in p}
        assert final[name] in written, name
    # the untouched fields are as they were
    assert final["storagedriver_id"] == before.data["storagedriver_id"]
    assert final["vpool_guid"] == cluster.vpool


@pytest_twisted.ensureDeferred
async def test_a_fetch_answers_the_caller_before_the_object(views_node: ViewsNode) -> None:
    # the object is read while the token is checked; the answer still says 401 before 404, and a refused
    # caller learns nothing about the object, present or not
    node = views_node
    present = (await populate(node.repository, "1")).storagerouter
    absent = "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"
    token = await node.admin_token("read")
    for guid in (present, absent):
        reply = await node.call("GET", f"/api/storagerouters/{guid}/")
        assert (reply.status, reply.body["error"]) == (401, "not_authenticated")
        reply = await node.call("GET", f"/api/storagerouters/{guid}/", "not-a-token")
        assert (reply.status, reply.body["error"]) == (401, "invalid_token")
    assert (await node.call("GET", f"/api/storagerouters/{absent}/", token)).status == 404
    reply = await node.call("GET", f"/api/storagerouters/{present}/", token)
    assert (reply.status, reply.body["guid"]) == (200, present)
    # a fetch with contents reads what it asks (the read started early is the same read)
    everything = reply.body
    assert "status" in everything and "storagedrivers_guids" in everything
    reply = await node.call("GET", f"/api/storagerouters/{present}/?contents=status", token)
    assert reply.status == 200
    assert "status" in reply.body and "storagedrivers_guids" not in reply.body
