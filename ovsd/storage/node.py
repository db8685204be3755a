"""This node's StorageDrivers as the tasks see them: the running daemons, their replay, one change at a time.

The agent's supervisor starts a qemu-storage-daemon per StorageDriver of this node (the launcher is
:attr:`NodeStorage.launcher`); once a daemon answers, :meth:`NodeStorage.ready` replays every vDisk the
store says that driver serves, and only then does the driver count as RUNNING. Tasks get the daemon of a
driver with :meth:`NodeStorage.daemon` (waiting for a restart in progress) and change one vDisk at a time
(:meth:`NodeStorage.vdisk_lock`): the daemon's change and the store's record of it must not be reordered by
a second task on the same vDisk.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.logger import Logger

from ovsd.storage import images
from ovsd.storage.daemon import DriverDaemon
from ovsd.storage.launcher import StorageDaemonLauncher
from ovsd.storage.qmp import QMPDisconnected, QMPError, QMPTimeout
from ovsd.storage.statistics import DriverSample, WrittenTracker, sample_driver
from ovsd.storage.vdisk import Chain, VDisk

if TYPE_CHECKING:
    from ovsd.dal.repository import Repository

log = Logger()

#: the vPool types a qemu-storage-daemon serves (images in a directory); the S3 ones have no block backend
BLOCK_TYPES = ("LOCAL", "DISTRIBUTED")
#: how long a task waits for a driver that is (re)starting
DAEMON_WAIT = 30.0


class DriverUnavailable(RuntimeError):
    """The StorageDriver's daemon is not running on this node (not started, failed, or still replaying)."""


def served_vdisks(vdisks: list[Any], storagedriver_guid: str) -> list[VDisk]:
    """The descriptions of the stored vDisks a StorageDriver serves (objects with a ``volume`` record)."""
    return [VDisk.from_dict(v.data["volume"]) for v in vdisks
            if v.data.get("storagedriver_guid") == storagedriver_guid and v.data.get("volume")]


