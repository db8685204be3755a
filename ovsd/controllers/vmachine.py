"""vMachines: a name and a group of vDisks, snapshotted, rolled back, cloned and templated together.

There is no hypervisor integration: a vMachine is ovsd's record (its ``hypervisor_status`` stays UNKNOWN)
and its actions act on its vDisks, each on the node of the driver serving it. A vMachine snapshot is one
instant for all its disks: disks sharing a daemon are frozen in one QMP ``transaction``; across daemons
every disk gets its snapshot or none does (the ones made are removed again). The disks' snapshots share
one timestamp, which is what groups them (the ``snapshots`` dynamic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer

from ovsd.context import NodeContext
from ovsd.controllers import vdisk as vdisks
from ovsd.dal.hybrids.vmachine import group_snapshots
from ovsd.dal.repository import DataObject, Repository
from ovsd.messages import publish_event
from ovsd.tasks import Route, TaskContext, task

SUBTASK_WAIT = 300.0


async def disks_of(repo: Repository, vmachine_guid: str) -> list[DataObject]:
    disks = await repo.get_many("vdisk", await repo.reverse_guids("vmachine", vmachine_guid, "vdisks"))
    return sorted(disks, key=lambda d: (d.data.get("order") or 0, str(d.data.get("name") or "")))


async def group_at(repo: Repository, vmachine_guid: str, timestamp: str) -> dict[str, Any]:
    for group in group_snapshots(await disks_of(repo, vmachine_guid)):
        if group["timestamp"] == str(timestamp):
            return group
    raise vdisks.Refused(f"No vMachine snapshot found for timestamp {timestamp}")


async def run_all(node: NodeContext, steps: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Queue each (node machine_id, task name, kwargs) and wait for all; their records."""
    ids = [await node.tasks.enqueue(name, kwargs, node=machine) for machine, name, kwargs in steps]
    records = []
    for task_id in ids:
        record = await node.tasks.wait(task_id, SUBTASK_WAIT)
        records.append(record or {"status": "FAILURE", "error": "the task is gone"})
    return records


def _failed(records: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("error")) for r in records if r.get("status") != "SUCCESS"]


async def _machine_of(repo: Repository, vdisk: DataObject) -> str:
    _, router = await vdisks.served_by(repo, vdisk)
    return str(router.data["machine_id"])


# --- a snapshot of several vDisks of one driver, at one instant ----------------------------------------------
@task(name="vdisk.snapshot_together", route=Route.STORAGEROUTER, timeout=120)
async def snapshot_together(ctx: TaskContext, vdisk_guids: list[str], timestamp: str, label: str,
                            consistent: bool, sticky: bool) -> dict[str, str]:
    """One snapshot of these vDisks (one daemon) in one QMP transaction; {vdisk guid: snapshot guid}."""
    repo = ctx.node.repository
    storage = ctx.node.storage
    async with storage.vdisk_lock(*vdisk_guids):
        disks = await repo.get_many("vdisk", vdisk_guids)
        driver, _ = await vdisks.served_by(repo, disks[0])
        daemon = await storage.daemon(driver.guid)
        frozen = await daemon.snapshot_together([d.guid for d in disks])
        made: dict[str, str] = {}
        for disk in disks:
            volume, chain = frozen[disk.guid]
            record = {"guid": str(uuid.uuid4()), "label": label, "timestamp": timestamp, "is_consistent": consistent,
                      "is_automatic": False, "is_sticky": sticky, "chain": list(chain), "stored": 0}
            records = [*(disk.data.get("snapshot_records") or []), record]
            stored = await repo.update("vdisk", disk.guid, {"volume": volume.as_dict(), "snapshot_records": records})
            await vdisks.refresh_vmachine(repo, stored)
            made[disk.guid] = str(record["guid"])
    return made


