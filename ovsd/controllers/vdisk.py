"""vDisks: create, delete, grow, snapshot, roll back, clone, templates — each on the node serving the vDisk.

A vDisk records the StorageDriver serving it (``storagedriver_guid``) and its ``volume`` (how that driver's
qemu-storage-daemon serves it, ovsd.storage.vdisk.VDisk); every task on it is queued on that driver's node
(:func:`run_on_vdisk`) and changes one vDisk at a time there (the daemon's change, then the store's record
of it). Snapshots are ovsd's own records (label, timestamp, flags) with the chain of read-only images that
is the snapshot; a clone or a template child is a thin new top on such a chain, served by the driver of
the vPool on the StorageRouter asked for (for DISTRIBUTED vPools any node: the images are shared).

Layer files are deleted once nothing references them any more (a vDisk's chain or a snapshot record).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from typing import Any

from twisted.internet import threads
from twisted.logger import Logger

from ovsd.context import NodeContext
from ovsd.dal.fields import within_key
from ovsd.dal.repository import DataObject, Repository, UniqueConflict
from ovsd.messages import publish_event
from ovsd.storage.daemon import DriverDaemon, without
from ovsd.storage.launcher import nbd_uri
from ovsd.storage.vdisk import VDisk
from ovsd.tasks import Route, TaskContext, task

log = Logger()

#: the largest vDisk (the original's limit)
MAX_SIZE = 2 << 40


class Refused(RuntimeError):
    """The domain refuses the action (the API answers 406 with this text)."""


# --- what the views use -------------------------------------------------------------------------------------
async def served_by(repo: Repository, vdisk: DataObject) -> tuple[DataObject, DataObject]:
    """The StorageDriver serving a vDisk and its StorageRouter (Refused when it is served by none)."""
    guid = vdisk.data.get("storagedriver_guid")
    drivers = await repo.get_many("storagedriver", [str(guid)] if guid else [])
    if not drivers or not vdisk.data.get("volume"):
        raise Refused(f"vDisk {vdisk.data.get('name') or vdisk.guid} is not served by any StorageDriver")
    routers = await repo.get_many("storagerouter", [str(drivers[0].data["storagerouter_guid"])])
    if not routers:
        raise Refused(f"the StorageRouter of vDisk {vdisk.data.get('name') or vdisk.guid} is gone")
    return drivers[0], routers[0]


async def driver_on(repo: Repository, vpool_guid: str, storagerouter_guid: str) -> DataObject | None:
    """The vPool's StorageDriver on a StorageRouter, if it has one there."""
    drivers = await repo.get_many("storagedriver", await repo.reverse_guids("vpool", vpool_guid, "storagedrivers"))
    mine = [d for d in drivers if d.data.get("storagerouter_guid") == storagerouter_guid]
    return mine[0] if mine else None


async def name_taken(repo: Repository, vpool_guid: str, name: str) -> bool:
    # the store's unique key (one GET), not a scan of the vPool's vDisks: a create stays O(1) in their number
    return await repo.find("vdisk", *within_key("name", "vpool_guid", vpool_guid, name)) is not None


def is_template(vdisk: DataObject) -> bool:
    return bool((vdisk.data.get("volume") or {}).get("template"))


async def run_on_vdisk(node: NodeContext, vdisk: DataObject, name: str, kwargs: dict[str, Any]) -> str:
    """Queue a task on the node whose StorageDriver serves the vDisk; its task id."""
    _, router = await served_by(node.repository, vdisk)
    return await node.tasks.enqueue(name, {**kwargs, "vdisk_guid": vdisk.guid}, node=str(router.data["machine_id"]))


async def run_on_router(node: NodeContext, router_guid: str, name: str, kwargs: dict[str, Any]) -> str:
    router = await node.repository.get("storagerouter", router_guid)
    return await node.tasks.enqueue(name, kwargs, node=str(router.data["machine_id"]))


