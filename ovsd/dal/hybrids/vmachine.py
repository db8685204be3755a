"""VMachine: a virtual machine whose disks live on vPools."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import unmeasured


async def _vpools_guids(obj: Any, repo: Any) -> list[str]:
    disks = await repo.get_many("vdisk", await repo.reverse_guids("vmachine", obj.guid, "vdisks"))
    return sorted({d.data["vpool_guid"] for d in disks if d.data.get("vpool_guid")})


TYPE = ObjectType(
    kind="vmachine",
    doc="A virtual machine",
    props=[
        Prop("name", str, mandatory=True, doc="Name of the vMachine"),
        Prop("description", str, text=True, doc="Description of the vMachine"),
        Prop("hypervisor_id", str, doc="The identifier of the vMachine on the hypervisor"),
        Prop("devicename", str, doc="The name of the container file describing the vMachine"),
        Prop("is_vtemplate", bool, default=False, doc="Whether this vMachine is a template"),
        Prop("status", str, default="OK", allowed=("OK", "NOK", "CREATED", "SYNC", "SYNC_NOK"),
             doc="The status of the vMachine"),
    ],
    relations=[
        Relation("pmachine", "pmachine", "vmachines", doc="The pMachine running the vMachine"),
        Relation("vpool", "vpool", "vmachines", doc="The vPool the vMachine is stored on (for VSAs: none)"),
    ],
    dynamics=[
        dynamic_of("snapshots", list, 60, unmeasured.no_snapshots,
                   "Snapshots grouped by timestamp ([] until the data plane exists)"),
        dynamic_of("hypervisor_status", str, 300, unmeasured.unknown,
                   "Status on the hypervisor (UNKNOWN until the hypervisor integration exists)"),
        dynamic_of("statistics", dict, 5, unmeasured.statistics, "I/O statistics (zeros until the data plane exists)"),
        dynamic_of("stored_data", int, 60, unmeasured.stored_data, "Data stored (0 until the data plane exists)"),
        dynamic_of("failover_mode", str, 60, unmeasured.unknown, "Failover mode (UNKNOWN until the data plane exists)"),
        dynamic_of("storagerouters_guids", list, 15, unmeasured.no_guids,
                   "StorageRouters serving its disks ([] until the data plane exists)"),
        dynamic_of("vpools_guids", list, 15, _vpools_guids, "vPools holding its vDisks"),
    ],
    default_sort=("name", "vpool_guid"),
)
