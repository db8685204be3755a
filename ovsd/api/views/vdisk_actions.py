"""vDisk create, delete and actions (contract §6): tasks on the node whose StorageDriver serves the vDisk.

What the model alone can refuse is refused here with 406 and the original's reason, before any task: no
StorageDriver of the vPool on the StorageRouter, a name taken in the vPool, a delete while clones or
template children depend on it, a snapshot that clones sit on, template actions on a non-template (and
changes of a template). ``DELETE`` answers 204 once the volume is removed (it waits for its task).
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, RWM, R, endpoint
from ovsd.api.errors import ApiError, node_unavailable, not_acceptable
from ovsd.api.params import GUID, Param
from ovsd.api.views import storage  # noqa: F401  (declares the vdisks resource)
from ovsd.api.views.common import repository
from ovsd.controllers import vdisk as vdisks
from ovsd.dal.repository import DataObject
from ovsd.tasks import NodeUnavailable

DELETE_WAIT = 60.0


async def _vdisk(call: Call) -> DataObject:
    return await repository(call).get("vdisk", call.guid)


async def _queued(call: Call, vdisk: DataObject, task_name: str, **kwargs: Any) -> str:
    try:
        return await vdisks.run_on_vdisk(call.context, vdisk, task_name, kwargs)
    except vdisks.Refused as e:
        raise not_acceptable(str(e)) from None
    except NodeUnavailable as e:
        raise node_unavailable(e.args[0] if e.args else "") from None


async def _on_router(call: Call, router_guid: str, task_name: str, **kwargs: Any) -> str:
    try:
        return await vdisks.run_on_router(call.context, router_guid, task_name, kwargs)
    except NodeUnavailable as e:
        raise node_unavailable(e.args[0] if e.args else "") from None


def _not_template(vdisk: DataObject, what: str) -> None:
    if vdisks.is_template(vdisk):
        raise not_acceptable(f"vDisk {vdisk.data.get('name')} is a vTemplate: it cannot {what}")


def _template(vdisk: DataObject) -> None:
    if not vdisks.is_template(vdisk):
        raise not_acceptable("vDisk is not a vTemplate")


def _name(value: str, field: str = "name") -> str:
    name = value.strip()
    if not name or len(name) > 128 or "/" in name:
        raise ApiError(400, "invalid_data", f"Invalid data passed: {field} must be 1 to 128 characters without '/'")
    return name


async def _target_driver(call: Call, vdisk: DataObject, router_guid: str) -> DataObject:
    repo = repository(call)
    router = await repo.get("storagerouter", router_guid)
    vpool = await repo.get("vpool", str(vdisk.data["vpool_guid"]))
    driver = await vdisks.driver_on(repo, vpool.guid, router.guid)
    if driver is None:
        raise not_acceptable(f"No storagedriver found for vPool: {vpool.data['name']} and storageRouter: "
                             f"{router.data['name']}")
    return driver


async def _free_name(call: Call, vpool_guid: str, name: str) -> None:
    if await vdisks.name_taken(repository(call), vpool_guid, name):
        raise not_acceptable(f"A vDisk with name {name} already exists in this vPool")


@endpoint(resource="vdisks", method="POST", kind="create", roles=RW, returns="task", status=202, params=(
    Param("name", str, mandatory=True), Param("size", int, mandatory=True, description="bytes"),
    Param("vpool_guid", GUID, mandatory=True), Param("storagerouter_guid", GUID, mandatory=True)))
async def create_vdisk(call: Call) -> Any:
    """Task: a new vDisk (a qcow2 image exported over NBD) on the vPool's StorageDriver of that StorageRouter."""
    repo = repository(call)
    p = call.params
    name = _name(p["name"])
    if not 0 < p["size"] <= vdisks.MAX_SIZE:
        raise ApiError(400, "invalid_data", "Invalid data passed: size must be between 1 byte and 2 TiB")
    vpool = await repo.get("vpool", p["vpool_guid"])
    router = await repo.get("storagerouter", p["storagerouter_guid"])
    driver = await vdisks.driver_on(repo, vpool.guid, router.guid)
    if driver is None:
        raise not_acceptable(f"No storagedriver found for vPool: {vpool.data['name']} and storageRouter: "
                             f"{router.data['name']}")
    await _free_name(call, vpool.guid, name)
    return await _on_router(call, router.guid, "vdisk.create", storagerouter_guid=router.guid, vpool_guid=vpool.guid,
                            storagedriver_guid=driver.guid, name=name, size=p["size"])


