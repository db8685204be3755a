"""The vDisks one qemu-storage-daemon serves: open, export over NBD, snapshot, roll back, clone, replay.

**Snapshot mechanism: external qcow2 overlays, not internal snapshots.** A qcow2 internal snapshot
cannot be a backing file, so a clone of one is a full copy (``qemu-img convert``): its time and its
new space grow with the data (512 MiB copied for a 4 GiB disk holding 512 MiB, against a budget of
500 ms and 4 MiB). With overlays a snapshot freezes the vDisk's current top image and puts a new,
empty top on it (``blockdev-snapshot``: the export follows to the new top at once, no downtime);
the snapshot *is* the frozen image and its chain, which never changes again, so:

- a clone or a template child is a new top on that chain (``qemu-img create -b``, ~20 ms, ~200 KiB,
  whatever the size of the disk);
- a rollback is a new empty top on the snapshot's chain, swapped in for the export (the old top, the
  writes since the snapshot, is dropped; later snapshots stay, the chains form a tree);
- what it costs: every snapshot adds one file to the vDisk's chain (reads of data written long ago
  walk the chain's tables; the daemon holds one node per image), and removing a snapshot that others
  sit on means merging its image into theirs (``block-stream``), work proportional to its data.

Every image file has one node (named from its path, :func:`node_name`); a read-only image shared by
several tops (a template, a snapshot with clones) is opened once. The daemon keeps nothing across a
restart: :meth:`DriverDaemon.replay` opens and exports a list of vDisk descriptions again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorProcess
from twisted.logger import Logger

from ovsd.storage import images
from ovsd.storage.qmp import QMPError, QMPProtocol
from ovsd.storage.vdisk import Chain, ImageOptions, VDisk, export_id, new_top, node_name

#: the dirty bitmap on every writable top: what ``data_written`` counts (ovsd.storage.statistics)
WRITTEN_BITMAP = "ovsd-written"
#: its granularity, the unit ``data_written`` grows by (QEMU's default for qcow2 is the cluster size)
WRITTEN_GRANULARITY = 64 * 1024

log = Logger()

#: how long a hard export removal may take to report BLOCK_EXPORT_DELETED
EXPORT_GONE_TIMEOUT = 10.0
#: how long merging a snapshot away may take (it copies the snapshot's own data)
STREAM_TIMEOUT = 3600.0


class StorageError(RuntimeError):
    """A vDisk operation the daemon cannot do (unknown vDisk, a template written to, …)."""


@dataclass
class _Node:
    """One image the daemon has open."""

    name: str
    backing: str | None
    read_only: bool


P = ParamSpec("P")
R = TypeVar("R")


def _per_vdisk(method: Callable[Concatenate[DriverDaemon, Any, P], Awaitable[R]],
               ) -> Callable[Concatenate[DriverDaemon, Any, P], Awaitable[R]]:
    """Run the method alone on its vDisk(s) (first argument: a guid or guids), qemu-img steps included:
    two snapshots of one vDisk at once would both freeze the same top."""

    @functools.wraps(method)
    async def alone(self: DriverDaemon, guids: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        names = sorted({guids} if isinstance(guids, str) else set(guids))
        locks = [self._vdisk_locks.setdefault(name, defer.DeferredLock()) for name in names]
        for lock in locks:
            await lock.acquire()
        try:
            return await method(self, guids, *args, **kwargs)
        finally:
            for name, lock in zip(names, locks, strict=True):
                lock.release()
                if not lock.locked and not lock.waiting and self._vdisk_locks.get(name) is lock:
                    del self._vdisk_locks[name]

    return alone


class DriverDaemon:
    """The vDisks served by one qemu-storage-daemon, through its QMP session.

    Changes of the daemon's block graph are serialised (one lock); qemu-img work for a change runs
    before it takes the lock where it can. Every method that changes a vDisk returns its new
    description, which the caller stores: it is what ``replay`` needs after a restart.
    """

    def __init__(self, session: QMPProtocol, reactor: IReactorProcess,
                 options: ImageOptions | None = None) -> None:
        self.qmp = session
        self.reactor = reactor
        self.options = options or ImageOptions()
        self.served: dict[str, VDisk] = {}
        self._open: dict[str, _Node] = {}
        self._lock = defer.DeferredLock()
        self._vdisk_locks: dict[str, defer.DeferredLock] = {}

    # -- serving -------------------------------------------------------------------------------------

    async def create(self, vdisk: VDisk) -> VDisk:
        """Make the vDisk's top image (on its chain, if any), open and export it."""
        if vdisk.guid in self.served:
            raise StorageError(f"vDisk {vdisk.guid} is already served")
        backing = vdisk.chain[0] if vdisk.chain else None
        await images.create(self.reactor, vdisk.image, vdisk.size, backing=backing)
        try:
            await self.add(vdisk)
        except Exception:
            await images.remove(self.reactor, [vdisk.image])
            raise
        return vdisk

    async def add(self, vdisk: VDisk) -> None:
        """Open an existing vDisk (its chain first, shared nodes reused) and export it."""
        async with self._lock:
            if vdisk.guid in self.served:
                raise StorageError(f"vDisk {vdisk.guid} is already served")
            try:
                await self._open_chain(vdisk.chain)
                await self._open_image(vdisk.image, vdisk.chain[0] if vdisk.chain else None, vdisk.template,
                                       vdisk.cache_direct)
                if not vdisk.template:
                    await self._count_writes(vdisk.image)
                await self._export(vdisk)
            except Exception:
                await self._collect()
                raise
            self.served[vdisk.guid] = vdisk

    @_per_vdisk
    async def remove(self, guid: str, delete_image: bool = False) -> VDisk:
        """Stop serving a vDisk (clients dropped); its image is deleted too when asked."""
        async with self._lock:
            vdisk = self._served(guid)
            await self._unexport(vdisk)
            del self.served[guid]
            await self._collect()
        if delete_image:
            await images.remove(self.reactor, [vdisk.image])
        return vdisk

    async def exports(self) -> list[dict[str, Any]]:
        """What the daemon exports now: ``{"id", "node", "vdisk"}`` (vdisk None for one ovsd did not make)."""
        by_id = {export_id(v.guid): v.guid for v in self.served.values()}
        answer = await self.qmp.execute("query-block-exports")
        return [{"id": e["id"], "node": e["node-name"], "vdisk": by_id.get(e["id"])} for e in answer]

    async def replay(self, vdisks: Iterable[VDisk]) -> dict[str, str]:
        """Open and export every vDisk of a fresh daemon; returns what failed (vDisk guid → why).

        Templates come first; every command is sent without waiting for the one before (QMP runs them
        in order), so a thousand vDisks cost one round trip each, not three.
        """
        ordered = sorted(vdisks, key=lambda v: (not v.template, len(v.chain)))
        failures: dict[str, str] = {}
        async with self._lock:
            pending: list[tuple[VDisk, list[defer.Deferred[Any]]]] = []
            for vdisk in ordered:
                if vdisk.guid in self.served:
                    continue
                sent: list[defer.Deferred[Any]] = []
                for path, backing in _bottom_up(vdisk.as_backing):
                    if path not in self._open:
                        read_only = path != vdisk.image or vdisk.template
                        direct = vdisk.cache_direct if path == vdisk.image else None
                        sent.append(self._send_open(path, backing, read_only, direct))
                        if not read_only:
                            # counted from the first write the export takes, not from the next sample
                            sent.append(self.qmp.execute("block-dirty-bitmap-add", _bitmap(path)))
                sent.append(self.qmp.execute("block-export-add", self._export_arguments(vdisk)))
                pending.append((vdisk, sent))
                self.served[vdisk.guid] = vdisk
            for vdisk, sent in pending:
                results = await defer.DeferredList(sent, consumeErrors=True)
                for ok, value in results:
                    if not ok:
                        failures[vdisk.guid] = value.getErrorMessage()
                        break
            for guid in failures:
                self.served.pop(guid, None)
            await self._collect()
        if failures:
            log.warn("replay: {failed} of {total} vDisks not served", failed=len(failures), total=len(ordered))
        return failures

    # -- snapshots, rollback, clones, templates ----------------------------------------------------

    async def snapshot(self, guid: str) -> tuple[VDisk, Chain]:
        """Freeze the vDisk's data now: returns its new description and the snapshot (a chain)."""
        (vdisk, chain), = (await self.snapshot_together([guid])).values()
        return vdisk, chain

    @_per_vdisk
    async def snapshot_together(self, guids: Sequence[str]) -> dict[str, tuple[VDisk, Chain]]:
        """One snapshot of several vDisks at the same instant (one QMP ``transaction``)."""
        vdisks = [self._served(guid) for guid in guids]
        for vdisk in vdisks:
            if vdisk.template:
                raise StorageError(f"vDisk {vdisk.guid} is a template: its data cannot change, nothing to snapshot")
        tops = {v.guid: new_top(v) for v in vdisks}
        made = [images.create(self.reactor, tops[v.guid], v.size, backing=v.image) for v in vdisks]
        await _all(made)
        added: list[str] = []
        try:
            async with self._lock:
                for vdisk in vdisks:
                    # the new top keeps the vDisk's cache mode (the frozen one keeps how it was opened)
                    await self._open_image(tops[vdisk.guid], None, False, vdisk.cache_direct)
                    added.append(tops[vdisk.guid])
                actions = [{"type": "blockdev-snapshot",
                            "data": {"node": node_name(v.image), "overlay": node_name(tops[v.guid])}}
                           for v in vdisks]
                # the new tops count writes from the instant they take them (same transaction)
                actions += [{"type": "block-dirty-bitmap-add", "data": _bitmap(tops[v.guid])} for v in vdisks]
                await self.qmp.execute("transaction", {"actions": actions})
                result = {}
                for vdisk in vdisks:
                    top = tops[vdisk.guid]
                    self._open[top].backing = vdisk.image
                    frozen = vdisk.as_backing
                    self.served[vdisk.guid] = vdisk.evolve(image=top, chain=frozen)
                    result[vdisk.guid] = (self.served[vdisk.guid], frozen)
                return result
        except Exception:
            async with self._lock:
                for top in added:
                    await self._close(top)
            await images.remove(self.reactor, tops.values())
            raise

    @_per_vdisk
    async def rollback(self, guid: str, snapshot: Chain) -> VDisk:
        """Bring the vDisk back to a snapshot: a new empty top on it replaces the exported one.

        Clients are disconnected (an NBD export cannot change its node); the writes since the snapshot
        are dropped, every snapshot stays.
        """
        vdisk = self._served(guid)
        if vdisk.template:
            raise StorageError(f"vDisk {guid} is a template: it cannot be rolled back")
        top = new_top(vdisk)
        # no size: qemu-img takes the snapshot's (a rollback undoes a later resize too)
        await images.create(self.reactor, top, None, backing=snapshot[0])
        try:
            async with self._lock:
                await self._open_chain(snapshot)
                await self._open_image(top, snapshot[0], False, vdisk.cache_direct)
                await self._count_writes(top)
                rolled = vdisk.evolve(image=top, chain=snapshot, size=await self._size(top))
                # the export's downtime is these two commands
                await self._unexport(vdisk)
                await self._export(rolled)
                self.served[guid] = rolled
                await self._collect()
        except Exception:
            if self.served.get(guid) is vdisk:
                async with self._lock:
                    await self._collect()
                await images.remove(self.reactor, [top])
            raise
        await images.remove(self.reactor, [vdisk.image])
        return rolled

    @_per_vdisk
    async def remove_snapshot(self, guid: str, snapshot: Chain) -> dict[str, VDisk]:
        """Merge a snapshot of a vDisk away: the image just above it in the vDisk's chain absorbs its data.

        ``block-stream`` copies the snapshot's clusters the image above does not have into it (what
        that image shows does not change; the export stays up), then that image sits on what the
        snapshot sat on and the snapshot's file is deleted. Costs time proportional to the snapshot's
        own data. Returns every served vDisk whose chain changed (clones of later snapshots too): the
        caller stores them and drops the image from the chains of its other snapshots (:func:`without`).

        The caller refuses first when a clone or another branch sits on this snapshot itself, or when
        the image above is open in another daemon (it is written here); what this daemon can see it
        checks too.
        """
        vdisk = self._served(guid)
        layer = snapshot[0]
        line = vdisk.as_backing
        if layer not in vdisk.chain:
            raise StorageError(f"snapshot {layer} is not in the chain of vDisk {guid} (roll back to it first?)")
        above = line[line.index(layer) - 1]
        below = snapshot[1] if len(snapshot) > 1 else None
        async with self._lock:
            others = [p for p, n in self._open.items() if n.backing == layer and p != above]
            if others:
                raise StorageError(f"snapshot {layer} has other images on it: {', '.join(others)}")
            job = "s" + node_name(above)[1:]
            ended = self.qmp.expect_event("BLOCK_JOB_COMPLETED", lambda data: data.get("device") == job,
                                          timeout=STREAM_TIMEOUT)
            arguments: dict[str, Any] = {"job-id": job, "device": node_name(above)}
            if below is not None:
                arguments["base-node"] = node_name(below)
            try:
                await self.qmp.execute("block-stream", arguments)
            except QMPError:
                ended.cancel()
                ended.addErrback(lambda _: None)
                raise
            outcome = await ended
            if outcome.get("error"):
                raise StorageError(f"merging snapshot {layer} failed: {outcome['error']}")
            self._open[above].backing = below
            changed = {}
            for other in list(self.served.values()):
                if layer in other.chain:
                    self.served[other.guid] = changed[other.guid] = other.evolve(chain=without(other.chain, layer))
            await self._collect()
        await images.remove(self.reactor, [layer])
        return changed

    async def clone(self, vdisk: VDisk, snapshot: Chain) -> VDisk:
        """A new vDisk on a snapshot (or a template's chain): thin, it shares every byte it does not write."""
        child = vdisk.evolve(chain=tuple(snapshot))
        if child.guid in self.served:
            raise StorageError(f"vDisk {child.guid} is already served")
        await images.create(self.reactor, child.image, None, backing=snapshot[0])
        try:
            async with self._lock:
                await self._open_chain(child.chain)
                await self._open_image(child.image, child.chain[0], False, child.cache_direct)
                await self._count_writes(child.image)
                child = child.evolve(size=await self._size(child.image))
                await self._export(child)
                self.served[child.guid] = child
        except Exception:
            async with self._lock:
                await self._collect()
            await images.remove(self.reactor, [child.image])
            raise
        return child

    async def create_from_template(self, template: VDisk, vdisk: VDisk) -> VDisk:
        """A child of a template: reads the template's bytes, keeps its own writes."""
        if not template.template:
            raise StorageError(f"vDisk {template.guid} is not a template")
        return await self.clone(vdisk, template.as_backing)

    @_per_vdisk
    async def set_as_template(self, guid: str) -> VDisk:
        """Make a vDisk a template: its image becomes read-only and is exported read-only."""
        vdisk = self._served(guid)
        if vdisk.template:
            return vdisk
        template = vdisk.evolve(template=True)
        async with self._lock:
            await self._unexport(vdisk)
            await self._close(vdisk.image)
            await self._open_image(template.image, template.chain[0] if template.chain else None, True,
                                   template.cache_direct)
            await self._export(template)
            self.served[guid] = template
        return template

    @_per_vdisk
    async def resize(self, guid: str, size: int) -> VDisk:
        """Grow a vDisk (clients are disconnected: an NBD export forbids resizing its node)."""
        vdisk = self._served(guid)
        if vdisk.template:
            raise StorageError(f"vDisk {guid} is a template: it cannot be resized")
        async with self._lock:
            await self._unexport(vdisk)
            try:
                await self.qmp.execute("block_resize", {"node-name": node_name(vdisk.image), "size": size})
                vdisk = vdisk.evolve(size=size)
            finally:
                await self._export(vdisk)
            self.served[guid] = vdisk
        return vdisk

    @_per_vdisk
    async def configure(self, guid: str, cache_direct: bool | None, write_through: bool) -> VDisk:
        """Apply a vDisk's cache mode (its top re-opened with or without O_DIRECT) and the write-through of its
        export (re-added: an NBD export cannot change it; clients reconnect). Returns the new description.

        ``blockdev-reopen`` changes ``cache.direct`` of the open top in place (QEMU drains and flushes the
        node first, so nothing written is lost and the export stays up); the other options are the ones it
        was opened with, or the reopen would reset them to QEMU's defaults.
        """
        vdisk = self._served(guid)
        changed = vdisk.evolve(cache_direct=cache_direct, write_through=write_through)
        if changed == vdisk:
            return vdisk
        async with self._lock:
            node = self._open[vdisk.image]
            if self._direct(vdisk) != self._direct(changed):
                backing = node_name(node.backing) if node.backing else None
                options = self.options.node(node.name, vdisk.image, backing, node.read_only, self._direct(changed))
                await self.qmp.execute("blockdev-reopen", {"options": [_lean(options)]})
            if vdisk.write_through != changed.write_through:
                # the export's downtime is these two commands
                await self._unexport(vdisk)
                try:
                    await self._export(changed)
                except QMPError:
                    await self._export(vdisk.evolve(cache_direct=changed.cache_direct))
                    raise
            self.served[guid] = changed
        return changed

    def _direct(self, vdisk: VDisk) -> bool:
        """Whether the vDisk's top is (to be) opened with O_DIRECT."""
        return self.options.cache_direct if vdisk.cache_direct is None else vdisk.cache_direct

    # -- the block graph -----------------------------------------------------------------------------

    def _served(self, guid: str) -> VDisk:
        try:
            return self.served[guid]
        except KeyError:
            raise StorageError(f"vDisk {guid} is not served by this StorageDriver") from None

    def _send_open(self, path: str, backing: str | None, read_only: bool,
                   cache_direct: bool | None = None) -> defer.Deferred[Any]:
        name = node_name(path)
        self._open[path] = _Node(name, backing, read_only)
        arguments = _lean(self.options.node(name, path, node_name(backing) if backing else None, read_only,
                                            cache_direct))
        sent = self.qmp.execute("blockdev-add", arguments)

        def failed(failure: Any) -> Any:
            if self._open.get(path) is not None and self._open[path].name == name:
                del self._open[path]
            return failure

        return sent.addErrback(failed)

    async def _open_image(self, path: str, backing: str | None, read_only: bool,
                          cache_direct: bool | None = None) -> None:
        if path not in self._open:
            await self._send_open(path, backing, read_only, cache_direct)

    async def _open_chain(self, chain: Chain) -> None:
        for path, backing in _bottom_up(chain):
            await self._open_image(path, backing, True)

    async def _count_writes(self, path: str) -> None:
        """Put the written-bytes bitmap on a new writable top before it is exported (none is missed)."""
        try:
            await self.qmp.execute("block-dirty-bitmap-add", _bitmap(path))
        except QMPError as e:
            if "already exists" not in e.desc:
                raise

    async def _close(self, path: str) -> None:
        node = self._open.pop(path, None)
        if node is not None:
            await self.qmp.execute("blockdev-del", {"node-name": node.name})

    async def _collect(self, keep: Iterable[str] = ()) -> None:
        """Close every image no served vDisk needs any more (tops before what they sit on)."""
        needed = set(keep)
        for vdisk in self.served.values():
            needed.update(vdisk.as_backing)
        while True:
            used_as_backing = {n.backing for n in self._open.values()}
            idle = [p for p in self._open if p not in needed and p not in used_as_backing]
            if not idle:
                return
            for path in idle:
                try:
                    await self._close(path)
                except QMPError as e:
                    log.warn("image {path} not closed: {error}", path=path, error=e.desc)

    def _export_arguments(self, vdisk: VDisk) -> dict[str, Any]:
        arguments = {"type": "nbd", "id": export_id(vdisk.guid), "node-name": node_name(vdisk.image),
                     "name": vdisk.export, "writable": not vdisk.template}
        if vdisk.write_through:
            # sent only when set: a replay of a thousand exports pays per byte (see _lean)
            arguments["writethrough"] = True
        return arguments

    async def _export(self, vdisk: VDisk) -> None:
        await self.qmp.execute("block-export-add", self._export_arguments(vdisk))

    async def _unexport(self, vdisk: VDisk) -> None:
        """Remove the export, dropping connected clients; returns once QEMU has let go of its node."""
        ident = export_id(vdisk.guid)
        gone = self.qmp.expect_event("BLOCK_EXPORT_DELETED", lambda data: data.get("id") == ident,
                                     timeout=EXPORT_GONE_TIMEOUT)
        try:
            await self.qmp.execute("block-export-del", {"id": ident, "mode": "hard"})
        except QMPError:
            gone.cancel()
            gone.addErrback(lambda _: None)
            raise
        await gone

    async def _size(self, path: str) -> int:
        return (await images.info(self.reactor, path)).virtual_size