class NodeStorage:
    """The daemons of this node's StorageDrivers, by StorageDriver guid."""

    def __init__(self, reactor: Any, repository: Repository, run_dir: str, tool_search: str | None = None) -> None:
        self.reactor = reactor
        self.repository = repository
        self.run_dir = run_dir
        #: where the QEMU programs are looked for (None: PATH, then /usr/bin)
        self.tool_search = tool_search
        self.launcher = StorageDaemonLauncher(reactor, run_dir, on_ready=self.ready)
        self.daemons: dict[str, DriverDaemon] = {}
        #: the vDisks the last replay of each driver could not serve (vDisk guid → why)
        self.replay_failures: dict[str, dict[str, str]] = {}
        self.replayed_at: dict[str, float] = {}
        self._waiting: dict[str, list[defer.Deferred[DriverDaemon]]] = {}
        self._locks: dict[str, defer.DeferredLock] = {}
        #: one per driver, kept across its daemon's restarts (what it counted before one is kept)
        self.trackers: dict[str, WrittenTracker] = {}

    # --- the daemons -----------------------------------------------------------------------------------
    async def ready(self, storagedriver_guid: str, daemon: DriverDaemon) -> None:
        """A (re)started daemon answers: serve every vDisk of its driver again, then hand it to the tasks.

        Raising makes the supervisor kill the daemon and try again (it is not RUNNING without its vDisks).
        """
        self.daemons.pop(storagedriver_guid, None)
        stored = await self.repository.load_all("vdisk")
        vdisks = served_vdisks(stored, storagedriver_guid)
        started = time.monotonic()
        failures = await daemon.replay(vdisks)
        self.replay_failures[storagedriver_guid] = failures
        self.replayed_at[storagedriver_guid] = time.time()
        for guid, why in failures.items():
            log.error("storagedriver {sd}: vDisk {vdisk} not served after the restart: {why}",
                      sd=storagedriver_guid, vdisk=guid, why=why)
        log.info("storagedriver {sd}: {count} vDisks served in {seconds:.3f} s", sd=storagedriver_guid,
                 count=len(vdisks) - len(failures), seconds=time.monotonic() - started)
        self.daemons[storagedriver_guid] = daemon
        for waiter in self._waiting.pop(storagedriver_guid, []):
            if not waiter.called:
                waiter.callback(daemon)

    def running(self, storagedriver_guid: str) -> DriverDaemon | None:
        daemon = self.daemons.get(storagedriver_guid)
        if daemon is not None and daemon.qmp.lost is not None:
            # the daemon died: the supervisor restarts it and ``ready`` hands over the new one
            del self.daemons[storagedriver_guid]
            return None
        return daemon

    async def daemon(self, storagedriver_guid: str, timeout: float = DAEMON_WAIT) -> DriverDaemon:
        """The running daemon of a StorageDriver of this node, waiting up to ``timeout`` for a (re)start."""
        found = self.running(storagedriver_guid)
        if found is not None:
            return found
        waiter: defer.Deferred[DriverDaemon] = defer.Deferred()
        self._waiting.setdefault(storagedriver_guid, []).append(waiter)
        waiter.addTimeout(timeout, self.reactor)
        try:
            return await waiter
        except defer.TimeoutError:
            raise DriverUnavailable(f"the StorageDriver {storagedriver_guid} is not running on this node "
                                    f"(waited {timeout:g} s)") from None
        finally:
            waiting = self._waiting.get(storagedriver_guid, [])
            if waiter in waiting:
                waiting.remove(waiter)

    def forget(self, storagedriver_guid: str) -> None:
        """The driver is gone (removed from the model): drop its daemon and fail its waiters."""
        self.daemons.pop(storagedriver_guid, None)
        self.replay_failures.pop(storagedriver_guid, None)
        self.trackers.pop(storagedriver_guid, None)
        for waiter in self._waiting.pop(storagedriver_guid, []):
            if not waiter.called:
                waiter.errback(DriverUnavailable(f"the StorageDriver {storagedriver_guid} was removed"))

    # --- what is measured ------------------------------------------------------------------------------
    def tracker(self, storagedriver_guid: str) -> WrittenTracker:
        return self.trackers.setdefault(storagedriver_guid, WrittenTracker())

    async def sample(self, pids: Mapping[str, int | None]) -> dict[str, DriverSample]:
        """One sample of every running driver of this node (a driver whose daemon fails to answer is left out).

        A vDisk's ``stored`` is the allocation of every file of its own in its directory (its top, and the
        layers of its snapshots, also those a rollback left off its current chain), as
        ``ovsd.dal.hybrids.storagemeasure`` counts it when the files are visible to the reader.
        """
        out: dict[str, DriverSample] = {}
        for guid in list(self.daemons):
            daemon = self.running(guid)
            if daemon is None:
                continue
            served = list(daemon.served.values())
            try:
                sample = await sample_driver(self.reactor, daemon.qmp, served, pids.get(guid), self.tracker(guid),
                                             {v.guid: origin(v) for v in served})
            except (QMPError, QMPDisconnected, QMPTimeout) as e:
                log.info("storagedriver {sd} not sampled: {error}", sd=guid, error=str(e))
                continue
            stored = await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), own_allocation,
                                                     served)
            vdisks = {g: replace(v, stored=stored.get(g, v.stored)) for g, v in sample.vdisks.items()}
            out[guid] = replace(sample, vdisks=vdisks)
        return out

    def check_tools(self) -> None:
        """MissingTool (naming the Debian package) unless this node has the QEMU programs a vPool needs."""
        for tool in ("qemu-storage-daemon", "qemu-img"):
            images.tool_path(tool, self.tool_search)

    # --- one change of a vDisk at a time ---------------------------------------------------------------
    @asynccontextmanager
    async def vdisk_lock(self, *guids: str) -> AsyncIterator[None]:
        names = sorted(set(guids))
        locks = [self._locks.setdefault(name, defer.DeferredLock()) for name in names]
        for lock in locks:
            await lock.acquire()
        try:
            yield
        finally:
            for name, lock in zip(names, locks, strict=True):
                lock.release()
                if not lock.locked and not lock.waiting and self._locks.get(name) is lock:
                    del self._locks[name]


def origin(vdisk: VDisk) -> Chain:
    """The images a vDisk was made on (a clone's snapshot, a template): not its own, every file of its own is
    named after it (``<guid>.qcow2``, ``<guid>.<id>.qcow2``)."""
    return tuple(p for p in vdisk.chain if not _own(vdisk.guid, p))


def _own(guid: str, path: str) -> bool:
    return os.path.basename(path).startswith(guid + ".")


def own_allocation(vdisks: Iterable[VDisk]) -> dict[str, int]:
    """Bytes on disk of each vDisk's own files (one directory listing per directory; run it in a thread)."""
    by_directory: dict[str, set[str]] = {}
    for vdisk in vdisks:
        by_directory.setdefault(os.path.dirname(vdisk.image), set()).add(vdisk.guid)
    out: dict[str, int] = {}
    for directory, guids in by_directory.items():
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            guid = entry.name.split(".", 1)[0]
            if guid not in guids:
                continue
            try:
                out[guid] = out.get(guid, 0) + entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue  # removed meanwhile
    return out


def driver_run_dir(data_dir: str) -> str:
    """Where the daemons' sockets live: short enough for a unix socket path under most data dirs."""
    return os.path.join(data_dir, "storagedrivers")