# --- inside the tasks ----------------------------------------------------------------------------------------
async def _daemon(ctx: TaskContext, driver: DataObject) -> DriverDaemon:
    storage = ctx.node.storage
    router = await ctx.node.repository.get("storagerouter", str(driver.data["storagerouter_guid"]))
    if router.data.get("machine_id") != ctx.node.config.node.machine_id:
        raise RuntimeError(f"StorageDriver {driver.data['name']} is not on this node")
    return await storage.daemon(driver.guid)


async def _loaded(ctx: TaskContext, guid: str) -> tuple[DataObject, DataObject, DriverDaemon]:
    repo = ctx.node.repository
    vdisk = await repo.get("vdisk", guid)
    driver, _ = await served_by(repo, vdisk)
    return vdisk, driver, await _daemon(ctx, driver)


async def _record_new(
    repo: Repository, daemon: DriverDaemon, volume: VDisk, name: str, vpool_guid: str, driver_guid: str,
    fields: dict[str, Any],
) -> None:
    """Store a vDisk the daemon just made and serves; if the store refuses it, the daemon's volume goes again
    (nothing half-made), and a name a concurrent create took first is the contract's 406."""
    try:
        await repo.create("vdisk", {
            "name": name, "description": name, "devicename": f"{name}.qcow2", "volume_id": volume.export,
            "vpool_guid": vpool_guid, "storagedriver_guid": driver_guid, "volume": volume.as_dict(),
            "snapshot_records": [], **fields,
        }, guid=volume.guid)
    except Exception as e:
        await daemon.remove(volume.guid, delete_image=True)
        if isinstance(e, UniqueConflict):  # a concurrent create of this name won: the store is the judge
            raise Refused(f"A vDisk with name {name} already exists in this vPool") from None
        raise


async def _event(ctx: TaskContext, event_type: str, **metadata: Any) -> None:
    await publish_event(ctx.node.store, event_type, metadata)


def _in_thread(ctx: TaskContext, function: Any, *args: Any) -> Any:
    reactor = ctx.node.reactor
    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)


