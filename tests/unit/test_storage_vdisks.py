"""vDisks on a real qemu-storage-daemon: real bytes through NBD, snapshots, rollback, clones, templates."""

from __future__ import annotations

import itertools
import os

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from ovsd.storage import images
from ovsd.storage.daemon import StorageError, without
from ovsd.storage.vdisk import VDisk
from tests.storage_support import Daemon, MiB, assert_pattern, cleanup, qemu_io, short_dir, write

SIZE = 64 * MiB


def new_vdisk(d: Daemon, guid: str, size: int = SIZE) -> VDisk:
    return VDisk(guid=guid, image=d.image(f"{guid}.qcow2"), size=size)


@pytest_twisted.ensureDeferred
async def test_a_created_vdisk_is_exported_and_reads_back_what_was_written(daemon: Daemon) -> None:
    assert daemon.driver is not None
    vdisk = await daemon.driver.create(new_vdisk(daemon, "0f6f5a0e-1111-4a4a-9b9b-0123456789ab"))
    uri = daemon.uri(vdisk.export)
    await write(uri, 0xAB, 0, MiB)
    await write(uri, 0xCD, 4 * MiB, 64 * 1024)
    await assert_pattern(uri, 0xAB, 0, MiB)
    await assert_pattern(uri, 0xCD, 4 * MiB, 64 * 1024)
    await assert_pattern(uri, 0x00, 8 * MiB, MiB)
    exports = await daemon.driver.exports()
    assert [e["vdisk"] for e in exports] == [vdisk.guid]
    info = await images.info(reactor, vdisk.image)
    assert info.virtual_size == SIZE


@pytest_twisted.ensureDeferred
async def test_rollback_brings_the_snapshot_bytes_back_and_every_snapshot_stays(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    vdisk = await driver.create(new_vdisk(daemon, "vd1"))
    uri = daemon.uri("vd1")
    await write(uri, 0x11, 0, MiB)
    vdisk, first = await driver.snapshot("vd1")
    await write(uri, 0x22, 0, MiB)
    vdisk, second = await driver.snapshot("vd1")
    await write(uri, 0x33, 0, MiB)
    await write(uri, 0x44, 2 * MiB, MiB)

    rolled = await driver.rollback("vd1", first)
    await assert_pattern(uri, 0x11, 0, MiB)
    await assert_pattern(uri, 0x00, 2 * MiB, MiB)
    # the top written after the second snapshot is gone from disk; both snapshots are still there
    assert not os.path.exists(vdisk.image)
    assert all(os.path.exists(p) for p in (*first, *second))
    # and the later snapshot can still be rolled back to, after writes on the first branch
    await write(uri, 0x55, 0, MiB)
    await driver.rollback("vd1", second)
    await assert_pattern(uri, 0x22, 0, MiB)
    assert not os.path.exists(rolled.image)


@pytest_twisted.ensureDeferred
async def test_a_clone_holds_the_snapshot_bytes_not_the_later_ones_and_is_thin(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "src"))
    source = daemon.uri("src")
    await write(source, 0x11, 0, 8 * MiB)
    _, snapshot = await driver.snapshot("src")
    await write(source, 0x22, 0, MiB)

    clone = await driver.clone(new_vdisk(daemon, "clone"), snapshot)
    assert clone.size == SIZE
    await assert_pattern(daemon.uri("clone"), 0x11, 0, 8 * MiB)
    await assert_pattern(source, 0x22, 0, MiB)
    # writes to either stay their own
    await write(daemon.uri("clone"), 0x99, 4 * MiB, MiB)
    await write(source, 0x33, 4 * MiB, MiB)
    await assert_pattern(daemon.uri("clone"), 0x99, 4 * MiB, MiB)
    await assert_pattern(daemon.uri("clone"), 0x11, 0, MiB)
    await assert_pattern(source, 0x33, 4 * MiB, MiB)

    shown = (await images.info(reactor, snapshot[0])).actual_size
    before_write = 2 * MiB  # the clone's own MiB and its qcow2 tables
    clone_space = (await images.info(reactor, clone.image)).actual_size
    assert shown >= 8 * MiB
    assert clone_space <= before_write, (clone_space, shown)


