"""The storage statistics dynamics: what the nodes measured (pushed by their agents), with rates per object.

A node's agent pushes, every few seconds, the counters of each of its StorageDrivers (the daemon
process's I/O) and of each vDisk they serve (bytes written, from a dirty bitmap), each with the time it
was measured and an expiry (ovsd.agent.service, ovsd.storage.statistics). A vDisk answers its own
figures, a StorageDriver its process's; a vPool and a StorageRouter sum their StorageDrivers', a vMachine
its vDisks'. Each object computes its ``_ps`` rates against its own previous dictionary, as the
original's later releases did.

The rates run on the time the figures were measured, not the time they are read: bytes counted
between two measurements are divided by the time between those measurements, so a read just after a
push and one just before the next agree. A whole whose parts were measured at different times (nodes)
takes the latest. Nothing measured (no running driver, or its node stopped pushing): zeros at the
time of the read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ovsd.dal.hybrids import storagemeasure
from ovsd.storage import statistics as measuring
from ovsd.store import keys

#: the seed era's cache period of vDisk statistics (seconds); the previous sample is kept ten times as long
TIMEOUT = 5


async def measured(repo: Any, key: Callable[[str], str], guids: Sequence[str]) -> list[dict[str, Any] | None]:
    """What the nodes last pushed for these objects (None where nothing is measured now)."""
    if not guids:
        return []
    out: list[dict[str, Any] | None] = []
    for raw in await repo.store.execute("MGET", *[key(g) for g in guids]):
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            value = None
        out.append(value if isinstance(value, dict) else None)
    return out


async def answer(obj: Any, repo: Any, parts: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """The statistics dictionary of ``obj`` from its measured parts, its rates against its previous one."""
    present = [p for p in parts if p is not None]
    now = max(float(p.get("at") or 0) for p in present) if present else repo.now()
    counters = measuring.aggregate(p.get("counters") or {} for p in present)
    return await measuring.statistics(keys.statistics_previous(obj.kind, obj.guid), counters, now,
                                      measuring.StoreSamples(repo.store), TIMEOUT)


def of_vdisks(guids: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The statistics of an object made of the vDisks ``guids(obj, repo)`` lists (a vDisk, a vMachine)."""

    async def compute(obj: Any, repo: Any) -> dict[str, Any]:
        return await answer(obj, repo, await measured(repo, keys.vdisk_measured, list(await guids(obj, repo))))

    return compute


def of_drivers(guids: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """The statistics of an object made of the StorageDrivers ``guids(obj, repo)`` lists."""

    async def compute(obj: Any, repo: Any) -> dict[str, Any]:
        return await answer(obj, repo, await measured(repo, keys.driver_measured, list(await guids(obj, repo))))

    return compute


async def stored(repo: Any, vdisks: Sequence[Any]) -> int:
    """Bytes the vDisks' own images take: as their nodes measured it, else as seen from here (the files).

    Both count the same files (storagemeasure.own_files, ovsd.storage.node.own_allocation); the node's
    figure is there for the reader that cannot see them (a LOCAL vPool of another node).
    """
    found = await measured(repo, keys.vdisk_measured, [v.guid for v in vdisks])
    total = sum(int(m.get("stored") or 0) for m in found if m is not None)
    unmeasured = [v for v, m in zip(vdisks, found, strict=True) if m is None]
    return total + await storagemeasure.allocated(repo, [p for v in unmeasured
                                                         for p in storagemeasure.own_files(v.data)])
