"""vPool actions (contract §6): add_vpool on a StorageRouter, shrink_vpool, update_storagedrivers.

Each answers its task id at once; the work runs on the node that gets (or loses) the StorageDriver. What
the model alone can refuse is refused here, before any task: a call_parameters field missing or wrong
(406 invalid_data naming it), an S3 type (no block backend), a LOCAL vPool that already lives on another
node, a StorageRouter that is not a member, a StorageDriver of another vPool, a driver still serving vDisks.
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RWM, endpoint
from ovsd.api.errors import ApiError, node_unavailable, not_acceptable
from ovsd.api.params import Param
from ovsd.api.views import storage  # noqa: F401  (declares the storagerouters and vpools resources)
from ovsd.api.views.common import repository
from ovsd.controllers import storagerouter, vpool
from ovsd.tasks import NodeUnavailable


def _refused(description: str) -> ApiError:
    return ApiError(406, "invalid_data", description)


async def _on_router(call: Call, router_guid: str, task_name: str, **kwargs: Any) -> str:
    try:
        return await storagerouter.run_on_storagerouter(call.context, router_guid, task_name, kwargs)
    except NodeUnavailable:
        router = await repository(call).get("storagerouter", router_guid)
        raise node_unavailable(str(router.data.get("name") or router_guid)) from None


def _guid_list(value: Any, name: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _refused(f"Invalid data passed: {name} must be comma-separated GUIDs")
    return [i.strip().lower() for i in items if i.strip()]


@endpoint(resource="storagerouters", method="POST", action="add_vpool", roles=RWM, returns="task", fields=(),
          params=(Param("call_parameters", dict, mandatory=True,
                        description="vpool_name, type (LOCAL | DISTRIBUTED), connection_*, mountpoint_*, storage_ip, "
                                    "vrouter_port (the NBD port)"),))
async def add_vpool(call: Call) -> Any:
    """Task: create or extend a vPool with a StorageDriver (a qemu-storage-daemon) on this StorageRouter."""
    repo = repository(call)
    router = await repo.get("storagerouter", call.guid)
    try:
        parameters = vpool.check_parameters(call.params["call_parameters"])
    except vpool.ParameterError as e:
        raise _refused(str(e)) from None
    existing = await repo.find("vpool", "name", parameters["vpool_name"])
    if existing is not None:
        drivers = await vpool.drivers_of(repo, existing.guid)
        elsewhere = [d for d in drivers if d.data.get("storagerouter_guid") != router.guid]
        if existing.data["type"] == "LOCAL" and elsewhere:
            raise not_acceptable(f"A local vPool with name {parameters['vpool_name']} already exists")
        if existing.data["type"] != parameters["type"]:
            raise _refused(f"Invalid data passed: type must be {existing.data['type']}, the type of vPool "
                           f"{parameters['vpool_name']}")
    return await _on_router(call, router.guid, "storagerouter.add_vpool", parameters=parameters)


@endpoint(resource="vpools", method="POST", action="shrink_vpool", roles=RWM, returns="task", fields=(),
          params=(Param("storagerouter_guid", "guid", mandatory=True),))
async def shrink_vpool(call: Call) -> Any:
    """Task: remove the vPool's StorageDriver from a StorageRouter (the last one removes the vPool)."""
    repo = repository(call)
    pool = await repo.get("vpool", call.guid)
    router = await repo.get("storagerouter", call.params["storagerouter_guid"])
    mine = [d for d in await vpool.drivers_of(repo, pool.guid) if d.data.get("storagerouter_guid") == router.guid]
    if not mine:
        raise not_acceptable(f"Storage Router {router.data['name']} is not a member of vPool {pool.data['name']}")
    refusal = await vpool.removal_refusal(repo, mine[0])
    if refusal:
        raise not_acceptable(refusal)
    return await _on_router(call, router.guid, "storagerouter.remove_storagedriver", storagedriver_guid=mine[0].guid)


@endpoint(resource="vpools", method="POST", action="update_storagedrivers", roles=RWM, returns="task", fields=(),
          params=(Param("storagedriver_guid", "guid", mandatory=True),
                  Param("storagerouter_guids", (str, list), default=""),
                  Param("storagedriver_guids", (str, list), default="")))
async def update_storagedrivers(call: Call) -> Any:
    """Task: add the vPool to StorageRouters (settings of the given StorageDriver) and remove StorageDrivers."""
    repo = repository(call)
    pool = await repo.get("vpool", call.guid)
    template = await repo.get("storagedriver", call.params["storagedriver_guid"])
    if template.data.get("vpool_guid") != pool.guid:
        raise not_acceptable("Given Storage Driver does not belong to this vPool")
    routers = _guid_list(call.params["storagerouter_guids"], "storagerouter_guids")
    removed = _guid_list(call.params["storagedriver_guids"], "storagedriver_guids")
    for guid in routers:
        await repo.get("storagerouter", guid)
    for guid in removed:
        driver = await repo.get("storagedriver", guid)
        if driver.data.get("vpool_guid") != pool.guid:
            raise not_acceptable("Given Storage Driver does not belong to this vPool")
        refusal = await vpool.removal_refusal(repo, driver)
        if refusal:
            raise not_acceptable(refusal)
    return await call.context.tasks.enqueue("vpool.update_storagedrivers", {
        "vpool_guid": pool.guid, "storagedriver_guid": template.guid, "storagerouter_guids": routers,
        "storagedriver_guids": removed})
