"""StorageRouter: one node of the cluster (one ovsd daemon)."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import storagestats, unmeasured
from ovsd.dal.status import storagerouter_status


async def _status(obj: Any, repo: Any) -> str:
    return storagerouter_status(obj.data.get("heartbeats") or {}, repo.now(), repo.thresholds)


async def _vpools_guids(obj: Any, repo: Any) -> list[str]:
    drivers = await repo.reverse_guids("storagerouter", obj.guid, "storagedrivers")
    vpools = {d.data.get("vpool_guid") for d in await repo.get_many("storagedriver", drivers)}
    return sorted(v for v in vpools if v)


async def _served_vdisks(obj: Any, repo: Any) -> list[Any]:
    drivers = await repo.reverse_guids("storagerouter", obj.guid, "storagedrivers")
    served = await repo.reverse_guids_many("storagedriver", drivers, "vdisks") if drivers else []
    found: list[Any] = await repo.get_many("vdisk", sorted({g for guids in served for g in guids}))
    return found


async def _vdisks_guids(obj: Any, repo: Any) -> list[str]:
    return [v.guid for v in await _served_vdisks(obj, repo)]


async def _vmachines_guids(obj: Any, repo: Any) -> list[str]:
    vdisks = await _served_vdisks(obj, repo)
    return sorted({str(v.data["vmachine_guid"]) for v in vdisks if v.data.get("vmachine_guid")})


async def _stored_data(obj: Any, repo: Any) -> int:
    return await storagestats.stored(repo, await _served_vdisks(obj, repo))


async def _drivers(obj: Any, repo: Any) -> list[str]:
    return list(await repo.reverse_guids("storagerouter", obj.guid, "storagedrivers"))


TYPE = ObjectType(
    kind="storagerouter",
    doc="A StorageRouter: one node of the cluster",
    props=[
        Prop("name", str, mandatory=True, doc="Name of the StorageRouter"),
        Prop("description", str, text=True, doc="Description of the StorageRouter"),
        Prop("machine_id", str, mandatory=True, unique=True, writable=False,
             doc="Internal machine identifier of the StorageRouter"),
        Prop("ip", str, mandatory=True, writable=False, doc="Ip for inter-StorageRouter communication"),
        Prop("heartbeats", dict, default={}, writable=False,
             doc="Heartbeat timestamps of the node's components (process, celery)"),
    ],
    relations=[Relation("pmachine", "pmachine", "storagerouters", mandatory=True, writable=False,
                        doc="The pMachine hosting this StorageRouter")],
    dynamics=[
        dynamic_of("status", str, 0, _status, "OK | WARNING | FAILURE | UNKNOWN, from the heartbeat ages"),
        dynamic_of("statistics", dict, storagestats.TIMEOUT, storagestats.of_drivers(_drivers),
                   "I/O statistics: the sum of its StorageDrivers' counters, with its own rates"),
        dynamic_of("stored_data", int, 60, _stored_data, "Bytes the images of the vDisks served here take on disk"),
        dynamic_of("failover_mode", str, 60, unmeasured.unknown,
                   "Failover mode status (UNKNOWN until the data plane exists)"),
        dynamic_of("vmachines_guids", list, 15, _vmachines_guids, "vMachines with a vDisk served here"),
        dynamic_of("vpools_guids", list, 15, _vpools_guids, "vPools served by this StorageRouter"),
        dynamic_of("vdisks_guids", list, 15, _vdisks_guids, "vDisks served here"),
    ],
    default_sort=("name",),
)