@pytest_twisted.ensureDeferred
async def test_a_template_child_reads_the_template_and_keeps_its_writes(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "base"))
    await write(daemon.uri("base"), 0x77, 0, 4 * MiB)
    template = await driver.set_as_template("base")
    assert template.template

    children = [await driver.create_from_template(template, new_vdisk(daemon, f"child{i}")) for i in range(2)]
    for child in children:
        await assert_pattern(daemon.uri(child.export), 0x77, 0, 4 * MiB)
    await write(daemon.uri("child0"), 0x01, 0, MiB)
    await assert_pattern(daemon.uri("child0"), 0x01, 0, MiB)
    await assert_pattern(daemon.uri("child1"), 0x77, 0, MiB)
    await assert_pattern(daemon.uri("base"), 0x77, 0, MiB)
    # the template is exported read-only
    code, output = await qemu_io(daemon.uri("base"), "write -P 0x02 0 4096")
    assert code != 0, output
    for child in children:
        assert (await images.info(reactor, child.image)).actual_size < 2 * MiB

    # a template's data cannot change: no snapshot, no rollback; a non-template has no children
    with pytest.raises(StorageError, match="template"):
        await driver.snapshot("base")
    with pytest.raises(StorageError, match="not a template"):
        await driver.create_from_template(children[1], new_vdisk(daemon, "grandchild"))


@pytest_twisted.ensureDeferred
async def test_removing_a_vdisk_drops_its_export_and_its_image(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    vdisk = await driver.create(new_vdisk(daemon, "gone"))
    await driver.remove("gone", delete_image=True)
    assert await driver.exports() == []
    assert not os.path.exists(vdisk.image)
    nodes = await driver.qmp.execute("query-named-block-nodes", {"flat": True})
    assert nodes == []
    with pytest.raises(StorageError, match="not served"):
        await driver.snapshot("gone")


@pytest_twisted.ensureDeferred
async def test_resize_grows_the_disk_its_clients_see(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "grow"))
    await write(daemon.uri("grow"), 0x42, 0, MiB)
    grown = await driver.resize("grow", 2 * SIZE)
    assert grown.size == 2 * SIZE
    await write(daemon.uri("grow"), 0x43, SIZE + MiB, MiB)
    await assert_pattern(daemon.uri("grow"), 0x42, 0, MiB)
    await assert_pattern(daemon.uri("grow"), 0x43, SIZE + MiB, MiB)


@pytest_twisted.ensureDeferred
async def test_a_consistent_snapshot_of_several_vdisks_rolls_back_together(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    for name in ("m1", "m2", "m3"):
        await driver.create(new_vdisk(daemon, name))
        await write(daemon.uri(name), 0x10, 0, MiB)
    taken = await driver.snapshot_together(["m1", "m2", "m3"])
    for name in ("m1", "m2", "m3"):
        await write(daemon.uri(name), 0x20, 0, MiB)
    for name, (_, snapshot) in taken.items():
        await driver.rollback(name, snapshot)
        await assert_pattern(daemon.uri(name), 0x10, 0, MiB)


@pytest_twisted.ensureDeferred
async def test_a_clone_served_by_another_daemon_shares_the_snapshot_images(daemon: Daemon) -> None:
    # a DISTRIBUTED vPool: both drivers see the directory; the source keeps its snapshot open as backing
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "shared"))
    await write(daemon.uri("shared"), 0x31, 0, 2 * MiB)
    _, snapshot = await driver.snapshot("shared")
    await write(daemon.uri("shared"), 0x32, 0, MiB)
    other = Daemon(short_dir())
    await other.start()
    try:
        assert other.driver is not None
        clone = await other.driver.clone(new_vdisk(daemon, "elsewhere"), snapshot)
        await assert_pattern(other.uri(clone.export), 0x31, 0, 2 * MiB)
        await write(other.uri(clone.export), 0x33, MiB, MiB)
        await assert_pattern(other.uri(clone.export), 0x33, MiB, MiB)
        # the source is still served and writable by its own daemon
        await write(daemon.uri("shared"), 0x34, MiB, MiB)
        await assert_pattern(daemon.uri("shared"), 0x34, MiB, MiB)
        await assert_pattern(daemon.uri("shared"), 0x32, 0, MiB)
    finally:
        other.stop()
        cleanup(other.directory)


