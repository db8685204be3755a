"""VDisk: a virtual disk served by a vPool.

What ovsd keeps of the volume itself is internal (never sent): ``volume``, the description its
StorageDriver needs to serve it again after a restart (ovsd.storage.vdisk.VDisk), and
``snapshot_records``, ovsd's own record of each snapshot (label, timestamp, flags, and the chain of
read-only images that is the snapshot). The dynamics read them.
"""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import storagestats, unmeasured
from ovsd.storage.launcher import nbd_uri


async def _driver(obj: Any, repo: Any) -> Any:
    guid = obj.data.get("storagedriver_guid")
    if not guid:
        return None
    found = await repo.get_many("storagedriver", [str(guid)])
    return found[0] if found else None


async def _snapshots(obj: Any, repo: Any) -> list[dict[str, Any]]:
    records = obj.data.get("snapshot_records") or []
    out = []
    for record in records:
        out.append({"guid": record["guid"], "timestamp": record["timestamp"], "label": record.get("label", ""),
                    "is_consistent": bool(record.get("is_consistent")),
                    "is_automatic": bool(record.get("is_automatic", True)),
                    "is_sticky": bool(record.get("is_sticky")), "in_backend": True,
                    "stored": int(record.get("stored") or 0)})
    return out


async def _info(obj: Any, repo: Any) -> dict[str, Any]:
    volume = obj.data.get("volume") or {}
    if not volume:
        return await unmeasured.volume_info(obj, repo)
    driver = await _driver(obj, repo)
    info: dict[str, Any] = {
        "volume_id": volume.get("export") or obj.guid, "namespace": obj.guid,
        "volume_size": int(volume.get("size") or 0), "lba_size": 512,
        "stored": await storagestats.stored(repo, [obj]),
        "object_type": "TEMPLATE" if volume.get("template") else "BASE",
        "parent_volume_id": obj.data.get("parent_vdisk_guid"),
        "parent_snapshot_id": obj.data.get("parentsnapshot"),
        "chain_depth": len(volume.get("chain") or []),
        # no failover cache: the GUI lower-cases this value, so it is a word, never null
        "failover_mode": "UNKNOWN", "halted": driver is None,
        "vrouter_id": driver.data.get("storagedriver_id") if driver else None,
    }
    if driver is not None and driver.data.get("storage_ip") and driver.data.get("port"):
        info["nbd_uri"] = nbd_uri(str(driver.data["storage_ip"]), int(driver.data["port"]),
                                  str(volume.get("export") or obj.guid))
    return info


async def _storagedriver_id(obj: Any, repo: Any) -> Any:
    driver = await _driver(obj, repo)
    return driver.data.get("storagedriver_id") if driver else None


async def _storagerouter_guid(obj: Any, repo: Any) -> Any:
    driver = await _driver(obj, repo)
    return driver.data.get("storagerouter_guid") if driver else None


async def _itself(obj: Any, repo: Any) -> list[str]:
    return [obj.guid]


async def _is_vtemplate(obj: Any, repo: Any) -> bool:
    return bool((obj.data.get("volume") or {}).get("template"))


TYPE = ObjectType(
    kind="vdisk",
    doc="A virtual disk",
    props=[
        Prop("name", str, doc="Name of the vDisk"),
        Prop("description", str, text=True, doc="Description of the vDisk"),
        Prop("size", int, mandatory=True, doc="Size of the vDisk in bytes"),
        Prop("devicename", str, doc="The name of the container file backing the vDisk"),
        Prop("order", int, doc="Order with which the vDisk is attached to a vMachine"),
        Prop("volume_id", str, writable=False, doc="ID of the vDisk in the volume driver (its NBD export name)"),
        Prop("parentsnapshot", str, writable=False, doc="Snapshot of the parent this vDisk was cloned from"),
        Prop("cinder_id", str, doc="Cinder Volume ID, for volumes managed through Cinder"),
        Prop("volume", dict, writable=False, secret=True,
             doc="internal: how its StorageDriver serves it (image, chain, size, template); never sent"),
        Prop("snapshot_records", list, default=[], writable=False, secret=True,
             doc="internal: ovsd's record of each snapshot (metadata and image chain); never sent"),
    ],
    relations=[
        Relation("vmachine", "vmachine", "vdisks", doc="The vMachine this vDisk is attached to"),
        Relation("vpool", "vpool", "vdisks", mandatory=True, writable=False, doc="The vPool of the vDisk"),
        Relation("parent_vdisk", "vdisk", "child_vdisks", writable=False, doc="The vDisk this one was cloned from"),
        Relation("storagedriver", "storagedriver", "vdisks", writable=False,
                 doc="The StorageDriver serving the vDisk (every action on it runs on that driver's node)"),
    ],
    dynamics=[
        dynamic_of("snapshots", list, 60, _snapshots,
                   "Snapshots: guid, timestamp (unix seconds), label, is_consistent, is_automatic, is_sticky, "
                   "in_backend, stored"),
        dynamic_of("info", dict, 60, _info,
                   "Volume information: size, stored (image allocation), object_type, nbd_uri to attach to"),
        dynamic_of("statistics", dict, storagestats.TIMEOUT, storagestats.of_vdisks(_itself),
                   "I/O statistics: data_written (distinct bytes written, from a dirty bitmap) and its rate; "
                   "the other counters are 0 (qemu-storage-daemon 7.2 counts no I/O per export)"),
        dynamic_of("storagedriver_id", str, 60, _storagedriver_id, "StorageDriver serving the vDisk"),
        dynamic_of("storagerouter_guid", str, 15, _storagerouter_guid, "StorageRouter serving the vDisk"),
        dynamic_of("is_vtemplate", bool, 60, _is_vtemplate, "Whether the vDisk is a template"),
    ],
    # the original refused a second vDisk of one devicename in a vPool; ovsd's devicename follows the name
    unique_within={"name": "vpool_guid"},
)