@endpoint(resource="vdisks", method="DELETE", roles=RW, returns="none")
async def delete_vdisk(call: Call) -> None:
    """Remove the vDisk and its volume (refused while clones or template children depend on it)."""
    repo = repository(call)
    vdisk = await _vdisk(call)
    children = await repo.reverse_guids("vdisk", vdisk.guid, "child_vdisks")
    if children:
        raise not_acceptable(f"vDisk {vdisk.data.get('name')} has {len(children)} clones or template children: "
                             "it cannot be deleted")
    if not vdisk.data.get("volume"):
        await repo.delete("vdisk", vdisk.guid)  # nothing serves it: only the model object goes
        return
    task_id = await _queued(call, vdisk, "vdisk.delete")
    record = await call.context.tasks.wait(task_id, DELETE_WAIT)
    if record is None or record.get("status") != "SUCCESS":
        raise not_acceptable(str((record or {}).get("error") or "the vDisk was not removed in time"))


@endpoint(resource="vdisks", method="POST", action="rollback", roles=RW, returns="task", fields=(),
          params=(Param("timestamp", (str, int), mandatory=True),))
async def rollback(call: Call) -> Any:
    """Task: bring the vDisk back to the snapshot of that timestamp."""
    vdisk = await _vdisk(call)
    _not_template(vdisk, "be rolled back")
    stamp = str(call.params["timestamp"])
    if not any(str(r["timestamp"]) == stamp for r in vdisk.data.get("snapshot_records") or []):
        raise not_acceptable(f"No snapshot found for timestamp {stamp}")
    return await _queued(call, vdisk, "vdisk.rollback", timestamp=stamp)


@endpoint(resource="vdisks", method="POST", action="create_snapshot", roles=RW, returns="task", fields=(), params=(
    Param("name", str, mandatory=True), Param("consistent", bool, default=False),
    Param("automatic", bool, default=False), Param("sticky", bool, default=False)))
async def create_snapshot(call: Call) -> Any:
    """Task: a snapshot of the vDisk now; its result is the snapshot's guid."""
    vdisk = await _vdisk(call)
    _not_template(vdisk, "take snapshots")
    p = call.params
    if p["automatic"] and p["sticky"]:
        raise not_acceptable("A snapshot cannot be automatic and sticky")
    return await _queued(call, vdisk, "vdisk.create_snapshot", name=p["name"], consistent=p["consistent"],
                         automatic=p["automatic"], sticky=p["sticky"])


@endpoint(resource="vdisks", method="POST", action="remove_snapshot", roles=RW, returns="task", fields=(),
          params=(Param("snapshot_id", str, mandatory=True),))
async def remove_snapshot(call: Call) -> Any:
    """Task: remove a snapshot (refused while a clone depends on it)."""
    vdisk = await _vdisk(call)
    refusal = await vdisks.removal_refusal(repository(call), vdisk, call.params["snapshot_id"])
    if refusal:
        raise not_acceptable(refusal)
    return await _queued(call, vdisk, "vdisk.remove_snapshot", snapshot_id=call.params["snapshot_id"])


@endpoint(resource="vdisks", method="POST", action="clone", roles=RW, returns="task", fields=(), params=(
    Param("name", str, mandatory=True), Param("storagerouter_guid", GUID, mandatory=True),
    Param("snapshot_id", str)))
