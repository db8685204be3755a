"""Statistics that are true: bytes written and stored move with real writes through NBD, the daemon's
process I/O moves, and the ``_ps`` rates follow the original's rules exactly."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from ovsd.dal.hybrids.unmeasured import zero_statistics
from ovsd.storage import statistics as st
from ovsd.storage.vdisk import VDisk
from ovsd.store.connection import Store
from tests.storage_support import Daemon, MiB, write

SIZE = 64 * MiB


def new_vdisk(d: Daemon, guid: str) -> VDisk:
    return VDisk(guid=guid, image=d.image(f"{guid}.qcow2"), size=SIZE)


async def sample(d: Daemon, tracker: st.WrittenTracker,
                 origins: dict[str, tuple[str, ...]] | None = None) -> dict[str, st.VDiskSample]:
    assert d.session is not None and d.driver is not None
    return await tracker.sample(d.session, d.driver.served.values(), origins)


@pytest_twisted.ensureDeferred
async def test_data_written_counts_distinct_bytes_written_through_nbd_and_stored_grows(daemon: Daemon) -> None:
    driver, session = daemon.driver, daemon.session
    assert driver is not None and session is not None
    await driver.create(new_vdisk(daemon, "vd1"))
    tracker = st.WrittenTracker()
    empty = (await sample(daemon, tracker))["vd1"]
    assert empty.data_written == 0
    assert 0 < empty.stored < MiB  # qcow2 header and tables only

    uri = daemon.uri("vd1")
    await write(uri, 0x11, 0, 3 * MiB)
    after = (await sample(daemon, tracker))["vd1"]
    assert after.data_written == 3 * MiB
    assert 3 * MiB <= after.stored - empty.stored < 3 * MiB + 512 * 1024

    # the same bytes again: nothing new is dirty, and nothing new is allocated
    await write(uri, 0x22, 0, MiB)
    again = (await sample(daemon, tracker))["vd1"]
    assert again.data_written == 3 * MiB
    assert again.stored == after.stored

    # a snapshot freezes the top; the old top's count stays, the new top counts its own writes, and the
    # snapshot's data still is the vDisk's stored data
    vdisk, snapshot = await driver.snapshot("vd1")
    await tracker.track(session, vdisk)
    await write(uri, 0x33, 0, MiB)
    later = (await sample(daemon, tracker))["vd1"]
    assert later.data_written == 4 * MiB
    assert later.stored >= after.stored + MiB

    # a clone made on the snapshot stores only what it writes itself, not the source's 3 MiB
    clone = await driver.clone(new_vdisk(daemon, "clone"), snapshot)
    await tracker.track(session, clone)
    await write(daemon.uri("clone"), 0x44, 8 * MiB, 2 * MiB)
    both = await sample(daemon, tracker, {"clone": snapshot})
    assert both["clone"].data_written == 2 * MiB
    assert 2 * MiB <= both["clone"].stored < 3 * MiB
    assert both["vd1"].data_written == 4 * MiB

    # the full statistics dictionary of the vDisk carries the measured bytes, every other counter 0
    stats = st.with_rates(both["vd1"].counters(), 100.0, None)
    assert stats["data_written"] == stats["data_transferred"] == 4 * MiB
    assert all(stats[k] == 0 for k in st.UNMEASURED_VDISK)
    assert set(stats) == set(zero_statistics(0))


@pytest_twisted.ensureDeferred
async def test_a_rollback_keeps_the_count_and_the_new_top_counts_on(daemon: Daemon) -> None:
    driver, session = daemon.driver, daemon.session
    assert driver is not None and session is not None
    await driver.create(new_vdisk(daemon, "vd2"))
    tracker = st.WrittenTracker()
    await sample(daemon, tracker)
    uri = daemon.uri("vd2")
    await write(uri, 0x11, 0, MiB)
    _, snapshot = await driver.snapshot("vd2")
    await sample(daemon, tracker)
    await write(uri, 0x22, 4 * MiB, MiB)
    await sample(daemon, tracker)
    await driver.rollback("vd2", snapshot)
    # the rolled-back top is closed: its MiB was written all the same
    assert (await sample(daemon, tracker))["vd2"].data_written == 2 * MiB
    await write(uri, 0x33, 0, 2 * MiB)
    assert (await sample(daemon, tracker))["vd2"].data_written == 4 * MiB
    # a vDisk no longer served is forgotten
    await driver.remove("vd2")
    assert await sample(daemon, tracker) == {}


@pytest_twisted.ensureDeferred
async def test_the_daemon_process_io_moves_with_writes(daemon: Daemon) -> None:
    driver, session = daemon.driver, daemon.session
    assert driver is not None and session is not None and daemon.process is not None
    await driver.create(new_vdisk(daemon, "vd3"))
    tracker = st.WrittenTracker()
    pid = daemon.process.pid
    before = await st.sample_driver(reactor, session, driver.served.values(), pid, tracker)
    assert before.io is not None
    await write(daemon.uri("vd3"), 0x5A, 0, 8 * MiB)  # flushed: it reached the disk
    after = await st.sample_driver(reactor, session, driver.served.values(), pid, tracker)
    assert after.io is not None
    grown = {k: after.counters()[k] - before.counters()[k] for k in st.DRIVER_MEASURED}
    assert grown["data_written"] >= 8 * MiB
    assert grown["write_operations"] > 0
    assert all(after.counters()[k] == 0 for k in st.UNMEASURED_DRIVER)
    assert after.stored >= 8 * MiB and after.vdisks["vd3"].data_written == 8 * MiB

    # a vPool with this one driver aggregates to the same counters
    assert st.aggregate([after.counters()]) == after.counters()

    # the process gone: no counters, no error
    daemon.kill()
    with pytest.raises(OSError):
        await st.read_process_io(reactor, pid)


def test_rates_follow_the_original_rules() -> None:
    first = st.with_rates(st.counters(data_written=1000, read_operations=10), 100.0, None)
    # no previous sample: every rate 0
    assert first["data_written_ps"] == first["operations_ps"] == 0
    assert first["timestamp"] == 100.0 and first["operations"] == 10

    second = st.with_rates(st.counters(data_written=3000, read_operations=30, write_operations=10), 104.0, first)
    assert second["data_written_ps"] == 500
    assert second["read_operations_ps"] == 5
    assert second["operations_ps"] == 7.5  # (40 - 10) / 4
    assert second["data_transferred_ps"] == 500
    assert second["cache_hits_ps"] == 0

    # the same instant again: the previous rates stand
    same = st.with_rates(st.counters(data_written=9000), 104.0, second)
    assert same["data_written_ps"] == 500 and same["operations_ps"] == 7.5

    # time going backwards: 0
    back = st.with_rates(st.counters(data_written=9000), 103.0, second)
    assert back["data_written_ps"] == 0 and back["read_operations_ps"] == 0

    # a counter that went down (a restarted daemon): never negative
    restarted = st.with_rates(st.counters(data_written=100), 110.0, second)
    assert restarted["data_written_ps"] == 0


def test_the_dictionary_is_the_seed_eras_and_counters_are_checked() -> None:
    assert set(st.with_rates(st.counters(), 5.0, None)) == set(zero_statistics(5.0))
    assert st.with_rates(st.counters(), 5.0, None) == zero_statistics(5.0)
    with pytest.raises(ValueError, match="stored"):
        st.counters(stored=1)


def test_aggregates_sum_their_parts_counters_not_their_rates() -> None:
    a = st.with_rates(st.counters(data_written=10, write_operations=1), 1.0, None)
    b = st.counters(data_written=5, data_read=7)
    total = st.aggregate([a, b])
    assert total == st.counters(data_written=15, write_operations=1, data_read=7)
    assert st.aggregate([]) == st.counters()


@pytest_twisted.ensureDeferred
async def test_each_object_keeps_its_previous_sample_until_its_ttl() -> None:
    clock = Clock()
    clock.advance(1000)
    samples = st.MemorySamples(clock)
    first = await st.statistics("vdisk:a", st.counters(data_read=100), clock.seconds(), samples, timeout=5)
    assert first["data_read_ps"] == 0
    clock.advance(2)
    second = await st.statistics("vdisk:a", st.counters(data_read=300), clock.seconds(), samples, timeout=5)
    assert second["data_read_ps"] == 100
    # another object has its own previous sample
    other = await st.statistics("vpool:b", st.counters(data_read=300), clock.seconds(), samples, timeout=5)
    assert other["data_read_ps"] == 0
    # kept ten times the dynamic's timeout, then gone: the rate starts over at 0
    clock.advance(51)
    late = await st.statistics("vdisk:a", st.counters(data_read=900), clock.seconds(), samples, timeout=5)
    assert late["data_read_ps"] == 0


@pytest_twisted.ensureDeferred
async def test_previous_samples_in_the_store_are_shared_and_expire(store: Store) -> None:
    samples = st.StoreSamples(store)
    await st.statistics("ovs:test:stats_previous", st.counters(data_written=10), 50.0, samples, timeout=5)
    # kept ten times the dynamic's timeout
    assert 45_000 < int(await store.execute("PTTL", "ovs:test:stats_previous")) <= 50_000
    # another process (another StoreSamples) sees it
    shared = await st.statistics("ovs:test:stats_previous", st.counters(data_written=30), 52.0,
                                 st.StoreSamples(store), timeout=5)
    assert shared["data_written_ps"] == 10
    await store.execute("SET", "ovs:test:garbage", "not json")
    assert await samples.get("ovs:test:garbage") is None


@pytest_twisted.ensureDeferred
async def test_every_new_top_counts_from_its_first_write_without_a_sample_in_between(daemon: Daemon) -> None:
    # the daemon puts the bitmap on each new top before it takes a write (the snapshot's own transaction;
    # before the export after a create, rollback or clone): no sample or track call is needed in between
    driver = daemon.driver
    assert driver is not None
    tracker = st.WrittenTracker()
    await driver.create(new_vdisk(daemon, "vd1"))
    uri = daemon.uri("vd1")
    await write(uri, 0x11, 0, MiB)
    _, snapshot = await driver.snapshot("vd1")
    await write(uri, 0x22, 0, MiB)
    assert (await sample(daemon, tracker))["vd1"].data_written == 2 * MiB

    await driver.rollback("vd1", snapshot)
    await write(uri, 0x33, 2 * MiB, MiB)
    clone = await driver.clone(new_vdisk(daemon, "clone"), snapshot)
    await write(daemon.uri("clone"), 0x44, 0, 2 * MiB)
    both = await sample(daemon, tracker, {"clone": snapshot})
    assert both["vd1"].data_written == 3 * MiB and both["clone"].data_written == 2 * MiB
    assert clone.guid == "clone"