#: blockdev-add arguments whose value is QEMU's own default
_DEFAULTS: dict[str, Any] = {"read-only": False, "aio": "threads", "cache": {"direct": False, "no-flush": False}}


def _lean(arguments: dict[str, Any]) -> dict[str, Any]:
    """blockdev-add arguments without the ones that say QEMU's default (the node is the same).

    QEMU 7.2's QMP monitor reads its socket one byte per main-loop turn (strace: a recvmsg per byte), so a
    command costs the daemon a few microseconds per byte: leaving the defaults out took 1,000 blockdev-adds from
    about 2.2 s to 1.3 s here (bench/storage_api.py's replay_s)."""
    lean = {k: v for k, v in arguments.items() if k not in _DEFAULTS or _DEFAULTS[k] != v}
    if isinstance(lean.get("file"), dict):
        lean["file"] = _lean(lean["file"])
    return lean


def _bitmap(path: str) -> dict[str, Any]:
    return {"node": node_name(path), "name": WRITTEN_BITMAP, "granularity": WRITTEN_GRANULARITY}


def without(chain: Chain, image: str) -> Chain:
    """A chain once ``image`` has been merged away (see DriverDaemon.remove_snapshot)."""
    return tuple(p for p in chain if p != image)


def _bottom_up(chain: Chain) -> list[tuple[str, str | None]]:
    """(image, the image under it) from the bottom of a chain up."""
    return [(path, chain[i + 1] if i + 1 < len(chain) else None) for i, path in reversed(list(enumerate(chain)))]


async def _all(deferreds: Iterable[Any]) -> None:
    """Await several coroutines/Deferreds together; the first failure is raised once all are done."""
    pending = [defer.ensureDeferred(d) for d in deferreds]
    results = await defer.DeferredList(pending, consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()
