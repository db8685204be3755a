"""VMachine: a virtual machine whose disks live on vPools."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import storagestats, unmeasured


async def _vpools_guids(obj: Any, repo: Any) -> list[str]:
    disks = await repo.get_many("vdisk", await repo.reverse_guids("vmachine", obj.guid, "vdisks"))
    return sorted({d.data["vpool_guid"] for d in disks if d.data.get("vpool_guid")})


async def _disks(obj: Any, repo: Any) -> list[Any]:
    return list(await repo.get_many("vdisk", await repo.reverse_guids("vmachine", obj.guid, "vdisks")))


def group_snapshots(disks: list[Any]) -> list[dict[str, Any]]:
    """Its disks' snapshots grouped by timestamp, as the original did: only timestamps every disk has a
    snapshot at, label and flags from the first disk, ``stored`` summed, ``in_backend`` all of them."""
    groups: dict[str, dict[str, Any]] = {}
    for disk in disks:
        for record in disk.data.get("snapshot_records") or []:
            stamp = str(record["timestamp"])
            group = groups.setdefault(stamp, {
                "timestamp": stamp, "label": record.get("label", ""),
                "is_consistent": bool(record.get("is_consistent")),
                "is_automatic": bool(record.get("is_automatic", True)), "is_sticky": bool(record.get("is_sticky")),
                "stored": 0, "in_backend": True, "snapshots": {}})
            group["stored"] += int(record.get("stored") or 0)
            group["snapshots"][disk.guid] = record["guid"]
    complete = [g for g in groups.values() if disks and len(g["snapshots"]) == len(disks)]
    return sorted(complete, key=lambda g: int(g["timestamp"]) if g["timestamp"].isdigit() else 0)


async def _snapshots(obj: Any, repo: Any) -> list[dict[str, Any]]:
    return group_snapshots(await _disks(obj, repo))


async def _stored_data(obj: Any, repo: Any) -> int:
    return await storagestats.stored(repo, await _disks(obj, repo))


async def _disk_guids(obj: Any, repo: Any) -> list[str]:
    return list(await repo.reverse_guids("vmachine", obj.guid, "vdisks"))


async def _storagerouters_guids(obj: Any, repo: Any) -> list[str]:
    drivers = {str(d.data["storagedriver_guid"]) for d in await _disks(obj, repo) if d.data.get("storagedriver_guid")}
    found = await repo.get_many("storagedriver", sorted(drivers))
    return sorted({str(d.data["storagerouter_guid"]) for d in found if d.data.get("storagerouter_guid")})


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
        dynamic_of("snapshots", list, 60, _snapshots,
                   "Snapshots grouped by timestamp: those every one of its vDisks has"),
        dynamic_of("hypervisor_status", str, 300, unmeasured.unknown,
                   "Status on the hypervisor (UNKNOWN: ovsd has no hypervisor integration)"),
        dynamic_of("statistics", dict, storagestats.TIMEOUT, storagestats.of_vdisks(_disk_guids),
                   "I/O statistics: the sum of its vDisks' counters, with its own rates"),
        dynamic_of("stored_data", int, 60, _stored_data, "Bytes its vDisks' images take on disk"),
        dynamic_of("failover_mode", str, 60, unmeasured.unknown, "Failover mode (UNKNOWN until the data plane exists)"),
        dynamic_of("storagerouters_guids", list, 15, _storagerouters_guids, "StorageRouters serving its vDisks"),
        dynamic_of("vpools_guids", list, 15, _vpools_guids, "vPools holding its vDisks"),
    ],
    default_sort=("name", "vpool_guid"),
)
