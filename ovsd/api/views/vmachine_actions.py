"""vMachine register, delete and actions (contract §6): each acts on the vMachine's vDisks on their nodes.

There is no hypervisor integration: a vMachine is ovsd's record of a group of vDisks, and its
``hypervisor_status`` stays UNKNOWN. What the model can refuse is refused here (406 with the original's
reason): template actions on a non-template, snapshot/rollback of a template, an unknown snapshot group.
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, R, endpoint
from ovsd.api.errors import ApiError, not_acceptable, object_not_found
from ovsd.api.params import GUID, Param
from ovsd.api.views import storage  # noqa: F401  (declares the vmachines resource)
from ovsd.api.views.common import repository
from ovsd.controllers import vdisk as vdisks
from ovsd.controllers import vmachine as vmachines
from ovsd.dal.repository import DataObject, VersionConflict
from ovsd.dal.serializer import serialize_one
from ovsd.messages import publish_event

DELETE_WAIT = 120.0
REGISTER_ATTEMPTS = 3


async def _machine(call: Call) -> DataObject:
    return await repository(call).get("vmachine", call.guid)


def _template(machine: DataObject, wanted: bool) -> None:
    if wanted and not machine.data.get("is_vtemplate"):
        raise not_acceptable("vMachine is not a vTemplate")
    if not wanted and machine.data.get("is_vtemplate"):
        raise not_acceptable("vMachine should not be a vTemplate")


async def _queue(call: Call, task_name: str, **kwargs: Any) -> str:
    return await call.context.tasks.enqueue(task_name, {"vmachine_guid": call.guid, **kwargs})


async def _group(call: Call, timestamp: str) -> None:
    try:
        await vmachines.group_at(repository(call), call.guid, timestamp)
    except vdisks.Refused as e:
        raise not_acceptable(str(e)) from None


async def _served_disks(call: Call) -> list[DataObject]:
    disks = await vmachines.disks_of(repository(call), call.guid)
    for disk in disks:
        try:
            await vdisks.served_by(repository(call), disk)
        except vdisks.Refused as e:
            raise not_acceptable(str(e)) from None
    return disks


async def _serving_pmachine(repo: Any, disk: Any) -> str | None:
    """The pMachine of the StorageRouter whose StorageDriver serves ``disk`` (None when it is not served)."""
    driver_guid = disk.data.get("storagedriver_guid")
    if not driver_guid:
        return None
    driver = await repo.get("storagedriver", driver_guid)
    router = await repo.get("storagerouter", driver.data["storagerouter_guid"])
    found = router.data.get("pmachine_guid")
    return str(found) if found else None


@endpoint(resource="vmachines", method="POST", kind="create", roles=RW, returns="object", params=(
    Param("name", str, mandatory=True), Param("description", str, default="", text=True),
    Param("pmachine_guid", GUID), Param("vdisks_guids", list, default=[], description="its vDisks, in order")))
async def register(call: Call) -> Any:
    """Register a vMachine: a name and its vDisks (none of them attached to another vMachine)."""
    repo = repository(call)
    p = call.params
    name = p["name"].strip()
    if not name:
        raise ApiError(400, "invalid_data", "Invalid data passed: name must not be empty")
    guids = p["vdisks_guids"]
    if not all(isinstance(g, str) for g in guids) or len(set(guids)) != len(guids):
        raise ApiError(400, "invalid_data", "Invalid data passed: vdisks_guids must be distinct vDisk GUIDs")
    for _ in range(REGISTER_ATTEMPTS):
        disks = await repo.get_many("vdisk", guids)
        if len(disks) != len(guids):
            raise object_not_found("vdisk")
        for disk in disks:
            if disk.data.get("vmachine_guid"):
                raise not_acceptable(f"vDisk {disk.data.get('name')} is attached to another vMachine")
        pmachine_guid = p.get("pmachine_guid")
        if pmachine_guid:
            await repo.get("pmachine", pmachine_guid)
        elif disks:
            # where it runs, when not said: the pMachine of the node serving its first vDisk (the seed era's GUI
            # shows every vMachine's host and waits forever for one without)
            pmachine_guid = await _serving_pmachine(repo, disks[0])
        vpools = {d.data.get("vpool_guid") for d in disks}
        created = repo.planned_create("vmachine", {
            "name": name, "description": p["description"] or None, "pmachine_guid": pmachine_guid,
            "vpool_guid": vpools.pop() if len(vpools) == 1 else None,
        })
        # the vMachine and every vDisk's link to it in one change set: a process that dies in between leaves
        # no vMachine with some of its disks; a vDisk changed meanwhile (attached elsewhere) makes it read again
        attach = [repo.planned_change(disk, {"vmachine_guid": created.guid, "order": order})
                  for order, disk in enumerate(disks)]
        try:
            await repo.apply([created, *attach])
        except VersionConflict:
            continue
        break
    else:
        raise VersionConflict("the vDisks kept changing while the vMachine was registered")
    await publish_event(call.context.store, "vmachine_created", {"vmachine_guid": created.guid, "name": name})
    return await serialize_one(repo, await repo.get("vmachine", created.guid), None)


@endpoint(resource="vmachines", method="DELETE", roles=RW, returns="none")
async def delete(call: Call) -> None:
    """Unregister a vMachine (its vDisks stay); a template is deleted with its vDisks."""
    machine = await _machine(call)
    if machine.data.get("is_vtemplate") and await _children(call):
        raise not_acceptable("vTemplate has children: it cannot be deleted")
    task_id = await _queue(call, "vmachine.delete")
    record = await call.context.tasks.wait(task_id, DELETE_WAIT)
    if record is None or record.get("status") != "SUCCESS":
        raise not_acceptable(str((record or {}).get("error") or "the vMachine was not removed in time"))


@endpoint(resource="vmachines", method="POST", action="snapshot", roles=RW, returns="task", fields=(), params=(
    Param("name", str, mandatory=True), Param("consistent", bool, mandatory=True),
    Param("sticky", bool, default=False)))
async def snapshot(call: Call) -> Any:
    """Task: one snapshot of all its vDisks at one instant; result the group's timestamp."""
    _template(await _machine(call), False)
    if not await _served_disks(call):
        raise not_acceptable("vMachine has no vDisks")
    return await _queue(call, "vmachine.snapshot", name=call.params["name"], consistent=call.params["consistent"],
                        sticky=call.params["sticky"])


