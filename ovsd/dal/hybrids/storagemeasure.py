"""What the storage dynamics measure: image allocation on disk, the vDisks a driver or vPool serves.

Sizes come from the filesystem (``st_blocks``), read in the reactor's thread pool. A vDisk counts the
files that are its own (its top and the snapshot layers it made); the layers it shares with a parent
(a clone's snapshot, a template) are counted by their owner, so sums over a vPool count every byte once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from twisted.internet import threads


def _allocated(paths: list[str]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_blocks * 512
        except OSError:
            continue  # not visible from this node (a LOCAL vPool of another node), or gone meanwhile
    return total


def own_files(data: dict[str, Any]) -> list[str]:
    """The image files a stored vDisk made itself: its top, and the layers of its own snapshots."""
    volume = data.get("volume") or {}
    guid = str(volume.get("guid") or "")
    files: set[str] = set()
    if volume.get("image"):
        files.add(str(volume["image"]))
    chains: list[Iterable[str]] = [volume.get("chain") or []]
    chains += [record.get("chain") or [] for record in data.get("snapshot_records") or []]
    for chain in chains:
        files.update(p for p in chain if guid and os.path.basename(p).startswith(guid))
    return sorted(files)


async def allocated(repo: Any, paths: list[str]) -> int:
    """Bytes the files take on disk, summed (0 for a file this node cannot see)."""
    if not paths:
        return 0
    reactor = repo.reactor
    return int(await threads.deferToThreadPool(reactor, reactor.getThreadPool(), _allocated, paths))


async def filesystem_size(repo: Any, path: str) -> int:
    """The size of the filesystem holding ``path`` (0 when it cannot be seen from here)."""

    def size() -> int:
        try:
            st = os.statvfs(path)
        except OSError:
            return 0
        return st.f_blocks * st.f_frsize

    reactor = repo.reactor
    return int(await threads.deferToThreadPool(reactor, reactor.getThreadPool(), size))
