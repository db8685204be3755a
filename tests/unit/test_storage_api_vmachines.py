"""vMachines through the API on a real qemu-storage-daemon: one snapshot group of three disks, rollback of
all three, a clone of the group, templates and their children, unregistering, events."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from ovsd.store.connection import Store
from tests.storage_api_support import MiB, StorageNode, start_storage_node, stop_storage_node
from tests.storage_support import assert_pattern, write


@pytest_twisted.async_yield_fixture
async def node(store: Store) -> AsyncIterator[StorageNode]:
    n = await start_storage_node(store, "vm1")
    yield n
    await stop_storage_node(n)


async def disk(node: StorageNode, vpool: str, name: str) -> dict[str, Any]:
    return await node.create_vdisk(name, vpool, 16 * MiB)


async def act(node: StorageNode, guid: str, name: str, body: Any = None) -> Any:
    return await node.result(await node.ok("POST", f"/api/vmachines/{guid}/{name}/", body or {}))


@pytest_twisted.ensureDeferred
async def test_a_vmachine_snapshot_of_three_disks_is_one_group_and_rolls_back_together(node: StorageNode) -> None:
    vpool = (await node.add_vpool("vms", os.path.join(node.directory, "images")))["vpool_guid"]
    disks = [await disk(node, vpool, f"d{i}") for i in range(3)]
    uris = [d["info"]["nbd_uri"] for d in disks]
    reply = await node.call("POST", "/api/vmachines/", {"name": "web", "vdisks_guids": [d["guid"] for d in disks]})
    assert reply.status == 201, reply.body
    vm = reply.body
    assert vm["vdisks_guids"] == sorted(d["guid"] for d in disks) and vm["hypervisor_status"] == "UNKNOWN"
    router = await node.ok("GET", f"/api/storagerouters/{node.router_guid}/")
    assert vm["pmachine_guid"] == router["pmachine_guid"]  # not given: the host of the node serving its disks
    assert vm["storagerouters_guids"] == [node.router_guid] and vm["vpools_guids"] == [vpool]
    for i, uri in enumerate(uris):
        await write(uri, 0x10 + i, 0, 2 * MiB)

    stamp = await act(node, vm["guid"], "snapshot", {"name": "nightly", "consistent": True})
    for uri in uris:
        await write(uri, 0xEE, 0, 2 * MiB)
    groups = (await node.ok("GET", f"/api/vmachines/{vm['guid']}/"))["snapshots"]
    assert len(groups) == 1 and groups[0]["timestamp"] == stamp and groups[0]["label"] == "nightly"
    assert set(groups[0]["snapshots"]) == {d["guid"] for d in disks} and groups[0]["is_consistent"] is True
    # one instant: every disk's snapshot has the group's timestamp
    for d in disks:
        assert [s["timestamp"] for s in (await node.ok("GET", f"/api/vdisks/{d['guid']}/"))["snapshots"]] == [stamp]

    assert await act(node, vm["guid"], "rollback", {"timestamp": stamp}) is True
    for i, uri in enumerate(uris):
        await assert_pattern(uri, 0x10 + i, 0, 2 * MiB)

    # a clone of the group: a new vMachine of three thin disks holding the snapshot's bytes
    clone = await act(node, vm["guid"], "clone_from_snapshot", {"snapshot_timestamp": stamp,
                                                                "new_machine_name": "web-copy"})
    copy = await node.ok("GET", f"/api/vmachines/{clone}/?contents=_dynamics,_relations")
    assert copy["name"] == "web-copy" and len(copy["vdisks_guids"]) == 3
    for guid in copy["vdisks_guids"]:
        child = await node.ok("GET", f"/api/vdisks/{guid}/")
        index = next(i for i, d in enumerate(disks) if d["guid"] == child["parent_vdisk_guid"])
        await assert_pattern(child["info"]["nbd_uri"], 0x10 + index, 0, 2 * MiB)
    reply = await node.call("POST", f"/api/vmachines/{vm['guid']}/rollback/", {"timestamp": "1"})
    assert reply.status == 406 and "No vMachine snapshot found for timestamp 1" in reply.body["error_description"]
    reply = await node.call("GET", f"/api/vmachines/{vm['guid']}/get_children/")
    assert reply.status == 406 and reply.body["error_description"] == "vMachine is not a vTemplate"

    # unregistering keeps the disks
    reply = await node.call("DELETE", f"/api/vmachines/{clone}/")
    assert reply.status == 204
    for guid in copy["vdisks_guids"]:
        assert (await node.ok("GET", f"/api/vdisks/{guid}/"))["vmachine_guid"] is None
    # the group cannot go while clones sit on it; once they are deleted it can
    reply = await node.call("POST", f"/api/vmachines/{vm['guid']}/delete_snapshot/", {"snapshot_timestamp": stamp})
    record = await node.task(reply.body)
    assert record["status"] == "FAILURE" and "volumes cloned from it" in record["result"]
    for guid in copy["vdisks_guids"]:
        assert (await node.call("DELETE", f"/api/vdisks/{guid}/")).status == 204
    assert await act(node, vm["guid"], "delete_snapshot", {"snapshot_timestamp": stamp}) is True
    assert (await node.ok("GET", f"/api/vmachines/{vm['guid']}/"))["snapshots"] == []
    for i, uri in enumerate(uris):
        await assert_pattern(uri, 0x10 + i, 0, 2 * MiB)


@pytest_twisted.ensureDeferred
async def test_a_template_vmachine_makes_children_on_its_pmachines(node: StorageNode) -> None:
    vpool = (await node.add_vpool("tpl", os.path.join(node.directory, "images")))["vpool_guid"]
    disks = [await disk(node, vpool, f"t{i}") for i in range(2)]
    for i, d in enumerate(disks):
        await write(d["info"]["nbd_uri"], 0x30 + i, 0, MiB)
    vm = await node.ok("POST", "/api/vmachines/", {"name": "golden", "vdisks_guids": [d["guid"] for d in disks]})
    assert await act(node, vm["guid"], "set_as_template") is True
    template = await node.ok("GET", f"/api/vmachines/{vm['guid']}/")
    assert template["is_vtemplate"] is True
    reply = await node.call("POST", f"/api/vmachines/{vm['guid']}/snapshot/", {"name": "x", "consistent": False})
    assert reply.status == 406 and reply.body["error_description"] == "vMachine should not be a vTemplate"
    router = await node.ok("GET", f"/api/storagerouters/{node.router_guid}/")
    targets = await node.ok("GET", f"/api/vmachines/{vm['guid']}/get_target_pmachines/")
    assert targets == [router["pmachine_guid"]]
    made = await act(node, vm["guid"], "create_from_template", {"pmachineguid": router["pmachine_guid"],
                                                                 "name": "app1", "description": "from golden"})
    child = await node.ok("GET", f"/api/vmachines/{made}/")
    assert child["name"] == "app1" and child["is_vtemplate"] is False and len(child["vdisks_guids"]) == 2
    for guid in child["vdisks_guids"]:
        vdisk = await node.ok("GET", f"/api/vdisks/{guid}/")
        index = next(i for i, d in enumerate(disks) if d["guid"] == vdisk["parent_vdisk_guid"])
        await assert_pattern(vdisk["info"]["nbd_uri"], 0x30 + index, 0, MiB)
    assert await node.ok("GET", f"/api/vmachines/{vm['guid']}/get_children/") == [made]
    reply = await node.call("DELETE", f"/api/vmachines/{vm['guid']}/")
    assert reply.status == 406 and "has children" in reply.body["error_description"]