@task(name="vmachine.snapshot", route=Route.ANY, timeout=300)
async def snapshot(ctx: TaskContext, vmachine_guid: str, name: str, consistent: bool, sticky: bool) -> str:
    """Snapshot every vDisk of the vMachine at one instant; the snapshot group's timestamp."""
    repo = ctx.node.repository
    machine = await repo.get("vmachine", vmachine_guid)
    disks = await disks_of(repo, vmachine_guid)
    if not disks:
        raise vdisks.Refused(f"vMachine {machine.data['name']} has no vDisks")
    latest = [r for d in disks for r in d.data.get("snapshot_records") or []]
    stamp = vdisks.next_timestamp(latest, time.time())
    by_driver: dict[str, list[DataObject]] = {}
    for disk in disks:
        by_driver.setdefault(str(disk.data.get("storagedriver_guid")), []).append(disk)
    steps = [(await _machine_of(repo, group[0]), "vdisk.snapshot_together",
              {"vdisk_guids": [d.guid for d in group], "timestamp": stamp, "label": name, "consistent": consistent,
               "sticky": sticky}) for group in by_driver.values()]
    records = await run_all(ctx.node, steps)
    failures = _failed(records)
    if failures:
        # every disk or none: remove the snapshots that were made
        undo = []
        for record in records:
            if record.get("status") == "SUCCESS":
                for disk_guid, snapshot_guid in record["result"].items():
                    disk = await repo.get("vdisk", disk_guid)
                    undo.append((await _machine_of(repo, disk), "vdisk.remove_snapshot",
                                 {"vdisk_guid": disk_guid, "snapshot_id": snapshot_guid}))
        await run_all(ctx.node, undo)
        raise RuntimeError(f"Failed to snapshot vMachine {machine.data['name']}: {'; '.join(failures)}")
    return stamp


async def _each_disk(ctx: TaskContext, vmachine_guid: str, name: str, kwargs_of: Any) -> None:
    repo = ctx.node.repository
    steps = []
    for disk in await disks_of(repo, vmachine_guid):
        steps.append((await _machine_of(repo, disk), name, {"vdisk_guid": disk.guid, **kwargs_of(disk)}))
    failures = _failed(await run_all(ctx.node, steps))
    if failures:
        raise RuntimeError("; ".join(failures))


@task(name="vmachine.rollback", route=Route.ANY, timeout=300)
async def rollback(ctx: TaskContext, vmachine_guid: str, timestamp: str) -> bool:
    """Bring every vDisk of the vMachine back to the snapshot group of that timestamp."""
    await group_at(ctx.node.repository, vmachine_guid, timestamp)
    await _each_disk(ctx, vmachine_guid, "vdisk.rollback", lambda disk: {"timestamp": str(timestamp)})
    return True


@task(name="vmachine.delete_snapshot", route=Route.ANY, timeout=3600)
async def delete_snapshot(ctx: TaskContext, vmachine_guid: str, timestamp: str) -> bool:
    group = await group_at(ctx.node.repository, vmachine_guid, timestamp)
    await _each_disk(ctx, vmachine_guid, "vdisk.remove_snapshot",
                     lambda disk: {"snapshot_id": group["snapshots"][disk.guid]})
    return True


@task(name="vmachine.set_as_template", route=Route.ANY, timeout=300)
async def set_as_template(ctx: TaskContext, vmachine_guid: str) -> bool:
    await _each_disk(ctx, vmachine_guid, "vdisk.set_as_template", lambda disk: {})
    await ctx.node.repository.update("vmachine", vmachine_guid, {"is_vtemplate": True})
    return True


async def _new_machine(ctx: TaskContext, template: DataObject, name: str, description: str,
                       pmachine_guid: str | None, steps_of: Any) -> str:
    """A new vMachine whose disks are made by ``steps_of(disk, new guid)``; removed again on a failure."""
    repo = ctx.node.repository
    if any(v.data.get("name") == name for v in await repo.load_all("vmachine")):
        raise vdisks.Refused(f"A vMachine with name {name} already exists")
    machine = await repo.create("vmachine", {
        "name": name, "description": description, "status": "CREATED", "pmachine_guid": pmachine_guid,
        "vpool_guid": template.data.get("vpool_guid")})
    steps = [await steps_of(disk, machine.guid) for disk in await disks_of(repo, template.guid)]
    records = await run_all(ctx.node, steps)
    failures = _failed(records)
    if failures:
        undo = [(step[0], "vdisk.delete", {"vdisk_guid": r["result"]["diskguid"]})
                for step, r in zip(steps, records, strict=True) if r.get("status") == "SUCCESS"]
        # a child must go on the node serving it: find it again
        undo = [(await _machine_of(repo, await repo.get("vdisk", kw["vdisk_guid"])), n, kw) for _, n, kw in undo]
        await run_all(ctx.node, undo)
        await repo.delete("vmachine", machine.guid)
        raise RuntimeError("; ".join(failures))
    await repo.update("vmachine", machine.guid, {"status": "OK"})
    await publish_event(ctx.node.store, "vmachine_created", {"vmachine_guid": machine.guid, "name": name})
    return machine.guid


