"""Statistics that are true: what a qemu-storage-daemon really lets us measure, in the seed era's shape.

QEMU 7.2's exports count no I/O (fact sheet §4.3: ``query-blockstats`` stays 0 for NBD exports), so
only three things are measured; every other counter of the era's dictionary is 0, never made up.

**Per vDisk** (:class:`WrittenTracker`, one per DriverDaemon's node, sampled by the agent):

- ``stored``: bytes allocated on disk by the images that are the vDisk's own (``actual-size`` of each
  in ``query-named-block-nodes``): its writable top plus its snapshots, not the images it sits on
  because it was cloned from a snapshot or made from a template (those are the source's ``stored``,
  as a volumedriver clone's ``stored`` did not count its parent's data). qcow2 tables count: an empty
  vDisk stores ~200 KiB. ``stored`` is not in the seed dictionary: it feeds ``info.stored`` and
  ``stored_data``. The agent replaces it with the allocation of every file of the vDisk's own
  (:func:`ovsd.storage.node.own_allocation`), which also counts snapshot layers a rollback left
  off the open chain.
- ``data_written``: bytes marked in a dirty bitmap (``block-dirty-bitmap-add``, not persistent) on the
  vDisk's top node. It counts **distinct** bytes dirtied (at the bitmap's granularity, 64 KiB), not
  bytes sent: writing the same MiB twice counts 1 MiB. A snapshot or rollback puts a new top under
  the export; the old top's count is kept and the daemon puts the bitmap on the new top before it takes
  a write (in the snapshot's own transaction; before the export after a create, rollback, clone or
  replay), so no write is missed; a top without one gets it at the next :meth:`WrittenTracker.sample`.
  A daemon restart loses its bitmaps: the tracker keeps what it had last read, writes after
  that read and before the restart are lost. A new tracker counts what the bitmaps of the vDisk's open
  images (its top and the tops its snapshots froze) hold. A rollback closes the top it drops: writes to
  it after the last sample are not counted. Merging a snapshot away
  (``block-stream``) writes into the image above it, and those bytes count as written.
- every other counter: 0 (:data:`UNMEASURED_VDISK`).

**Per StorageDriver** (:func:`read_process_io`): the daemon process's ``/proc/<pid>/io``:
``read_bytes → data_read``, ``write_bytes → data_written`` (what reached the storage layer: page
cache hits are not reads, writes count when written back), ``syscr → read_operations``,
``syscw → write_operations`` (system calls, NBD and QMP socket calls included, not guest requests).
They restart at 0 with each new daemon process. Every other counter: 0 (:data:`UNMEASURED_DRIVER`).

**Aggregates**: a vPool or a StorageRouter sums the counters of its StorageDrivers, a vMachine those of
its vDisks (:func:`aggregate`); each then computes its own ``_ps`` from its own previous sample, as
the original's later releases did (the seed era summed the parts' rates instead).

**Rates** (:func:`with_rates`), exactly as the original: the previous dictionary is kept (TTL = the
dynamic's timeout x 10, at least 10 s); ``delta`` = now - previous timestamp (no previous: 0); ``delta < 0`` → 0;
``delta == 0`` → the previous ``K_ps`` (or 0); else ``max(0, (K - previous K) / delta)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet import threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ovsd.dal.hybrids.unmeasured import STATISTICS_COUNTERS, STATISTICS_SUMS
from ovsd.storage.daemon import WRITTEN_BITMAP, WRITTEN_GRANULARITY
from ovsd.storage.qmp import QMPError, QMPProtocol
from ovsd.storage.vdisk import Chain, VDisk, node_name

log = Logger()

#: the seed era's counters, its sums, and every key that has a ``_ps`` rate
STAT_COUNTERS: tuple[str, ...] = STATISTICS_COUNTERS
STAT_SUMS: Mapping[str, tuple[str, ...]] = STATISTICS_SUMS
STAT_KEYS: tuple[str, ...] = (*STAT_COUNTERS, *STAT_SUMS)

#: counters a vDisk has no source for (always 0)
UNMEASURED_VDISK = tuple(k for k in STAT_COUNTERS if k != "data_written")
#: counters a StorageDriver has no source for (always 0)
DRIVER_MEASURED = ("data_read", "data_written", "read_operations", "write_operations")
UNMEASURED_DRIVER = tuple(k for k in STAT_COUNTERS if k not in DRIVER_MEASURED)

#: the dirty bitmap each vDisk's top carries (the daemon adds it with every new top), and its granularity
BITMAP = WRITTEN_BITMAP
GRANULARITY = WRITTEN_GRANULARITY


# -- the dictionary and its rates ----------------------------------------------------------------------

def counters(**measured: int) -> dict[str, int]:
    """The era's 14 counters: the measured ones given, every other one 0."""
    unknown = set(measured) - set(STAT_COUNTERS)
    if unknown:
        raise ValueError(f"not a statistics counter: {', '.join(sorted(unknown))}")
    return {key: int(measured.get(key, 0)) for key in STAT_COUNTERS}


