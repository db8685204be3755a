"""vDisks through the API on a real qemu-storage-daemon: bytes written over NBD, snapshots, rollback, clones,
templates, refusals, deletion, and a SIGKILLed driver that comes back with every export and its data."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import defer

from ovsd.dal.repository import UniqueConflict
from ovsd.store.connection import Store
from tests.storage_api_support import MiB, StorageNode, start_pool_node, start_storage_node, stop_storage_node
from tests.storage_support import assert_pattern, qemu_io, write
from tests.work_support import eventually

SID = 5151


@pytest_twisted.async_yield_fixture
async def node(store: Store) -> AsyncIterator[StorageNode]:
    n = await start_pool_node(store, "vd1")
    yield n
    await stop_storage_node(n)


async def create(node: StorageNode, name: str, size: int = 64 * MiB) -> dict[str, Any]:
    return await node.create_vdisk(name, vpool(node), size)


def vpool(node: StorageNode) -> str:
    return str(node.vpool["vpool_guid"])  # type: ignore[attr-defined]


async def action(node: StorageNode, guid: str, name: str, body: Any = None) -> Any:
    return await node.result(await node.ok("POST", f"/api/vdisks/{guid}/{name}/", body or {}))


async def refused(node: StorageNode, method: str, path: str, body: Any, reason: str) -> None:
    reply = await node.call(method, path, body)
    assert reply.status == 406, (path, reply.status, reply.body)
    assert reason in reply.body["error_description"], (reason, reply.body)


@pytest_twisted.ensureDeferred
async def test_a_vdisk_is_attachable_snapshots_roll_back_and_clones_are_thin(node: StorageNode) -> None:
    await node.ok("POST", f"/api/messages/{SID}/subscribe/", ["EVENT"])
    since = int(await node.ok("GET", f"/api/messages/{SID}/last/"))
    disk = await create(node, "disk1")
    uri = disk["info"]["nbd_uri"]
    driver = await node.ok("GET", f"/api/storagedrivers/{node.vpool['storagedriver_guid']}/")  # type: ignore
    assert uri == f"nbd://127.0.0.1:{driver['port']}/{disk['guid']}"
    assert disk["storagedriver_id"] == driver["storagedriver_id"] and disk["storagerouter_guid"] == node.router_guid
    assert disk["is_vtemplate"] is False and disk["size"] == 64 * MiB and disk["snapshots"] == []
    await write(uri, 0xA1, 0, 8 * MiB)
    await assert_pattern(uri, 0xA1, 0, 8 * MiB)

    first = await action(node, disk["guid"], "create_snapshot", {"name": "before", "consistent": True})
    await write(uri, 0xB2, 0, 4 * MiB)
    second = await action(node, disk["guid"], "create_snapshot", {"name": "later"})
    await write(uri, 0xC3, 0, 4 * MiB)
    snapshots = (await node.ok("GET", f"/api/vdisks/{disk['guid']}/"))["snapshots"]
    assert [s["guid"] for s in snapshots] == [first, second]
    assert snapshots[0]["label"] == "before" and snapshots[0]["is_consistent"] is True
    assert snapshots[0]["timestamp"].isdigit() and int(snapshots[1]["timestamp"]) > int(snapshots[0]["timestamp"])
    assert all(s["in_backend"] is True and s["is_sticky"] is False for s in snapshots)

    # rollback: the old bytes are back, both snapshots remain
    assert await action(node, disk["guid"], "rollback", {"timestamp": snapshots[0]["timestamp"]}) is True
    await assert_pattern(uri, 0xA1, 0, 8 * MiB)
    after = await node.ok("GET", f"/api/vdisks/{disk['guid']}/")
    assert [s["guid"] for s in after["snapshots"]] == [first, second]
    await write(uri, 0xD4, 0, 1 * MiB)

    # a clone of the second snapshot holds its bytes; later writes to the source do not show in it
    cloned = await action(node, disk["guid"], "clone", {"name": "copy", "storagerouter_guid": node.router_guid,
                                                        "snapshot_id": second})
    copy = await node.ok("GET", f"/api/vdisks/{cloned['diskguid']}/")
    assert cloned["name"] == "copy" and copy["parent_vdisk_guid"] == disk["guid"] and copy["parentsnapshot"] == second
    await assert_pattern(copy["info"]["nbd_uri"], 0xB2, 0, 4 * MiB)
    await assert_pattern(copy["info"]["nbd_uri"], 0xA1, 4 * MiB, 4 * MiB)
    await write(uri, 0xE5, 0, 8 * MiB)
    await assert_pattern(copy["info"]["nbd_uri"], 0xB2, 0, 4 * MiB)
    # thin: the clone shows 8 MiB of data and stores far less
    assert copy["info"]["stored"] < 1 * MiB, copy["info"]
    source = await node.ok("GET", f"/api/vdisks/{disk['guid']}/")
    assert source["info"]["stored"] >= 8 * MiB
    # a clone without a snapshot takes an automatic one
    auto = await action(node, disk["guid"], "clone", {"name": "copy2", "storagerouter_guid": node.router_guid})
    await assert_pattern((await node.ok("GET", f"/api/vdisks/{auto['diskguid']}/"))["info"]["nbd_uri"], 0xE5, 0, MiB)
    snaps = (await node.ok("GET", f"/api/vdisks/{disk['guid']}/"))["snapshots"]
    assert len(snaps) == 3 and snaps[-1]["is_automatic"] is True

    # refusals: a snapshot with a clone on it, a disk with clones
    await refused(node, "POST", f"/api/vdisks/{disk['guid']}/remove_snapshot/", {"snapshot_id": second},
                  f"Snapshot {second} has 1 volumes cloned from it, cannot remove")
    await refused(node, "DELETE", f"/api/vdisks/{disk['guid']}/", None, "has 2 clones or template children")
    await refused(node, "POST", f"/api/vdisks/{disk['guid']}/rollback/", {"timestamp": "12"},
                  "No snapshot found for timestamp 12")

    # the clones go (204 once removed, their own files gone), then the snapshot can be removed
    copy_image = os.path.join(node.directory, "images", f"{copy['guid']}.qcow2")
    assert os.path.exists(copy_image)
    for guid in (copy["guid"], auto["diskguid"]):
        reply = await node.call("DELETE", f"/api/vdisks/{guid}/")
        assert reply.status == 204 and reply.raw == b"", reply.body
    assert not os.path.exists(copy_image)
    assert (await node.call("GET", f"/api/vdisks/{copy['guid']}/")).status == 404
    # the first snapshot has the second on it (a branch the rollback left): that one goes first
    await refused(node, "POST", f"/api/vdisks/{disk['guid']}/remove_snapshot/", {"snapshot_id": first},
                  "has other snapshots or vDisks on it")
    assert await action(node, disk["guid"], "remove_snapshot", {"snapshot_id": second}) is True
    assert await action(node, disk["guid"], "remove_snapshot", {"snapshot_id": first}) is True
    left = (await node.ok("GET", f"/api/vdisks/{disk['guid']}/"))["snapshots"]
    assert [s["is_automatic"] for s in left] == [True]
    await assert_pattern(uri, 0xE5, 0, 8 * MiB)
    # the remaining snapshot still rolls back to its bytes (the first snapshot's data merged into it)
    await write(uri, 0xF6, 0, 8 * MiB)
    await action(node, disk["guid"], "rollback", {"timestamp": left[0]["timestamp"]})
    await assert_pattern(uri, 0xE5, 0, 8 * MiB)
    await assert_pattern(uri, 0, 8 * MiB, MiB)

    # grow
    assert await action(node, disk["guid"], "extend", {"new_size": 128 * MiB}) == 128 * MiB
    code, output = await qemu_io(uri, "length", read_only=True)
    assert code == 0 and "128 MiB" in output, output
    await refused(node, "POST", f"/api/vdisks/{disk['guid']}/extend/", {"new_size": MiB}, "a vDisk only grows")

    # delete: 204, every file of it gone, events for its whole life
    reply = await node.call("DELETE", f"/api/vdisks/{disk['guid']}/")
    assert reply.status == 204
    assert os.listdir(os.path.join(node.directory, "images")) == []
    answer = await node.ok("GET", f"/api/messages/{SID}/wait/?message_id={since}&timeout=0")
    seen = [(m["body"]["type"], m["body"]["metadata"].get("name")) for m in answer["messages"] if m["type"] == "EVENT"]
    assert ("vdisk_created", "disk1") in seen and ("vdisk_created", "copy") in seen
    assert ("vdisk_deleted", "copy") in seen and ("vdisk_deleted", "disk1") in seen


@pytest_twisted.ensureDeferred
async def test_templates_children_and_the_refusals(node: StorageNode, store: Store) -> None:
    base = await create(node, "base")
    await write(base["info"]["nbd_uri"], 0x5A, 0, 8 * MiB)
    await refused(node, "GET", f"/api/vdisks/{base['guid']}/get_children/", None, "vDisk is not a vTemplate")
    await refused(node, "POST", f"/api/vdisks/{base['guid']}/create_from_template/",
                  {"name": "c", "storagerouter_guid": node.router_guid}, "vDisk is not a vTemplate")
    assert await action(node, base["guid"], "set_as_template") is True
    template = await node.ok("GET", f"/api/vdisks/{base['guid']}/")
    assert template["is_vtemplate"] is True and template["info"]["object_type"] == "TEMPLATE"
    assert await node.ok("GET", f"/api/vdisks/{base['guid']}/get_children/") == []
    await refused(node, "POST", f"/api/vdisks/{base['guid']}/create_snapshot/", {"name": "x"}, "is a vTemplate")
    await refused(node, "POST", f"/api/vdisks/{base['guid']}/extend/", {"new_size": 128 * MiB}, "is a vTemplate")
    # the template's export is read-only
    code, output = await qemu_io(template["info"]["nbd_uri"], "write -P 0x11 0 4096")
    assert code != 0 or "failed" in output.lower(), output

    made = await action(node, base["guid"], "create_from_template", {"name": "child",
                                                                       "storagerouter_guid": node.router_guid})
    child = await node.ok("GET", f"/api/vdisks/{made['diskguid']}/")
    assert child["parent_vdisk_guid"] == base["guid"] and child["is_vtemplate"] is False
    await assert_pattern(child["info"]["nbd_uri"], 0x5A, 0, 8 * MiB)
    await write(child["info"]["nbd_uri"], 0x77, 0, MiB)
    await assert_pattern(child["info"]["nbd_uri"], 0x77, 0, MiB)
    await assert_pattern(template["info"]["nbd_uri"], 0x5A, 0, 8 * MiB)
    assert child["info"]["stored"] < MiB
    assert await node.ok("GET", f"/api/vdisks/{base['guid']}/get_children/") == [child["guid"]]
    await refused(node, "DELETE", f"/api/vdisks/{base['guid']}/", None, "has 1 clones or template children")

    # name clashes, a vPool without a driver on that StorageRouter, bad settings
    await refused(node, "POST", "/api/vdisks/", {"name": "child", "size": MiB, "vpool_guid": vpool(node),
                                                 "storagerouter_guid": node.router_guid},
                  "A vDisk with name child already exists in this vPool")
    await refused(node, "POST", f"/api/vdisks/{base['guid']}/create_from_template/",
                  {"name": "base", "storagerouter_guid": node.router_guid}, "A vDisk with name base already exists")
    other = await start_storage_node(store, "vd2")
    try:
        await refused(node, "POST", "/api/vdisks/", {"name": "x", "size": MiB, "vpool_guid": vpool(node),
                                                     "storagerouter_guid": other.router_guid},
                      "No storagedriver found for vPool: pool and storageRouter: vd2")
    finally:
        await stop_storage_node(other)
    reply = await node.call("POST", "/api/vdisks/", {"name": "x", "size": MiB, "vpool_guid": vpool(node)})
    assert reply.status == 406
    assert reply.body["error_description"] == "Invalid data passed: storagerouter_guid is missing"
    await refused(node, "POST", f"/api/vdisks/{child['guid']}/set_config_params/",
                  {"new_config_params": {"dtl_mode": "sync"}}, "dtl_mode is not a setting of a vDisk here")
    settings = await node.result(await node.ok("GET", f"/api/vdisks/{child['guid']}/get_config_params/"))
    assert settings["cache_mode"] == "writeback" and settings["write_through"] is False
    assert len(await node.repo.guids("vdisk")) == 2


@pytest_twisted.ensureDeferred
async def test_a_killed_driver_comes_back_with_every_export_and_its_data(node: StorageNode) -> None:
    disks = [await create(node, f"k{i}", 16 * MiB) for i in range(20)]
    snap = await action(node, disks[0]["guid"], "create_snapshot", {"name": "s"})
    await write(disks[0]["info"]["nbd_uri"], 0x10, 0, MiB)
    clone = await action(node, disks[0]["guid"], "clone", {"name": "kc", "storagerouter_guid": node.router_guid,
                                                           "snapshot_id": snap})
    await action(node, disks[1]["guid"], "set_as_template")
    for i, disk in enumerate(disks[2:], start=2):
        await write(disk["info"]["nbd_uri"], i, 0, MiB)
    driver_guid = node.vpool["storagedriver_guid"]  # type: ignore[attr-defined]
    before = await node.ok("GET", f"/api/storagedrivers/{driver_guid}/")
    os.kill(before["pid"], signal.SIGKILL)

    async def back() -> Any:
        state = await node.ok("GET", f"/api/storagedrivers/{driver_guid}/")
        return state if state["status"] == "RUNNING" and state["pid"] not in (None, before["pid"]) else None

    state = await eventually(back, timeout=20)
    assert state["restarts"] == before["restarts"] + 1 and state["last_exit"] == "SIGKILL"
    assert node.storage.replay_failures[driver_guid] == {}
    for i, disk in enumerate(disks[2:], start=2):
        await assert_pattern(disk["info"]["nbd_uri"], i, 0, MiB)
    await assert_pattern(disks[0]["info"]["nbd_uri"], 0x10, 0, MiB)
    copy = await node.ok("GET", f"/api/vdisks/{clone['diskguid']}/")
    await assert_pattern(copy["info"]["nbd_uri"], 0, 0, MiB)
    # the tasks reach the new daemon
    assert await action(node, disks[5]["guid"], "create_snapshot", {"name": "after"})


@pytest_twisted.ensureDeferred
async def test_concurrent_creates_of_one_name_make_one_vdisk(node: StorageNode) -> None:
    body = {"name": "twin", "size": 16 * MiB, "vpool_guid": vpool(node), "storagerouter_guid": node.router_guid}
    replies = await defer.gatherResults([defer.ensureDeferred(node.call("POST", "/api/vdisks/", body))
                                         for _ in range(8)])
    reason = "A vDisk with name twin already exists in this vPool"
    outcomes = []
    for reply in replies:
        if reply.status == 406:
            assert reply.body["error_description"] == reason, reply.body
            outcomes.append("refused")
            continue
        assert reply.status == 202, reply.body
        record = await node.task(reply.body)
        assert record["status"] in ("SUCCESS", "FAILURE"), record
        if record["status"] == "FAILURE":
            assert record["result"] == reason, record
        outcomes.append("made" if record["status"] == "SUCCESS" else "refused")
    assert outcomes.count("made") == 1 and outcomes.count("refused") == 7, outcomes
    made = [v for v in await node.repo.load_all("vdisk") if v.data["name"] == "twin"]
    assert len(made) == 1
    # the losers' images and exports went with them: one image file, one export
    images = os.listdir(os.path.join(node.directory, "images"))
    assert images == [f"{made[0].guid}.qcow2"], images
    await assert_pattern((await node.ok("GET", f"/api/vdisks/{made[0].guid}/"))["info"]["nbd_uri"], 0, 0, MiB)


@pytest_twisted.ensureDeferred
async def test_the_store_keeps_a_name_unique_within_its_vpool(node: StorageNode) -> None:
    """Two writers of one name in one vPool, at once, straight into the repository: one lands, the other is
    refused by the store itself; another vPool may hold the name; a rename onto a taken name is a 409."""
    repo = node.repo
    other_vpool = await repo.create("vpool", {"name": "other", "type": "LOCAL"})

    def values(name: str, pool: str) -> dict[str, Any]:
        return {"name": name, "size": MiB, "vpool_guid": pool}

    outcomes = await defer.DeferredList([defer.ensureDeferred(repo.create("vdisk", values("same", vpool(node))))
                                         for _ in range(2)], consumeErrors=True)
    assert sorted(ok for ok, _ in outcomes) == [False, True]
    failure = next(result for ok, result in outcomes if not ok)
    assert failure.check(UniqueConflict) and failure.value.field == "name"
    elsewhere = await repo.create("vdisk", values("same", other_vpool.guid))
    second = await repo.create("vdisk", values("second", vpool(node)))
    reply = await node.call("PATCH", f"/api/vdisks/{second.guid}/", {"name": "same"})
    assert reply.status == 409 and reply.body["error"] == "conflict", reply.body
    assert (await repo.get("vdisk", second.guid)).data["name"] == "second"
    # a rename frees the old name; a delete frees the name
    await node.ok("PATCH", f"/api/vdisks/{second.guid}/", {"name": "renamed"})
    await repo.create("vdisk", values("second", vpool(node)))
    await repo.delete("vdisk", elsewhere.guid)
    assert (await repo.create("vdisk", values("same", other_vpool.guid))).data["name"] == "same"