def _allocation(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue


def _paths_of(data: dict[str, Any]) -> set[str]:
    """Every image file a stored vDisk needs: its top and chain, and the chains of its snapshots."""
    volume = data.get("volume") or {}
    paths = set(volume.get("chain") or [])
    if volume.get("image"):
        paths.add(str(volume["image"]))
    for record in data.get("snapshot_records") or []:
        paths.update(record.get("chain") or [])
    return paths


async def _collect_files(ctx: TaskContext, vpool_guid: str, candidates: Iterable[str]) -> None:
    """Delete the candidate image files no vDisk of the vPool references any more."""
    repo = ctx.node.repository
    vdisks = await repo.get_many("vdisk", await repo.reverse_guids("vpool", vpool_guid, "vdisks"))
    used: set[str] = set()
    for vdisk in vdisks:
        used |= _paths_of(vdisk.data)
    unused = sorted(set(candidates) - used)
    if unused:
        await _in_thread(ctx, _remove_files, unused)


def next_timestamp(records: list[dict[str, Any]], now: float) -> str:
    """A snapshot's timestamp: unix seconds as a string, later than every earlier snapshot of the vDisk (two
    snapshots in one second would otherwise share one, and a rollback names a snapshot by it)."""
    latest = max((int(r["timestamp"]) for r in records if str(r.get("timestamp", "")).isdigit()), default=0)
    return str(max(int(now), latest + 1))


async def _store_volume(ctx: TaskContext, guid: str, volume: VDisk, **changes: Any) -> DataObject:
    repo = ctx.node.repository
    stored = await repo.update("vdisk", guid, {"volume": volume.as_dict(), "size": volume.size, **changes})
    await refresh_vmachine(repo, stored)
    return stored


async def refresh_vmachine(repo: Repository, vdisk: DataObject) -> None:
    """A vMachine's cached dynamics (its snapshot groups, sizes) read its vDisks: drop them when one changes."""
    if vdisk.data.get("vmachine_guid"):
        await repo.invalidate_dynamics("vmachine", str(vdisk.data["vmachine_guid"]))


# --- create, delete, grow ------------------------------------------------------------------------------------
@task(name="vdisk.create", route=Route.STORAGEROUTER, timeout=120)
async def create(ctx: TaskContext, storagerouter_guid: str, vpool_guid: str, storagedriver_guid: str, name: str,
                 size: int) -> str:
    """A new vDisk: a qcow2 image in the vPool's image directory, opened and exported; its guid."""
    repo = ctx.node.repository
    driver = await repo.get("storagedriver", storagedriver_guid)
    daemon = await _daemon(ctx, driver)
    if await name_taken(repo, vpool_guid, name):
        raise Refused(f"A vDisk with name {name} already exists in this vPool")
    guid = str(uuid.uuid4())
    volume = VDisk(guid=guid, image=os.path.join(str(driver.data["mountpoint_bfs"]), f"{guid}.qcow2"), size=size)
    async with ctx.node.storage.vdisk_lock(guid):
        await daemon.create(volume)
        await _record_new(repo, daemon, volume, name, vpool_guid, driver.guid, {"size": size})
    await _event(ctx, "vdisk_created", vdisk_guid=guid, name=name, vpool_guid=vpool_guid,
                 storagedriver_guid=driver.guid,
                 nbd_uri=nbd_uri(str(driver.data["storage_ip"]), int(driver.data["port"]), volume.export))
    return guid


@task(name="vdisk.delete", route=Route.STORAGEROUTER, timeout=120)
async def delete(ctx: TaskContext, vdisk_guid: str) -> bool:
    """Stop serving a vDisk and remove it with the image files nothing else needs."""
    repo = ctx.node.repository
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, driver, daemon = await _loaded(ctx, vdisk_guid)
        children = await repo.reverse_guids("vdisk", vdisk.guid, "child_vdisks")
        if children:
            raise Refused(f"vDisk {vdisk.data['name']} has {len(children)} clones or template children: "
                          "it cannot be deleted")
        files = _paths_of(vdisk.data)
        if vdisk.guid in daemon.served:
            await daemon.remove(vdisk.guid)
        await repo.delete("vdisk", vdisk.guid)
        await _collect_files(ctx, str(vdisk.data["vpool_guid"]), files)
    await _event(ctx, "vdisk_deleted", vdisk_guid=vdisk.guid, name=vdisk.data.get("name"),
                 vpool_guid=vdisk.data.get("vpool_guid"), storagedriver_guid=driver.guid)
    return True


@task(name="vdisk.extend", route=Route.STORAGEROUTER, timeout=120)
async def extend(ctx: TaskContext, vdisk_guid: str, new_size: int) -> int:
    """Grow a vDisk (connected clients are dropped: an NBD export cannot change size under them)."""
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        if new_size < int(vdisk.data["size"]):
            raise Refused("a vDisk can only grow")
        volume = await daemon.resize(vdisk.guid, new_size)
        await _store_volume(ctx, vdisk.guid, volume)
    return volume.size


# --- snapshots -----------------------------------------------------------------------------------------------
async def take_snapshot(ctx: TaskContext, vdisk: DataObject, daemon: DriverDaemon, label: str, consistent: bool,
                        automatic: bool, sticky: bool, timestamp: str | None = None) -> dict[str, Any]:
    """Snapshot one vDisk (the caller holds its lock) and store the record; the record."""
    records = list(vdisk.data.get("snapshot_records") or [])
    stamp = timestamp or next_timestamp(records, time.time())
    volume, chain = await daemon.snapshot(vdisk.guid)
    record = {"guid": str(uuid.uuid4()), "label": label, "timestamp": stamp, "is_consistent": consistent,
              "is_automatic": automatic, "is_sticky": sticky, "chain": list(chain),
              "stored": await _in_thread(ctx, _allocation, chain[0])}
    await _store_volume(ctx, vdisk.guid, volume, snapshot_records=[*records, record])
    return record


@task(name="vdisk.create_snapshot", route=Route.STORAGEROUTER, timeout=60)
async def create_snapshot(ctx: TaskContext, vdisk_guid: str, name: str = "", consistent: bool = False,
                          automatic: bool = False, sticky: bool = False, timestamp: str | None = None) -> str:
    """Freeze the vDisk's data now (its export stays up); the snapshot's guid."""
    if automatic and sticky:
        raise Refused("A snapshot cannot be automatic and sticky")
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        record = await take_snapshot(ctx, vdisk, daemon, name, consistent, automatic, sticky, timestamp)
    return str(record["guid"])


def _record(vdisk: DataObject, snapshot_id: str) -> dict[str, Any]:
    for record in vdisk.data.get("snapshot_records") or []:
        if record["guid"] == snapshot_id:
            return dict(record)
    raise Refused(f"Snapshot {snapshot_id} does not belong to disk {vdisk.data.get('name') or vdisk.guid}")


async def removal_refusal(repo: Repository, vdisk: DataObject, snapshot_id: str) -> str | None:
    """Why a snapshot may not be removed now (None: it may)."""
    try:
        record = _record(vdisk, snapshot_id)
    except Refused as e:
        return str(e)
    vdisks = await repo.get_many("vdisk", await repo.reverse_guids("vpool", str(vdisk.data["vpool_guid"]), "vdisks"))
    clones = [v for v in vdisks if v.data.get("parentsnapshot") == snapshot_id]
    if clones:
        return f"Snapshot {snapshot_id} has {len(clones)} volumes cloned from it, cannot remove"
    layer = record["chain"][0]
    volume = vdisk.data["volume"]
    line = [volume["image"], *volume["chain"]]
    above = line[line.index(layer) - 1] if layer in line[1:] else None
    for other in vdisks:
        chains = [[other.data["volume"]["image"], *other.data["volume"]["chain"]]] if other.data.get("volume") else []
        chains += [r["chain"] for r in other.data.get("snapshot_records") or [] if r["guid"] != snapshot_id]
        for chain in chains:
            if layer in chain[1:] and chain[chain.index(layer) - 1] != above:
                return f"Snapshot {snapshot_id} has other snapshots or vDisks on it (another branch), cannot remove"
        if (above is not None and other.data.get("storagedriver_guid") != vdisk.data.get("storagedriver_guid")
                and any(above in chain for chain in chains)):
            return (f"Snapshot {snapshot_id} would be merged into an image another StorageDriver holds open, "
                    "cannot remove")
    return None


@task(name="vdisk.remove_snapshot", route=Route.STORAGEROUTER, timeout=3600)
async def remove_snapshot(ctx: TaskContext, vdisk_guid: str, snapshot_id: str) -> bool:
    """Remove a snapshot: its data merges into the image above it (what the vDisk shows does not change)."""
    repo = ctx.node.repository
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        refusal = await removal_refusal(repo, vdisk, snapshot_id)
        if refusal:
            raise Refused(refusal)
        record = _record(vdisk, snapshot_id)
        layer = record["chain"][0]
        volume = VDisk.from_dict(vdisk.data["volume"])
        if layer in volume.chain:
            await daemon.remove_snapshot(vdisk.guid, tuple(record["chain"]))
        # every stored chain through that layer now skips it (the vDisk's and its clones', the records')
        vpool_vdisks = await repo.get_many("vdisk", await repo.reverse_guids("vpool", str(vdisk.data["vpool_guid"]),
                                                                             "vdisks"))
        for other in vpool_vdisks:
            def change(data: dict[str, Any]) -> dict[str, Any]:
                changes: dict[str, Any] = {}
                stored = data.get("volume")
                if stored and layer in stored.get("chain", []):
                    changes["volume"] = {**stored, "chain": list(without(tuple(stored["chain"]), layer))}
                records = data.get("snapshot_records") or []
                kept = [r for r in records if r["guid"] != snapshot_id]
                if kept != records or any(layer in r["chain"] for r in kept):
                    changes["snapshot_records"] = [{**r, "chain": list(without(tuple(r["chain"]), layer))}
                                                   for r in kept]
                return changes

            await refresh_vmachine(repo, await repo.modify("vdisk", other.guid, change))
        await _collect_files(ctx, str(vdisk.data["vpool_guid"]), [layer])
    return True


@task(name="vdisk.rollback", route=Route.STORAGEROUTER, timeout=120)
async def rollback(ctx: TaskContext, vdisk_guid: str, timestamp: str) -> bool:
    """Bring the vDisk back to the snapshot of that timestamp (clients are dropped; every snapshot stays)."""
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        found = [r for r in vdisk.data.get("snapshot_records") or [] if str(r["timestamp"]) == str(timestamp)]
        if not found:
            raise Refused(f"No snapshot found for timestamp {timestamp}")
        volume = await daemon.rollback(vdisk.guid, tuple(found[0]["chain"]))
        await _store_volume(ctx, vdisk.guid, volume)
    return True


# --- clones and templates ------------------------------------------------------------------------------------
@task(name="vdisk.serve_child", route=Route.STORAGEROUTER, timeout=120)
async def serve_child(ctx: TaskContext, source_guid: str, chain: list[str], name: str, storagedriver_guid: str,
                      parentsnapshot: str | None = None, vmachine_guid: str | None = None) -> dict[str, Any]:
    """A new vDisk on a read-only chain (a snapshot, or a template), served by a driver of this node."""
    repo = ctx.node.repository
    source = await repo.get("vdisk", source_guid)
    driver = await repo.get("storagedriver", storagedriver_guid)
    daemon = await _daemon(ctx, driver)
    vpool_guid = str(source.data["vpool_guid"])
    if await name_taken(repo, vpool_guid, name):
        raise Refused(f"A vDisk with name {name} already exists in this vPool")
    guid = str(uuid.uuid4())
    fresh = VDisk(guid=guid, image=os.path.join(str(driver.data["mountpoint_bfs"]), f"{guid}.qcow2"),
                  size=int(source.data["size"]))
    async with ctx.node.storage.vdisk_lock(guid):
        volume = await daemon.clone(fresh, tuple(chain))
        await _record_new(repo, daemon, volume, name, vpool_guid, driver.guid, {
            "size": volume.size, "parent_vdisk_guid": source.guid, "parentsnapshot": parentsnapshot,
            "vmachine_guid": vmachine_guid,
        })
    await _event(ctx, "vdisk_created", vdisk_guid=guid, name=name, vpool_guid=vpool_guid,
                 storagedriver_guid=driver.guid, parent_vdisk_guid=source.guid,
                 nbd_uri=nbd_uri(str(driver.data["storage_ip"]), int(driver.data["port"]), volume.export))
    return {"diskguid": guid, "name": name, "backingdevice": volume.image}


async def _child_on(ctx: TaskContext, router_guid: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """serve_child here, or as a task on the node of that StorageRouter (and wait for it)."""
    repo = ctx.node.repository
    router = await repo.get("storagerouter", router_guid)
    if router.data.get("machine_id") == ctx.node.config.node.machine_id:
        here: dict[str, Any] = await serve_child(ctx, **kwargs)
        return here
    task_id = await ctx.node.tasks.enqueue("vdisk.serve_child", kwargs, node=str(router.data["machine_id"]))
    record = await ctx.node.tasks.wait(task_id, 120)
    if record is None or record.get("status") != "SUCCESS":
        raise RuntimeError(str(record.get("error") if record else "the clone task is gone"))
    result: dict[str, Any] = record["result"]
    return result


@task(name="vdisk.clone", route=Route.STORAGEROUTER, timeout=180)
async def clone(ctx: TaskContext, vdisk_guid: str, name: str, storagerouter_guid: str,
                snapshot_id: str | None = None, vmachine_guid: str | None = None) -> dict[str, Any]:
    """A thin clone of a snapshot (a new automatic one when none is given), served on that StorageRouter."""
    repo = ctx.node.repository
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        if snapshot_id is None:
            record = await take_snapshot(ctx, vdisk, daemon, "", False, True, False)
        else:
            record = _record(vdisk, snapshot_id)
    target = await driver_on(repo, str(vdisk.data["vpool_guid"]), storagerouter_guid)
    if target is None:
        raise Refused("No storagedriver found for vPool and storageRouter")
    return await _child_on(ctx, storagerouter_guid, {
        "source_guid": vdisk.guid, "chain": record["chain"], "name": name, "storagedriver_guid": target.guid,
        "parentsnapshot": record["guid"], "vmachine_guid": vmachine_guid})


@task(name="vdisk.set_as_template", route=Route.STORAGEROUTER, timeout=60)
async def set_as_template(ctx: TaskContext, vdisk_guid: str) -> bool:
    """Make the vDisk a template: read-only from now on, the base of its children."""
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        volume = await daemon.set_as_template(vdisk.guid)
        await _store_volume(ctx, vdisk.guid, volume)
    return True


# --- settings ------------------------------------------------------------------------------------------------
#: the knobs that mean something for an image served by qemu-storage-daemon
CONFIG_KNOBS = {"cache_mode": ("writeback", "none"), "write_through": (True, False)}


def check_config(given: dict[str, Any]) -> dict[str, Any]:
    """The settings asked for, checked (Refused naming a knob this driver does not have, or a bad value)."""
    for knob, value in given.items():
        if knob not in CONFIG_KNOBS:
            raise Refused(f"{knob} is not a setting of a vDisk here (the settings are: {', '.join(CONFIG_KNOBS)})")
        if value not in CONFIG_KNOBS[knob] or (knob == "write_through" and not isinstance(value, bool)):
            raise Refused(f"{knob} must be one of {', '.join(map(str, CONFIG_KNOBS[knob]))}")
    return dict(given)


def _settings(daemon: DriverDaemon, volume: VDisk) -> dict[str, Any]:
    """The vDisk's own settings (a description stored before it had any reads as the driver's options)."""
    options = daemon.options
    direct = options.cache_direct if volume.cache_direct is None else volume.cache_direct
    return {"cache_mode": "none" if direct else "writeback", "write_through": volume.write_through,
            "aio": options.aio, "discard": options.discard}


def _served(daemon: DriverDaemon, vdisk: DataObject) -> VDisk:
    return daemon.served.get(vdisk.guid) or VDisk.from_dict(vdisk.data["volume"])


@task(name="vdisk.get_config_params", route=Route.STORAGEROUTER, idempotent=True, timeout=30)
async def get_config_params(ctx: TaskContext, vdisk_guid: str) -> dict[str, Any]:
    """How the vDisk's image is opened by its driver (cache mode, write-through, AIO, discard)."""
    vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
    return _settings(daemon, _served(daemon, vdisk))


@task(name="vdisk.set_config_params", route=Route.STORAGEROUTER, timeout=30)
async def set_config_params(ctx: TaskContext, vdisk_guid: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Apply the vDisk's cache mode and write-through on its driver, then store them with its description
    (what a replay after a restart opens it with); answers the vDisk's settings."""
    wanted = check_config(settings)
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk, _, daemon = await _loaded(ctx, vdisk_guid)
        volume = _served(daemon, vdisk)
        cache_direct = volume.cache_direct
        if "cache_mode" in wanted:
            cache_direct = wanted["cache_mode"] == "none"
        write_through = bool(wanted.get("write_through", volume.write_through))
        changed = await daemon.configure(vdisk.guid, cache_direct, write_through)
        if changed != VDisk.from_dict(vdisk.data["volume"]):
            await _store_volume(ctx, vdisk.guid, changed)
    return _settings(daemon, changed)