def aggregate(parts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The counters of a whole (vPool, StorageDriver, StorageRouter, vMachine): the sum of its parts'.

    Parts may be counter dicts or full statistics dicts (their sums and rates are ignored).
    """
    total = dict.fromkeys(STAT_COUNTERS, 0)
    for part in parts:
        for key in STAT_COUNTERS:
            total[key] += int(part.get(key, 0) or 0)
    return total


def with_rates(current: Mapping[str, Any], now: float, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full statistics dictionary: counters, sums, each ``_ps`` rate, and ``timestamp = now``."""
    out: dict[str, Any] = {key: int(current.get(key, 0) or 0) for key in STAT_COUNTERS}
    for name, parts in STAT_SUMS.items():
        out[name] = sum(out[p] for p in parts)
    out["timestamp"] = now
    before = previous or {}
    delta = now - float(before.get("timestamp", now))
    for key in STAT_KEYS:
        rate = f"{key}_ps"
        if delta < 0:
            out[rate] = 0
        elif delta == 0:
            out[rate] = before.get(rate, 0)
        else:
            out[rate] = max(0, (out[key] - int(before.get(key, 0) or 0)) / delta)
    return out


class PreviousSamples(Protocol):
    """Where each object's previous statistics dictionary waits for the next computation."""

    async def get(self, key: str) -> Mapping[str, Any] | None: ...

    async def put(self, key: str, sample: Mapping[str, Any], ttl: float) -> None: ...


@dataclass
class MemorySamples:
    """Previous samples in this process, each forgotten ``ttl`` seconds after it was kept."""

    clock: IReactorTime
    kept: dict[str, tuple[float, Mapping[str, Any]]] = field(default_factory=dict)

    async def get(self, key: str) -> Mapping[str, Any] | None:
        entry = self.kept.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock.seconds():
            del self.kept[key]
            return None
        return entry[1]

    async def put(self, key: str, sample: Mapping[str, Any], ttl: float) -> None:
        self.kept[key] = (self.clock.seconds() + ttl, dict(sample))


class _Executes(Protocol):
    async def execute(self, *args: Any) -> Any: ...


@dataclass
class StoreSamples:
    """Previous samples in the store (JSON under the key the caller names, with the TTL), shared by nodes."""

    store: _Executes

    async def get(self, key: str) -> Mapping[str, Any] | None:
        raw = await self.store.execute("GET", key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def put(self, key: str, sample: Mapping[str, Any], ttl: float) -> None:
        await self.store.execute("SET", key, json.dumps(dict(sample)), "PX", max(1, int(ttl * 1000)))


async def statistics(key: str, current: Mapping[str, Any], now: float, samples: PreviousSamples,
                     timeout: float) -> dict[str, Any]:
    """The statistics dictionary of one object, its rates against its previous sample (then kept).

    ``key`` names the object's previous sample (the original: ``<object key>_statistics_previous``),
    ``timeout`` is the dynamic's cache timeout (the sample is kept ten times as long).
    """
    out = with_rates(current, now, await samples.get(key))
    await samples.put(key, out, max(timeout, 1.0) * 10)
    return out


# -- what a StorageDriver's daemon measures -------------------------------------------------------------

@dataclass(frozen=True)
class ProcessIO:
    """The I/O counters of one process (``/proc/<pid>/io``)."""

    read_bytes: int
    write_bytes: int
    syscr: int
    syscw: int
    rchar: int = 0
    wchar: int = 0

    @classmethod
    def parse(cls, text: str) -> ProcessIO:
        fields = {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if value.strip().isdigit():
                fields[name.strip()] = int(value)
        return cls(read_bytes=fields.get("read_bytes", 0), write_bytes=fields.get("write_bytes", 0),
                   syscr=fields.get("syscr", 0), syscw=fields.get("syscw", 0),
                   rchar=fields.get("rchar", 0), wchar=fields.get("wchar", 0))

    def counters(self) -> dict[str, int]:
        """The StorageDriver's counters (every unmeasured one 0)."""
        return counters(data_read=self.read_bytes, data_written=self.write_bytes,
                        read_operations=self.syscr, write_operations=self.syscw)


def _read_io(pid: int) -> ProcessIO:
    with open(f"/proc/{int(pid)}/io") as f:
        return ProcessIO.parse(f.read())


async def read_process_io(reactor: Any, pid: int) -> ProcessIO:
    """``/proc/<pid>/io`` of a daemon, read in a thread; OSError when the process is gone."""
    result: ProcessIO = await threads.deferToThreadPool(reactor, reactor.getThreadPool(), _read_io, pid)
    return result


@dataclass(frozen=True)
class VDiskSample:
    """What was measured of one vDisk."""

    guid: str
    #: bytes allocated by its own images (top and snapshots)
    stored: int
    #: distinct bytes dirtied since its tracker started
    data_written: int

    def counters(self) -> dict[str, int]:
        return counters(data_written=self.data_written)

    def as_dict(self) -> dict[str, Any]:
        return {"guid": self.guid, "stored": self.stored, "data_written": self.data_written}


@dataclass
class _Written:
    """One vDisk's count: what bitmaps now gone had counted, and the last count of each live one."""

    gone: int = 0
    live: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.gone + sum(self.live.values())


def own_images(vdisk: VDisk, origin: Chain = ()) -> list[str]:
    """The images whose allocation is the vDisk's ``stored``: its top and chain, less what it was made on."""
    shared = set(origin)
    return [path for path in vdisk.as_backing if path not in shared]


class WrittenTracker:
    """Keeps a dirty bitmap on the top of every vDisk a daemon serves and turns them into samples.

    One per DriverDaemon session is enough; keeping one across a daemon's restarts keeps the counts
    read before it (see the module docstring for what is lost).
    """

    def __init__(self, granularity: int = GRANULARITY) -> None:
        self.granularity = granularity
        self._written: dict[str, _Written] = {}

    async def track(self, session: QMPProtocol, vdisk: VDisk) -> None:
        """Start counting on the vDisk's current top now (call it right after a create, snapshot, rollback)."""
        if vdisk.template:
            return
        await self._add_bitmap(session, node_name(vdisk.image))
        self._written.setdefault(vdisk.guid, _Written()).live.setdefault(node_name(vdisk.image), 0)

    async def sample(self, session: QMPProtocol, served: Iterable[VDisk],
                     origins: Mapping[str, Chain] | None = None) -> dict[str, VDiskSample]:
        """One sample of every served vDisk (one ``query-named-block-nodes``; bitmaps added where missing).

        ``origins``: for a clone or template child, the chain it was made on (not its ``stored``).
        """
        vdisks = list(served)
        nodes = await session.execute("query-named-block-nodes", {"flat": True})
        allocated: dict[str, int] = {}
        counted: dict[str, int] = {}
        for node in nodes:
            name = str(node.get("node-name", ""))
            image = node.get("image") or {}
            allocated[name] = int(image.get("actual-size", 0) or 0)
            for bitmap in node.get("dirty-bitmaps") or ():
                if bitmap.get("name") == BITMAP:
                    counted[name] = int(bitmap.get("count", 0))
        out: dict[str, VDiskSample] = {}
        for vdisk in vdisks:
            written = self._written.setdefault(vdisk.guid, _Written())
            top = node_name(vdisk.image)
            for name in list(written.live):
                if name in counted:
                    written.live[name] = counted[name]
                else:
                    # closed, or its daemon restarted: what it had counted is kept
                    written.gone += written.live.pop(name)
            mine = own_images(vdisk, (origins or {}).get(vdisk.guid, ()))
            for name in map(node_name, mine):
                if name in counted:
                    # the daemon put the bitmap on each top it made (create, snapshot, rollback, clone,
                    # replay), and a top a snapshot froze keeps its count: one replaced before any sample
                    # saw it is counted too
                    written.live[name] = counted[name]
            if top not in written.live and not vdisk.template and top in allocated:
                if await self._add_bitmap(session, top):
                    written.live[top] = 0
            stored = sum(allocated.get(node_name(path), 0) for path in mine)
            out[vdisk.guid] = VDiskSample(vdisk.guid, stored, written.total)
        for guid in set(self._written) - {v.guid for v in vdisks}:
            del self._written[guid]
        return out

    async def _add_bitmap(self, session: QMPProtocol, node: str) -> bool:
        try:
            await session.execute("block-dirty-bitmap-add",
                                  {"node": node, "name": BITMAP, "granularity": self.granularity})
        except QMPError as e:
            if "already exists" in e.desc:
                return True
            # the node went away between the query and now (a rollback): the next sample adds it
            log.info("no dirty bitmap on {node}: {error}", node=node, error=e.desc)
            return False
        return True


@dataclass(frozen=True)
class DriverSample:
    """One sample of a StorageDriver: its process's I/O and each of its vDisks."""

    io: ProcessIO | None
    vdisks: dict[str, VDiskSample]

    def counters(self) -> dict[str, int]:
        return self.io.counters() if self.io is not None else counters()

    @property
    def stored(self) -> int:
        return sum(v.stored for v in self.vdisks.values())

    def as_dict(self) -> dict[str, Any]:
        """What the agent pushes for the driver (JSON): its counters, its stored bytes, each vDisk's sample."""
        return {"counters": self.counters(), "stored": self.stored,
                "vdisks": {guid: sample.as_dict() for guid, sample in self.vdisks.items()}}


async def sample_driver(reactor: Any, session: QMPProtocol, served: Iterable[VDisk], pid: int | None,
                        tracker: WrittenTracker, origins: Mapping[str, Chain] | None = None) -> DriverSample:
    """Everything measured of one StorageDriver now (its process gone or unknown: ``io`` None)."""
    vdisks = await tracker.sample(session, served, origins)
    io = None
    if pid is not None:
        try:
            io = await read_process_io(reactor, pid)
        except OSError as e:
            log.info("no I/O counters of storagedriver process {pid}: {error}", pid=pid, error=str(e))
    return DriverSample(io, vdisks)
