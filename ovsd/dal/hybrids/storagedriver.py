"""StorageDriver: the process serving one vPool on one StorageRouter."""

import json
from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import storagestats
from ovsd.store import keys


def _live(field: str) -> Any:
    """A dynamic read from the state the StorageDriver's node pushed (null once that node stopped pushing)."""

    async def compute(obj: Any, repo: Any) -> Any:
        raw = await repo.store.execute("GET", keys.driver_live(obj.guid))
        return json.loads(raw).get(field) if raw else None

    return compute


async def _stored_data(obj: Any, repo: Any) -> int:
    vdisks = await repo.get_many("vdisk", await repo.reverse_guids("storagedriver", obj.guid, "vdisks"))
    return await storagestats.stored(repo, vdisks)


async def _itself(obj: Any, repo: Any) -> list[str]:
    return [obj.guid]


TYPE = ObjectType(
    kind="storagedriver",
    doc="A StorageDriver: one vPool served on one StorageRouter",
    props=[
        Prop("name", str, mandatory=True, doc="Name of the StorageDriver"),
        Prop("description", str, text=True, doc="Description of the StorageDriver"),
        Prop("storagedriver_id", str, mandatory=True, unique=True, writable=False,
             doc="ID of the StorageDriver as known by the StorageDriver processes"),
        Prop("port", int, doc="Base port of the StorageDriver process"),
        Prop("cluster_ip", str, doc="Ip for inter-StorageDriver communications"),
        Prop("storage_ip", str, doc="Ip on which to expose the mountpoint"),
        Prop("mountpoint", str, doc="Mountpoint on which the served vPool is available"),
        Prop("mountpoint_temp", str, doc="Temporary data mountpoint"),
        Prop("mountpoint_bfs", str, doc="Mountpoint where the data is stored (LOCAL/DISTRIBUTED backends)"),
        Prop("mountpoint_md", str, doc="Metadata mountpoint"),
        Prop("mountpoint_readcache1", str, doc="First read cache mountpoint"),
        Prop("mountpoint_readcache2", str, default="", doc="Second read cache mountpoint"),
        Prop("mountpoint_writecache", str, doc="Write cache mountpoint"),
        Prop("mountpoint_foc", str, doc="Failover cache mountpoint"),
    ],
    relations=[
        Relation("vpool", "vpool", "storagedrivers", mandatory=True, writable=False),
        Relation("storagerouter", "storagerouter", "storagedrivers", mandatory=True, writable=False),
    ],
    dynamics=[
        dynamic_of("status", str, 0, _live("status"),
                   "RUNNING | HALTED | FAILURE of its process, as its node reports it (null when not reported)"),
        dynamic_of("pid", int, 0, _live("pid"), "pid of its process on its node"),
        dynamic_of("restarts", int, 0, _live("restarts"), "restarts of its process after crashes"),
        dynamic_of("last_exit", str, 0, _live("last_exit"), "how its process last ended (exit code or signal)"),
        dynamic_of("statistics", dict, storagestats.TIMEOUT, storagestats.of_drivers(_itself),
                   "I/O statistics of its process (its node's counters of the daemon: data_read, data_written, "
                   "read_operations, write_operations) and their rates; the other counters are 0"),
        dynamic_of("stored_data", int, 60, _stored_data, "Bytes the images of the vDisks it serves take on disk"),
    ],
)
