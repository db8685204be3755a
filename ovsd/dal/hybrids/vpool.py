"""VPool: a storage pool exposed on StorageRouters by StorageDrivers."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, dynamic_of
from ovsd.dal.hybrids import storagestats


async def _status(obj: Any, repo: Any) -> Any:
    return (obj.data.get("lifecycle") or {}).get("status")


async def _stored_data(obj: Any, repo: Any) -> int:
    vdisks = await repo.get_many("vdisk", await repo.reverse_guids("vpool", obj.guid, "vdisks"))
    return await storagestats.stored(repo, vdisks)


async def _drivers(obj: Any, repo: Any) -> list[str]:
    return list(await repo.reverse_guids("vpool", obj.guid, "storagedrivers"))


TYPE = ObjectType(
    kind="vpool",
    doc="A vPool",
    props=[
        Prop("name", str, mandatory=True, unique=True, doc="Name of the vPool"),
        Prop("description", str, text=True, doc="Description of the vPool"),
        Prop("size", int, doc="Size of the vPool"),
        Prop("login", str, doc="Login for the backend"),
        Prop("password", str, secret=True, doc="Password for the backend; never sent"),
        Prop("connection", str, doc="Connection (host:port) of the backend"),
        Prop("type", str, mandatory=True, allowed=("LOCAL", "DISTRIBUTED", "CEPH_S3", "AMAZON_S3", "SWIFT_S3"),
             writable=False, doc="Backend type"),
        Prop("metadata", dict, default={}, doc="Backend metadata"),
        Prop("lifecycle", dict, default={}, writable=False, secret=True,
             doc="internal: status (INSTALLING, EXTENDING, RUNNING, SHRINKING, DELETING, FAILURE) and why"),
    ],
    dynamics=[
        dynamic_of("status", str, 10, _status,
                   "INSTALLING, EXTENDING, RUNNING, SHRINKING, DELETING or FAILURE (null: a vPool ovsd did not add)"),
        dynamic_of("statistics", dict, storagestats.TIMEOUT, storagestats.of_drivers(_drivers),
                   "I/O statistics: the sum of its StorageDrivers' counters, with its own rates"),
        dynamic_of("stored_data", int, 60, _stored_data, "Bytes its vDisks' images take on disk"),
    ],
    default_sort=("name",),
)
