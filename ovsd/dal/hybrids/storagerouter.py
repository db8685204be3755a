"""StorageRouter: one node of the cluster (one ovsd daemon)."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import unmeasured
from ovsd.dal.status import storagerouter_status


async def _status(obj: Any, repo: Any) -> str:
    return storagerouter_status(obj.data.get("heartbeats") or {}, repo.now(), repo.context.config.agent)


async def _vpools_guids(obj: Any, repo: Any) -> list[str]:
    drivers = await repo.reverse_guids("storagerouter", obj.guid, "storagedrivers")
    vpools = {d.data.get("vpool_guid") for d in await repo.get_many("storagedriver", drivers)}
    return sorted(v for v in vpools if v)


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
        dynamic_of("statistics", dict, 5, unmeasured.statistics,
                   "Aggregated vDisk statistics (zeros until the data plane exists)"),
        dynamic_of("stored_data", int, 60, unmeasured.stored_data,
                   "Data stored by this StorageRouter's vPools (0 until the data plane exists)"),
        dynamic_of("failover_mode", str, 60, unmeasured.unknown,
                   "Failover mode status (UNKNOWN until the data plane exists)"),
        dynamic_of("vmachines_guids", list, 15, unmeasured.no_guids,
                   "vMachines served here ([] until the data plane exists)"),
        dynamic_of("vpools_guids", list, 15, _vpools_guids, "vPools served by this StorageRouter"),
        dynamic_of("vdisks_guids", list, 15, unmeasured.no_guids,
                   "vDisks served here ([] until the data plane exists)"),
    ],
    default_sort=("name",),
)
