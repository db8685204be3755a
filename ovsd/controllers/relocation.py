"""move_away: hand every vDisk a StorageRouter serves to a StorageDriver of the same vPool on another one.

Only a DISTRIBUTED vPool's vDisks can move: its images are in one directory every driver of the vPool sees,
so moving is closing the images here and opening the same files there; no data is copied. A LOCAL vPool's
images exist on this node only.

Choice for what cannot move: the task moves every vDisk it can, then fails with a reason naming each vDisk
it did not move and why (a LOCAL vPool, no other RUNNING driver, the other node refused). FAILURE thus means
"this StorageRouter still serves vDisks"; SUCCESS means it serves none of the ones it had.

One writer at a time: a qcow2 image opened read-write by two daemons is corrupted. So for each vDisk the
export and its nodes are closed here first, then the other node opens and exports it and records itself as
the owner (relation and description in one compare-and-set on the vDisk); if that fails, the vDisk is
reopened here, where the record still points. The mover runs on this node (it closes the local export) and
waits for an ``vdisk.adopt`` task on the other node (only that node reaches its daemon).
Known limit: a restart of this node's driver while a vDisk is in flight replays it from the store, which
still names this driver until the adopt lands.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ovsd.controllers.vdisk import Refused, _daemon, _event, refresh_vmachine
from ovsd.dal.repository import DataObject, Repository
from ovsd.storage.vdisk import VDisk
from ovsd.tasks import FINISHED, SUCCESS, NodeUnavailable, Route, TaskContext, task

log = Logger()

#: how long the other node may take to open and export one vDisk
ADOPT_TIMEOUT = 60.0
#: how long the mover waits for that task: its own time plus a queue on a busy node
ADOPT_WAIT = ADOPT_TIMEOUT + 30.0
#: the task the move_away view queues on the StorageRouter's node
MOVE_AWAY = "storagerouter.move_away"


class AdoptUnknown(RuntimeError):
    """The adopt task did not finish in time: it may still open the vDisk there, so it is not reopened here."""


async def _running_targets(repo: Repository, vpool_guid: str, here: str) -> list[DataObject]:
    """The vPool's RUNNING StorageDrivers on other StorageRouters."""
    drivers = await repo.get_many("storagedriver", await repo.reverse_guids("vpool", vpool_guid, "storagedrivers"))
    others = [d for d in drivers if d.data.get("storagerouter_guid") != here]
    statuses = await repo.dynamics(others, ["status"])
    return [d for d, s in zip(others, statuses, strict=True) if s.get("status") == "RUNNING"]


async def _adopt_there(ctx: TaskContext, vdisk_guid: str, source: DataObject, target: DataObject) -> None:
    """Run vdisk.adopt on the target's node and wait; raises unless it serves the vDisk now."""
    tasks = ctx.node.tasks
    router = await ctx.node.repository.get("storagerouter", str(target.data["storagerouter_guid"]))
    task_id = await tasks.enqueue("vdisk.adopt", {
        "vdisk_guid": vdisk_guid, "from_storagedriver_guid": source.guid, "storagedriver_guid": target.guid,
    }, node=str(router.data["machine_id"]))
    record = await tasks.wait(task_id, ADOPT_WAIT)
    if record is not None and record.get("status") not in FINISHED:
        # not reopened here: should the queued adopt still run, it finds the record naming this driver and
        # takes the vDisk over, and one writer is all there ever is
        raise AdoptUnknown(f"StorageRouter {router.data.get('name')} did not take it within {ADOPT_WAIT:g} s; "
                           "it is served by no StorageDriver until it does")
    if record is None:
        raise RuntimeError("the adopt task is gone")
    if record.get("status") != SUCCESS:
        raise RuntimeError(str(record.get("error") or record.get("result") or record.get("status")))


async def _move(ctx: TaskContext, vdisk_guid: str, source: DataObject, target: DataObject) -> bool:
    """Move one vDisk from ``source`` (a driver of this node) to ``target``; False if it was not ours any more."""
    repo = ctx.node.repository
    daemon = await _daemon(ctx, source)
    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk = await repo.get("vdisk", vdisk_guid)
        if vdisk.data.get("storagedriver_guid") != source.guid or not vdisk.data.get("volume"):
            return False
        volume = VDisk.from_dict(vdisk.data["volume"])
        if vdisk_guid in daemon.served:
            volume = await daemon.remove(vdisk_guid)
        try:
            await _adopt_there(ctx, vdisk_guid, source, target)
        except AdoptUnknown:
            raise
        except Exception:
            # the record still names this driver: serve it here again
            await daemon.add(volume)
            raise
    return True


