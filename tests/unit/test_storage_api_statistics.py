"""Statistics that are true, through the API on a real qemu-storage-daemon: bytes written over NBD show in
the vDisk's ``data_written`` and in every whole it belongs to, with rates that rise and fall back, across a
snapshot; ``stored`` is the images' allocation; a node that stops measuring has no figures, not old ones."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from twisted.internet import defer

from ovsd.storage.statistics import STAT_COUNTERS
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.storage_api_support import MiB, StorageNode, start_pool_node, stop_storage_node
from tests.storage_support import write
from tests.work_support import eventually

#: samples every 0.2 s instead of 2 s, so the test waits for figures only briefly
SAMPLE = 0.2


@pytest_twisted.async_yield_fixture
async def node(store: Store) -> AsyncIterator[StorageNode]:
    n = await start_pool_node(store, "st1")
    n.agent.sample_every(SAMPLE)
    yield n
    await stop_storage_node(n)


async def create(node: StorageNode, name: str, vpool: str) -> dict[str, Any]:
    return await node.create_vdisk(name, vpool, 64 * MiB)


async def fresh(node: StorageNode, kind: str, guid: str, field: str = "statistics") -> Any:
    """A dynamic as a client reads it once its 5 s cache period is over (the cache is dropped, not waited for)."""
    await node.repo.invalidate_dynamics(kind, guid)
    return (await node.ok("GET", f"/api/{kind}s/{guid}/"))[field]


def own_allocation(directory: str, guid: str) -> int:
    """Bytes the vDisk's own image files take on disk, as ``du`` would count them."""
    return sum(os.stat(os.path.join(directory, name)).st_blocks * 512 for name in os.listdir(directory)
               if name.startswith(guid + "."))


@pytest_twisted.ensureDeferred
async def test_written_bytes_show_in_the_vdisk_and_every_whole_with_rates_that_rise_and_fall(
        node: StorageNode) -> None:
    vpool = str(node.vpool["vpool_guid"])  # type: ignore[attr-defined]
    driver = str(node.vpool["storagedriver_guid"])  # type: ignore[attr-defined]
    disk = await create(node, "disk1", vpool)
    other = await create(node, "disk2", vpool)
    vm = await node.ok("POST", "/api/vmachines/", {"name": "vm", "vdisks_guids": [disk["guid"]]})
    wholes = [("vpool", vpool), ("storagedriver", driver), ("storagerouter", node.router_guid),
              ("vmachine", vm["guid"])]

    # nothing written yet: measured, and 0 (the first reads are also each object's previous sample)
    await eventually(lambda: node.context.store.execute("EXISTS", keys.vdisk_measured(disk["guid"])))
    before = await fresh(node, "vdisk", disk["guid"])
    assert before["data_written"] == 0 and before["data_written_ps"] == 0
    assert set(STAT_COUNTERS) <= set(before) and all(f"{k}_ps" in before for k in STAT_COUNTERS)
    driver_before = {kind: (await fresh(node, kind, guid))["data_written"] for kind, guid in wholes}

    await write(disk["info"]["nbd_uri"], 0xA1, 0, 8 * MiB)
    await write(other["info"]["nbd_uri"], 0xB2, 0, 2 * MiB)

    async def written(guid: str, amount: int) -> Any:
        stats = await fresh(node, "vdisk", guid)
        return stats if stats["data_written"] >= amount else None

    stats = await eventually(lambda: written(disk["guid"], 8 * MiB))
    assert stats["data_written"] == 8 * MiB  # distinct bytes: exactly what was written
    assert stats["data_written_ps"] > 0 and stats["data_transferred"] == 8 * MiB
    # what has no source stays 0: an NBD export of QEMU 7.2 counts no reads nor operations
    assert stats["data_read"] == stats["read_operations"] == stats["write_operations"] == 0
    assert stats["timestamp"] <= node.repo.now()
    await eventually(lambda: written(other["guid"], 2 * MiB))

    # every whole includes it, with a rate of its own; the vMachine is exactly its one disk
    for kind, guid in wholes:
        whole = await fresh(node, kind, guid)
        assert whole["data_written"] >= driver_before[kind] + 8 * MiB, (kind, whole)
        assert whole["data_written_ps"] > 0, (kind, whole)
    vm_stats = await fresh(node, "vmachine", vm["guid"])
    assert vm_stats["data_written"] == 8 * MiB
    # the driver's figures are its process's: its write operations are counted too
    assert (await fresh(node, "storagedriver", driver))["write_operations"] > 0

    # nothing written any more: the rates fall back to 0, the counts stay
    async def idle(kind: str, guid: str) -> Any:
        stats = await fresh(node, kind, guid)
        return stats if stats["data_written_ps"] == 0 else None

    assert (await eventually(lambda: idle("vdisk", disk["guid"])))["data_written"] == 8 * MiB
    assert (await eventually(lambda: idle("vmachine", vm["guid"])))["data_written"] == 8 * MiB
    await eventually(lambda: idle("vpool", vpool))

    # a snapshot puts a new top under the export: writes to it count from the first one, the old count stays
    await node.result(await node.ok("POST", f"/api/vdisks/{disk['guid']}/create_snapshot/", {"name": "s1"}))
    await write(disk["info"]["nbd_uri"], 0xC3, 0, 4 * MiB)
    stats = await eventually(lambda: written(disk["guid"], 12 * MiB))
    assert stats["data_written"] == 12 * MiB and stats["data_written_ps"] > 0

    # stored is the allocation of the vDisk's own images; the wholes sum it
    images = os.path.join(node.directory, "images")

    async def stored_agrees() -> bool:
        info = await fresh(node, "vdisk", disk["guid"], "info")
        return bool(info["stored"] == own_allocation(images, disk["guid"]))

    await eventually(stored_agrees)
    assert own_allocation(images, disk["guid"]) >= 12 * MiB
    total = own_allocation(images, disk["guid"]) + own_allocation(images, other["guid"])
    for kind, guid in wholes[:3]:
        assert await fresh(node, kind, guid, "stored_data") == total, kind
    assert await fresh(node, "vmachine", vm["guid"], "stored_data") == own_allocation(images, disk["guid"])


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_measuring_has_no_figures_not_old_ones(node: StorageNode) -> None:
    vpool = str(node.vpool["vpool_guid"])  # type: ignore[attr-defined]
    disk = await create(node, "disk1", vpool)
    await write(disk["info"]["nbd_uri"], 0xA1, 0, 4 * MiB)

    async def written() -> bool:
        return bool((await fresh(node, "vdisk", disk["guid"]))["data_written"] == 4 * MiB)

    await eventually(written)
    # the agent stops (its node is gone, say): within failure_after (3 s here) its figures are gone
    await defer.maybeDeferred(node.agent.stopService)

    async def gone() -> bool:
        stats = await fresh(node, "vdisk", disk["guid"])
        pool = await fresh(node, "vpool", vpool)
        return bool(stats["data_written"] == 0 and pool["data_written"] == 0)

    await eventually(gone, timeout=6.0, interval=0.2)
