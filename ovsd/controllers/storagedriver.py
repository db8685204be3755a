"""StorageDrivers: whether one may be removed from its vPool."""

from __future__ import annotations

from ovsd.dal.repository import Repository


async def can_be_deleted(repo: Repository, guid: str) -> bool:
    """False while any vDisk of the StorageDriver's vPool is served by it, else True.

    A vDisk's serving StorageDriver is its ``storagedriver_id`` dynamic (what the volume driver reports;
    null until the data plane exists, so until then no vDisk is served by any StorageDriver).
    """
    driver = await repo.get("storagedriver", guid)
    vdisk_guids = await repo.reverse_guids("vpool", str(driver.data["vpool_guid"]), "vdisks")
    vdisks = await repo.get_many("vdisk", vdisk_guids)
    served_by = await repo.dynamics(vdisks, ["storagedriver_id"])
    return not any(values.get("storagedriver_id") == driver.data["storagedriver_id"] for values in served_by)