@task(name="vmachine.create_from_template", route=Route.ANY, timeout=600)
async def create_from_template(ctx: TaskContext, vmachine_guid: str, pmachine_guid: str, name: str,
                               description: str = "") -> str:
    """A vMachine on that pMachine's StorageRouter whose disks are thin children of the template's."""
    repo = ctx.node.repository
    template = await repo.get("vmachine", vmachine_guid)
    routers = await repo.reverse_guids("pmachine", pmachine_guid, "storagerouters")
    if len(routers) != 1:
        raise vdisks.Refused("The target pMachine must have exactly one StorageRouter")
    router = await repo.get("storagerouter", routers[0])

    async def step(disk: DataObject, new_guid: str) -> tuple[str, str, dict[str, Any]]:
        driver = await vdisks.driver_on(repo, str(disk.data["vpool_guid"]), router.guid)
        if driver is None:
            raise vdisks.Refused("Could not find Storage Driver")
        volume = disk.data["volume"]
        return (str(router.data["machine_id"]), "vdisk.serve_child", {
            "source_guid": disk.guid, "chain": [volume["image"], *volume["chain"]],
            "name": f"{name}-{disk.data['name']}", "storagedriver_guid": driver.guid, "vmachine_guid": new_guid})

    return await _new_machine(ctx, template, name, description, pmachine_guid, step)


@task(name="vmachine.create_multiple_from_template", route=Route.ANY, timeout=3600)
async def create_multiple_from_template(ctx: TaskContext, vmachine_guid: str, pmachine_guids: list[str], amount: int,
                                        start: int, name: str, description: str = "") -> list[str]:
    """``amount`` vMachines from the template (``name``, or ``<name>-<i>`` from ``start``), pMachines in turn."""
    made = []
    for index in range(amount):
        machine_name = name if amount == 1 else f"{name}-{start + index}"
        pmachine = pmachine_guids[index % len(pmachine_guids)]
        made.append(await create_from_template(ctx, vmachine_guid, pmachine, machine_name, description))
    return made


@task(name="vmachine.clone_from_snapshot", route=Route.ANY, timeout=600)
async def clone_from_snapshot(ctx: TaskContext, vmachine_guid: str, timestamp: str, new_machine_name: str) -> str:
    """A vMachine whose disks are thin clones of this one's snapshot group at that timestamp."""
    repo = ctx.node.repository
    source = await repo.get("vmachine", vmachine_guid)
    group = await group_at(repo, vmachine_guid, timestamp)

    async def step(disk: DataObject, new_guid: str) -> tuple[str, str, dict[str, Any]]:
        record = next(r for r in disk.data["snapshot_records"] if r["guid"] == group["snapshots"][disk.guid])
        driver, router = await vdisks.served_by(repo, disk)
        return (str(router.data["machine_id"]), "vdisk.serve_child", {
            "source_guid": disk.guid, "chain": record["chain"], "name": f"{new_machine_name}-{disk.data['name']}",
            "storagedriver_guid": driver.guid, "parentsnapshot": record["guid"], "vmachine_guid": new_guid})

    return await _new_machine(ctx, source, new_machine_name, str(source.data.get("description") or ""),
                              source.data.get("pmachine_guid"), step)


@task(name="vmachine.delete", route=Route.ANY, timeout=600)
async def delete(ctx: TaskContext, vmachine_guid: str) -> bool:
    """A template: its disks are deleted with it. A vMachine: unregistered, its disks stay (detached)."""
    repo = ctx.node.repository
    machine = await repo.get("vmachine", vmachine_guid)
    disks = await disks_of(repo, vmachine_guid)
    if machine.data.get("is_vtemplate"):
        steps = [(await _machine_of(repo, d), "vdisk.delete", {"vdisk_guid": d.guid}) for d in disks]
        failures = _failed(await run_all(ctx.node, steps))
        if failures:
            raise RuntimeError("; ".join(failures))
    else:
        await defer.gatherResults([defer.ensureDeferred(repo.update("vdisk", d.guid, {"vmachine_guid": None}))
                                   for d in disks], consumeErrors=True)
    await repo.delete("vmachine", vmachine_guid)
    await publish_event(ctx.node.store, "vmachine_deleted", {"vmachine_guid": vmachine_guid,
                                                              "name": machine.data.get("name")})
    return True