async def clone(call: Call) -> Any:
    """Task: a thin clone of a snapshot (a new automatic one when none is given); result {diskguid, name,
    backingdevice}."""
    vdisk = await _vdisk(call)
    _not_template(vdisk, "be cloned (create from the template instead)")
    name = _name(call.params["name"])
    await _target_driver(call, vdisk, call.params["storagerouter_guid"])
    await _free_name(call, str(vdisk.data["vpool_guid"]), name)
    snapshot_id = call.params.get("snapshot_id")
    if snapshot_id is not None and not any(r["guid"] == snapshot_id for r in vdisk.data.get("snapshot_records") or []):
        raise not_acceptable(f"Snapshot {snapshot_id} does not belong to disk {vdisk.data.get('name')}")
    return await _queued(call, vdisk, "vdisk.clone", name=name, storagerouter_guid=call.params["storagerouter_guid"],
                         snapshot_id=snapshot_id)


@endpoint(resource="vdisks", method="POST", action="set_as_template", roles=RW, returns="task", fields=())
async def set_as_template(call: Call) -> Any:
    """Task: make the vDisk a template (read-only, the base of thin children)."""
    return await _queued(call, await _vdisk(call), "vdisk.set_as_template")


@endpoint(resource="vdisks", method="POST", action="create_from_template", roles=RW, returns="task", fields=(),
          params=(Param("name", str, mandatory=True), Param("storagerouter_guid", GUID, mandatory=True)))
async def create_from_template(call: Call) -> Any:
    """Task: a thin child of this template on that StorageRouter; result {diskguid, name, backingdevice}."""
    vdisk = await _vdisk(call)
    _template(vdisk)
    name = _name(call.params["name"])
    driver = await _target_driver(call, vdisk, call.params["storagerouter_guid"])
    await _free_name(call, str(vdisk.data["vpool_guid"]), name)
    volume = vdisk.data["volume"]
    return await _on_router(call, call.params["storagerouter_guid"], "vdisk.serve_child", source_guid=vdisk.guid,
                            chain=[volume["image"], *volume["chain"]], name=name, storagedriver_guid=driver.guid)


@endpoint(resource="vdisks", method="POST", action="extend", roles=RW, returns="task", fields=(),
          params=(Param("new_size", int, mandatory=True, description="bytes; a vDisk only grows"),))
async def extend(call: Call) -> Any:
    """Task: grow the vDisk to new_size bytes."""
    vdisk = await _vdisk(call)
    _not_template(vdisk, "be resized")
    new_size = call.params["new_size"]
    if not int(vdisk.data["size"]) <= new_size <= vdisks.MAX_SIZE:
        raise not_acceptable(f"a vDisk only grows: new_size must be between its size ({vdisk.data['size']}) "
                             "and 2 TiB")
    return await _queued(call, vdisk, "vdisk.extend", new_size=new_size)


@endpoint(resource="vdisks", method="GET", link="get_children", roles=R, returns="value")
async def get_children(call: Call) -> Any:
    """The GUIDs of a template's children (406 for a vDisk that is not a template)."""
    vdisk = await _vdisk(call)
    _template(vdisk)
    return await repository(call).reverse_guids("vdisk", vdisk.guid, "child_vdisks")


@endpoint(resource="vdisks", method="GET", link="get_config_params", roles=R, returns="task")
async def get_config_params(call: Call) -> Any:
    """Task: the vDisk's settings that mean something here (cache mode, write-through)."""
    return await _queued(call, await _vdisk(call), "vdisk.get_config_params")


@endpoint(resource="vdisks", method="POST", action="set_config_params", roles=RWM, returns="task", fields=(),
          params=(Param("new_config_params", dict, mandatory=True),))
async def set_config_params(call: Call) -> Any:
    """Task: change the cache mode or write-through of the vDisk (every other knob is refused by name)."""
    vdisk = await _vdisk(call)
    given = call.params["new_config_params"]
    try:
        settings = vdisks.check_config(given)
    except vdisks.Refused as e:
        raise not_acceptable(str(e)) from None
    return await _queued(call, vdisk, "vdisk.set_config_params", settings=settings)
