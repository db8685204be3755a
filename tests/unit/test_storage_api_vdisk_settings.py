"""A vDisk's own cache mode and write-through through the API on a real qemu-storage-daemon: applied to its top
node and export, kept across a SIGKILL of the driver and its replay, kept by a snapshot; bad settings refused."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from ovsd.storage.daemon import DriverDaemon
from ovsd.storage.vdisk import export_id, node_name
from ovsd.store.connection import Store
from tests.storage_api_support import MiB, StorageNode, start_pool_node, stop_storage_node
from tests.storage_support import assert_pattern, write
from tests.work_support import eventually


@pytest_twisted.async_yield_fixture
async def node(store: Store) -> AsyncIterator[StorageNode]:
    n = await start_pool_node(store, "vs1")
    yield n
    await stop_storage_node(n)


def driver_guid(node: StorageNode) -> str:
    return str(node.vpool["storagedriver_guid"])  # type: ignore[attr-defined]


async def create(node: StorageNode, name: str) -> dict[str, Any]:
    return await node.create_vdisk(name, node.vpool["vpool_guid"], 16 * MiB)  # type: ignore[attr-defined]


async def settings(node: StorageNode, guid: str) -> dict[str, Any]:
    return dict(await node.result(await node.ok("GET", f"/api/vdisks/{guid}/get_config_params/")))


async def top_cache(daemon: DriverDaemon, guid: str) -> dict[str, Any]:
    """The cache options QEMU reports for the vDisk's exported top node (and that the export is there)."""
    exports = {e["id"]: e["node-name"] for e in await daemon.qmp.execute("query-block-exports")}
    top = exports[export_id(guid)]
    stored = daemon.served[guid]
    assert top == node_name(stored.image)
    nodes = {n["node-name"]: n for n in await daemon.qmp.execute("query-named-block-nodes")}
    return dict(nodes[top]["cache"])


@pytest_twisted.ensureDeferred
async def test_cache_mode_and_write_through_are_applied_replayed_and_kept_by_a_snapshot(node: StorageNode) -> None:
    disk = await create(node, "tuned")
    other = await create(node, "plain")
    guid, uri = disk["guid"], disk["info"]["nbd_uri"]
    assert await settings(node, guid) | {"aio": None, "discard": None} == {
        "cache_mode": "writeback", "write_through": False, "aio": None, "discard": None}
    await write(uri, 0x5A, 0, 2 * MiB)

    answer = await node.result(await node.ok("POST", f"/api/vdisks/{guid}/set_config_params/",
                                             {"new_config_params": {"cache_mode": "none", "write_through": True}}))
    assert answer["cache_mode"] == "none" and answer["write_through"] is True
    assert (await settings(node, guid))["cache_mode"] == "none"
    assert (await settings(node, guid))["write_through"] is True
    daemon = await node.storage.daemon(driver_guid(node))
    assert (await top_cache(daemon, guid))["direct"] is True
    assert (await top_cache(daemon, other["guid"]))["direct"] is False
    # QEMU 7.2 reports no export's writethrough over QMP: the export re-added with it is what the driver serves
    assert daemon.served[guid].write_through is True and daemon.served[other["guid"]].write_through is False
    stored = (await node.repo.get("vdisk", guid)).data["volume"]
    assert stored["cache_direct"] is True and stored["write_through"] is True
    # the bytes written before the change are there, and the export takes writes after it
    await assert_pattern(uri, 0x5A, 0, 2 * MiB)
    await write(uri, 0x6B, 2 * MiB, 2 * MiB)
    await assert_pattern(uri, 0x6B, 2 * MiB, 2 * MiB)

    before = await node.ok("GET", f"/api/storagedrivers/{driver_guid(node)}/")
    os.kill(before["pid"], signal.SIGKILL)

    async def back() -> Any:
        state = await node.ok("GET", f"/api/storagedrivers/{driver_guid(node)}/")
        return state if state["status"] == "RUNNING" and state["pid"] not in (None, before["pid"]) else None

    await eventually(back, timeout=20)
    assert node.storage.replay_failures[driver_guid(node)] == {}
    replayed = await node.storage.daemon(driver_guid(node))
    assert replayed is not daemon
    assert (await top_cache(replayed, guid))["direct"] is True
    assert (await top_cache(replayed, other["guid"]))["direct"] is False
    assert replayed.served[guid].write_through is True
    assert (await settings(node, guid))["cache_mode"] == "none"
    await assert_pattern(uri, 0x5A, 0, 2 * MiB)
    await assert_pattern(uri, 0x6B, 2 * MiB, 2 * MiB)

    # a snapshot's new top keeps the vDisk's cache mode, its export the write-through
    await node.result(await node.ok("POST", f"/api/vdisks/{guid}/create_snapshot/", {"name": "s"}))
    assert replayed.served[guid].image != daemon.served[guid].image
    assert (await top_cache(replayed, guid))["direct"] is True
    assert replayed.served[guid].write_through is True
    assert await settings(node, guid) == answer
    await write(uri, 0x7C, 0, MiB)
    await assert_pattern(uri, 0x7C, 0, MiB)
    await assert_pattern(uri, 0x6B, 2 * MiB, 2 * MiB)

    # and back: page cache again, no write-through, the data still there
    back_to = await node.result(await node.ok("POST", f"/api/vdisks/{guid}/set_config_params/",
                                              {"new_config_params": {"cache_mode": "writeback",
                                                                     "write_through": False}}))
    assert back_to["cache_mode"] == "writeback" and back_to["write_through"] is False
    assert (await top_cache(replayed, guid))["direct"] is False
    await assert_pattern(uri, 0x7C, 0, MiB)


@pytest_twisted.ensureDeferred
async def test_an_unknown_knob_or_a_bad_value_is_refused_and_changes_nothing(node: StorageNode) -> None:
    disk = await create(node, "strict")
    guid = disk["guid"]
    before = (await node.repo.get("vdisk", guid)).data
    for given, reason in [
        ({"dtl_mode": "sync"}, "dtl_mode is not a setting of a vDisk here (the settings are: cache_mode, "
                               "write_through)"),
        ({"cache_mode": "none", "sco_size": 4}, "sco_size is not a setting of a vDisk here"),
        ({"cache_mode": "directsync"}, "cache_mode must be one of writeback, none"),
        ({"write_through": 1}, "write_through must be one of True, False"),
        ({"write_through": "yes"}, "write_through must be one of True, False"),
    ]:
        reply = await node.call("POST", f"/api/vdisks/{guid}/set_config_params/", {"new_config_params": given})
        assert reply.status == 406, (given, reply.status, reply.body)
        assert reason in reply.body["error_description"], (reason, reply.body)
    assert (await node.repo.get("vdisk", guid)).data == before
    assert await settings(node, guid) | {"aio": None, "discard": None} == {
        "cache_mode": "writeback", "write_through": False, "aio": None, "discard": None}
    daemon = await node.storage.daemon(driver_guid(node))
    assert (await top_cache(daemon, guid))["direct"] is False and daemon.served[guid].write_through is False