@task(name=MOVE_AWAY, route=Route.STORAGEROUTER, timeout=3600)
async def move_away(ctx: TaskContext, storagerouter_guid: str) -> dict[str, Any]:
    """Move every vDisk this StorageRouter serves to other StorageRouters of the same vPools.

    Result ``{"moved": {vdisk guid: new StorageDriver guid}}``; fails naming the vDisks it could not move.
    """
    repo = ctx.node.repository
    drivers = await repo.get_many("storagedriver",
                                  await repo.reverse_guids("storagerouter", storagerouter_guid, "storagedrivers"))
    moved: dict[str, str] = {}
    left: list[str] = []
    for driver in drivers:
        vdisks = await repo.get_many("vdisk", await repo.reverse_guids("storagedriver", driver.guid, "vdisks"))
        if not vdisks:
            continue
        pool = await repo.get("vpool", str(driver.data["vpool_guid"]))
        pool_name = pool.data.get("name")
        if pool.data.get("type") != "DISTRIBUTED":
            left += [f"{v.data.get('name')} (vPool {pool_name} is {pool.data.get('type')}: its images are on this "
                     "node only)" for v in vdisks]
            continue
        targets = await _running_targets(repo, pool.guid, storagerouter_guid)
        if not targets:
            left += [f"{v.data.get('name')} (vPool {pool_name} has no RUNNING StorageDriver on another "
                     "StorageRouter)" for v in vdisks]
            continue
        load = {t.guid: len(await repo.reverse_guids("storagedriver", t.guid, "vdisks")) for t in targets}
        for vdisk in sorted(vdisks, key=lambda v: str(v.data.get("name"))):
            # spread the vDisks: each goes to the driver serving the fewest
            target = min(targets, key=lambda t: load[t.guid])
            try:
                if await _move(ctx, vdisk.guid, driver, target):
                    moved[vdisk.guid] = target.guid
                    load[target.guid] += 1
            except (Refused, RuntimeError, NodeUnavailable) as e:
                log.warn("vDisk {vdisk} not moved to {sd}: {why}", vdisk=vdisk.guid, sd=target.guid, why=str(e))
                left.append(f"{vdisk.data.get('name')} ({e})")
    if left:
        raise Refused(f"moved {len(moved)} vDisks; not moved: {'; '.join(left)}")
    return {"moved": moved}


@task(name="vdisk.adopt", route=Route.STORAGEROUTER, timeout=ADOPT_TIMEOUT)
async def adopt(ctx: TaskContext, vdisk_guid: str, from_storagedriver_guid: str, storagedriver_guid: str) -> bool:
    """Open and export a vDisk another driver of its DISTRIBUTED vPool has closed, and record this driver as its
    owner (only while the record still names the one it came from)."""
    repo = ctx.node.repository
    driver = await repo.get("storagedriver", storagedriver_guid)
    daemon = await _daemon(ctx, driver)

    def still_there(data: dict[str, Any]) -> None:
        if data.get("storagedriver_guid") != from_storagedriver_guid:
            raise Refused(f"vDisk {data.get('name')} is no longer served by StorageDriver {from_storagedriver_guid}")

    def change(data: dict[str, Any]) -> dict[str, Any]:
        still_there(data)
        return {"storagedriver_guid": driver.guid, "volume": volume.as_dict()}

    async with ctx.node.storage.vdisk_lock(vdisk_guid):
        vdisk = await repo.get("vdisk", vdisk_guid)
        if vdisk.data.get("vpool_guid") != driver.data.get("vpool_guid"):
            raise Refused(f"StorageDriver {driver.data.get('name')} is not of the vPool of vDisk "
                          f"{vdisk.data.get('name')}")
        still_there(vdisk.data)
        volume = VDisk.from_dict(vdisk.data["volume"])
        await daemon.add(volume)
        try:
            stored = await repo.modify("vdisk", vdisk_guid, change)
        except BaseException:
            await daemon.remove(vdisk_guid)
            raise
    await refresh_vmachine(repo, stored)
    await _event(ctx, "vdisk_moved", vdisk_guid=vdisk_guid, name=vdisk.data.get("name"),
                 vpool_guid=vdisk.data.get("vpool_guid"), from_storagedriver_guid=from_storagedriver_guid,
                 storagedriver_guid=driver.guid)
    return True
