"""move_away through the API on two nodes' real qemu-storage-daemons serving one DISTRIBUTED vPool: the vDisks
change hands with their bytes, the old exports close, and a LOCAL vPool's vDisk is named as one that cannot move."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from ovsd.storage.vdisk import export_id
from ovsd.store.connection import Store
from tests.storage_api_support import MiB, StorageNode, start_storage_node, stop_storage_node, vpool_parameters
from tests.storage_support import assert_pattern, qemu_io, write
from tests.support import free_port


@pytest_twisted.async_yield_fixture
async def pair(store: Store) -> AsyncIterator[tuple[StorageNode, StorageNode]]:
    first = await start_storage_node(store, "mva")
    second = await start_storage_node(store, "mvb")
    try:
        shared = os.path.join(first.directory, "shared")
        first.dist = await first.add_vpool("dist", shared, "DISTRIBUTED")  # type: ignore[attr-defined]
        params = vpool_parameters("dist", shared, second.directory, "DISTRIBUTED", free_port())
        second.dist = await second.result(await second.ok(  # type: ignore[attr-defined]
            "POST", f"/api/storagerouters/{second.router_guid}/add_vpool/", {"call_parameters": params}))
        yield first, second
    finally:
        await stop_storage_node(second)
        await stop_storage_node(first)


async def create(node: StorageNode, name: str, vpool_guid: str) -> dict[str, Any]:
    return await node.create_vdisk(name, vpool_guid, 32 * MiB)


async def exported(node: StorageNode, storagedriver_guid: str) -> set[str]:
    daemon = node.storage.running(storagedriver_guid)
    assert daemon is not None
    return {e["id"] for e in await daemon.exports()}


@pytest_twisted.ensureDeferred
async def test_move_away_hands_distributed_vdisks_over_and_names_the_local_ones(
        pair: tuple[StorageNode, StorageNode]) -> None:
    a, b = pair
    sd_a, sd_b = a.dist["storagedriver_guid"], b.dist["storagedriver_guid"]  # type: ignore[attr-defined]
    vpool_guid = a.dist["vpool_guid"]  # type: ignore[attr-defined]
    disk = await create(a, "roamer", vpool_guid)
    old_uri = disk["info"]["nbd_uri"]
    assert disk["storagerouter_guid"] == a.router_guid
    await write(old_uri, 0x3C, 0, 4 * MiB)
    await write(old_uri, 0x4D, 8 * MiB, MiB)
    local = await a.add_vpool("home", os.path.join(a.directory, "home"))
    stay = await create(a, "stayer", local["vpool_guid"])
    await write(stay["info"]["nbd_uri"], 0x11, 0, MiB)

    # the LOCAL vPool's vDisk is named and stays served here; the DISTRIBUTED one moves anyway
    error = await a.error(await a.ok("POST", f"/api/storagerouters/{a.router_guid}/move_away/"))
    assert error.startswith("moved 1 vDisks; not moved: stayer (vPool home is LOCAL"), error
    moved = await a.ok("GET", f"/api/vdisks/{disk['guid']}/")
    driver_b = await b.ok("GET", f"/api/storagedrivers/{sd_b}/")
    assert moved["storagerouter_guid"] == b.router_guid
    assert moved["storagedriver_id"] == driver_b["storagedriver_id"]
    assert moved["info"]["nbd_uri"] == f"nbd://127.0.0.1:{driver_b['port']}/{disk['guid']}" != old_uri
    await assert_pattern(moved["info"]["nbd_uri"], 0x3C, 0, 4 * MiB)
    await assert_pattern(moved["info"]["nbd_uri"], 0x4D, 8 * MiB, MiB)
    # the old export is gone (its driver still runs), the new one takes writes
    assert export_id(disk["guid"]) not in await exported(a, sd_a)
    assert export_id(disk["guid"]) in await exported(b, sd_b)
    code, output = await qemu_io(old_uri, "read 0 4096", read_only=True)
    assert code != 0 or "read 4096/4096" not in output, output
    await write(moved["info"]["nbd_uri"], 0x5E, 0, MiB)
    await assert_pattern(moved["info"]["nbd_uri"], 0x5E, 0, MiB)
    assert (await a.ok("GET", f"/api/vdisks/{stay['guid']}/"))["storagerouter_guid"] == a.router_guid
    await assert_pattern(stay["info"]["nbd_uri"], 0x11, 0, MiB)
    assert await a.ok("GET", f"/api/storagedrivers/{sd_a}/can_be_deleted/") is True
    # the new owner serves it on: its vDisk actions now run on the other node
    snap = await b.result(await b.ok("POST", f"/api/vdisks/{disk['guid']}/create_snapshot/", {"name": "there"}))
    assert [s["guid"] for s in (await b.ok("GET", f"/api/vdisks/{disk['guid']}/"))["snapshots"]] == [snap]

    # without the LOCAL vDisk, move_away succeeds and says where each went; moving back works the same way
    assert (await a.call("DELETE", f"/api/vdisks/{stay['guid']}/")).status == 204
    second = await create(a, "second", vpool_guid)
    await write(second["info"]["nbd_uri"], 0x6F, 0, MiB)
    assert await a.result(await a.ok("POST", f"/api/storagerouters/{a.router_guid}/move_away/")) == {
        "moved": {second["guid"]: sd_b}}
    assert await b.result(await b.ok("POST", f"/api/storagerouters/{b.router_guid}/move_away/")) == {
        "moved": {disk["guid"]: sd_a, second["guid"]: sd_a}}
    back = await a.ok("GET", f"/api/vdisks/{second['guid']}/")
    assert back["storagerouter_guid"] == a.router_guid
    await assert_pattern(back["info"]["nbd_uri"], 0x6F, 0, MiB)
    assert await exported(b, sd_b) == set()

    # an unknown StorageRouter, a body field move_away does not take
    reply = await a.call("POST", "/api/storagerouters/00000000-0000-4000-8000-000000000000/move_away/")
    assert reply.status == 404, reply.body
    reply = await a.call("POST", f"/api/storagerouters/{a.router_guid}/move_away/", {"surprise": 1})
    assert reply.status == 400, reply.body


@pytest_twisted.ensureDeferred
async def test_a_vdisk_the_other_node_fails_to_adopt_is_served_here_again_with_its_bytes(
        pair: tuple[StorageNode, StorageNode], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    sd_a, sd_b = a.dist["storagedriver_guid"], b.dist["storagedriver_guid"]  # type: ignore[attr-defined]
    disk = await create(a, "homebody", a.dist["vpool_guid"])  # type: ignore[attr-defined]
    await write(disk["info"]["nbd_uri"], 0x2B, 0, 2 * MiB)
    daemon_b = b.storage.running(sd_b)
    assert daemon_b is not None

    async def refuse(volume: Any) -> None:
        # what the other node's daemon answers when it cannot open the image (QMP refuses the blockdev)
        raise RuntimeError("blockdev-add refused: the image cannot be opened here")

    monkeypatch.setattr(daemon_b, "add", refuse)
    error = await a.error(await a.ok("POST", f"/api/storagerouters/{a.router_guid}/move_away/"))
    assert error.startswith("moved 0 vDisks; not moved: homebody (") and "cannot be opened here" in error, error
    stayed = await a.ok("GET", f"/api/vdisks/{disk['guid']}/")
    assert stayed["storagerouter_guid"] == a.router_guid and stayed["storagedriver_guid"] == sd_a
    assert stayed["info"]["nbd_uri"] == disk["info"]["nbd_uri"]  # served here again, at the same address
    assert export_id(disk["guid"]) in await exported(a, sd_a)
    assert export_id(disk["guid"]) not in await exported(b, sd_b)
    await assert_pattern(disk["info"]["nbd_uri"], 0x2B, 0, 2 * MiB)
    await write(disk["info"]["nbd_uri"], 0x3A, 0, MiB)  # and it takes writes
    await assert_pattern(disk["info"]["nbd_uri"], 0x3A, 0, MiB)