@pytest_twisted.ensureDeferred
async def test_removing_a_snapshot_merges_it_and_the_data_and_other_snapshots_stay(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "merge"))
    uri = daemon.uri("merge")
    await write(uri, 0x01, 0, MiB)
    _, first = await driver.snapshot("merge")
    await write(uri, 0x02, MiB, MiB)
    _, second = await driver.snapshot("merge")
    await write(uri, 0x03, 2 * MiB, MiB)
    _, third = await driver.snapshot("merge")
    await write(uri, 0x04, 3 * MiB, MiB)

    changed = await driver.remove_snapshot("merge", second)
    merged = changed["merge"]
    assert second[0] not in merged.chain and not os.path.exists(second[0])
    assert len(merged.chain) == 2
    for offset, pattern in enumerate((0x01, 0x02, 0x03, 0x04)):
        await assert_pattern(uri, pattern, offset * MiB, MiB)
    # the later snapshot still holds what it held (the merged data moved into it), the earlier one too
    await driver.rollback("merge", without(third, second[0]))
    for offset, pattern in enumerate((0x01, 0x02, 0x03, 0x00)):
        await assert_pattern(uri, pattern, offset * MiB, MiB)
    await driver.rollback("merge", first)
    for offset, pattern in enumerate((0x01, 0x00)):
        await assert_pattern(uri, pattern, offset * MiB, MiB)

    # the newest snapshot merges into the top while the export stays up
    _, newest = await driver.snapshot("merge")
    await write(uri, 0x05, MiB, MiB)
    merged = (await driver.remove_snapshot("merge", newest))["merge"]
    assert merged.chain == first
    await assert_pattern(uri, 0x05, MiB, MiB)
    await assert_pattern(uri, 0x01, 0, MiB)


@pytest_twisted.ensureDeferred
async def test_a_snapshot_a_clone_sits_on_is_not_merged(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "based"))
    _, snapshot = await driver.snapshot("based")
    await driver.clone(new_vdisk(daemon, "on-it"), snapshot)
    with pytest.raises(StorageError, match="other images on it"):
        await driver.remove_snapshot("based", snapshot)
    assert os.path.exists(snapshot[0])


@pytest_twisted.ensureDeferred
async def test_snapshots_asked_at_once_of_one_vdisk_are_taken_one_after_the_other(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(new_vdisk(daemon, "busy"))
    await write(daemon.uri("busy"), 0x61, 0, MiB)
    results = await defer.gatherResults([defer.ensureDeferred(driver.snapshot("busy")) for _ in range(4)])
    chains = sorted((chain for _, chain in results), key=len)
    assert [len(c) for c in chains] == [1, 2, 3, 4]
    assert all(longer[1:] == shorter for shorter, longer in itertools.pairwise(chains))
    assert driver.served["busy"].chain == chains[-1]
    await write(daemon.uri("busy"), 0x62, 0, MiB)
    await driver.rollback("busy", chains[0])
    await assert_pattern(daemon.uri("busy"), 0x61, 0, MiB)


@pytest_twisted.ensureDeferred
async def test_creating_over_an_existing_vdisk_or_image_is_refused_and_its_data_kept(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    first = await driver.create(new_vdisk(daemon, "taken"))
    await write(daemon.uri("taken"), 0x71, 0, MiB)
    with pytest.raises(StorageError, match="already served"):
        await driver.create(new_vdisk(daemon, "taken"))
    with pytest.raises(FileExistsError, match="already exists"):
        await driver.create(VDisk(guid="other", image=first.image, size=SIZE))
    _, snapshot = await driver.snapshot("taken")
    with pytest.raises(FileExistsError):
        await driver.clone(VDisk(guid="other", image=first.image, size=0), snapshot)
    await assert_pattern(daemon.uri("taken"), 0x71, 0, MiB)
    assert [e["vdisk"] for e in await driver.exports()] == ["taken"]