@endpoint(resource="vmachines", method="POST", action="rollback", roles=RW, returns="task", fields=(),
          params=(Param("timestamp", (str, int), mandatory=True),))
async def rollback(call: Call) -> Any:
    """Task: every vDisk back to the snapshot group of that timestamp."""
    _template(await _machine(call), False)
    await _group(call, str(call.params["timestamp"]))
    return await _queue(call, "vmachine.rollback", timestamp=str(call.params["timestamp"]))


@endpoint(resource="vmachines", method="POST", action="delete_snapshot", roles=RW, returns="task", fields=(),
          params=(Param("snapshot_timestamp", (str, int), mandatory=True),))
async def delete_snapshot(call: Call) -> Any:
    """Task: remove the snapshot group of that timestamp from every vDisk."""
    stamp = str(call.params["snapshot_timestamp"])
    await _group(call, stamp)
    return await _queue(call, "vmachine.delete_snapshot", timestamp=stamp)


@endpoint(resource="vmachines", method="POST", action="set_as_template", roles=RW, returns="task", fields=())
async def set_as_template(call: Call) -> Any:
    """Task: make the vMachine and every vDisk of it a template."""
    await _machine(call)
    await _served_disks(call)
    return await _queue(call, "vmachine.set_as_template")


@endpoint(resource="vmachines", method="POST", action="create_from_template", roles=RW, returns="task", fields=(),
          params=(Param("pmachineguid", GUID, mandatory=True), Param("name", str, mandatory=True),
                  Param("description", str, default="", text=True)))
async def create_from_template(call: Call) -> Any:
    """Task: a new vMachine of thin children of the template's vDisks; result its guid."""
    _template(await _machine(call), True)
    await repository(call).get("pmachine", call.params["pmachineguid"])
    return await _queue(call, "vmachine.create_from_template", pmachine_guid=call.params["pmachineguid"],
                        name=call.params["name"], description=call.params["description"])


@endpoint(resource="vmachines", method="POST", action="create_multiple_from_template", roles=RW, returns="task",
          fields=(), params=(Param("pmachineguids", (list, str), mandatory=True), Param("amount", int, mandatory=True),
                             Param("start", int, mandatory=True), Param("name", str, mandatory=True),
                             Param("description", str, default="", text=True)))
async def create_multiple_from_template(call: Call) -> Any:
    """Task: ``amount`` vMachines from the template, spread over the pMachines; result their guids."""
    _template(await _machine(call), True)
    given = call.params["pmachineguids"]
    guids = [g.strip() for g in (given.split(",") if isinstance(given, str) else given) if str(g).strip()]
    if not guids:
        raise not_acceptable("No pMachines given")
    for guid in guids:
        await repository(call).get("pmachine", guid)
    return await _queue(call, "vmachine.create_multiple_from_template", pmachine_guids=guids,
                        amount=max(1, call.params["amount"]), start=max(0, call.params["start"]),
                        name=call.params["name"], description=call.params["description"])


@endpoint(resource="vmachines", method="POST", action="clone_from_snapshot", roles=RW, returns="task", fields=(),
          params=(Param("snapshot_timestamp", (str, int), mandatory=True),
                  Param("new_machine_name", str, mandatory=True)))
async def clone_from_snapshot(call: Call) -> Any:
    """Task: a new vMachine of thin clones of the snapshot group at that timestamp; result its guid."""
    stamp = str(call.params["snapshot_timestamp"])
    await _group(call, stamp)
    return await _queue(call, "vmachine.clone_from_snapshot", timestamp=stamp,
                        new_machine_name=call.params["new_machine_name"])


async def _children(call: Call) -> list[str]:
    repo = repository(call)
    children: set[str] = set()
    for disk in await vmachines.disks_of(repo, call.guid):
        for child in await repo.get_many("vdisk", await repo.reverse_guids("vdisk", disk.guid, "child_vdisks")):
            if child.data.get("vmachine_guid"):
                children.add(str(child.data["vmachine_guid"]))
    return sorted(children)


@endpoint(resource="vmachines", method="GET", link="get_children", roles=R, returns="value")
async def get_children(call: Call) -> Any:
    """The vMachines made from this template (406 unless it is a template)."""
    _template(await _machine(call), True)
    return await _children(call)


@endpoint(resource="vmachines", method="GET", link="get_target_pmachines", roles=R, returns="value")
async def get_target_pmachines(call: Call) -> Any:
    """The pMachines with a StorageDriver for every vPool the template uses (406 unless it is a template)."""
    repo = repository(call)
    _template(await _machine(call), True)
    vpools = {str(d.data["vpool_guid"]) for d in await vmachines.disks_of(repo, call.guid)}
    targets = []
    for pmachine in await repo.guids("pmachine"):
        routers = set(await repo.reverse_guids("pmachine", pmachine, "storagerouters"))
        drivers = await repo.get_many("storagedriver", [g for r in routers
                                                        for g in await repo.reverse_guids("storagerouter", r,
                                                                                          "storagedrivers")])
        if vpools <= {str(d.data.get("vpool_guid")) for d in drivers}:
            targets.append(pmachine)
    return targets
