"""StorageDrivers: whether one may be removed from its vPool."""

from __future__ import annotations

from ovsd.dal.repository import Repository


async def can_be_deleted(repo: Repository, guid: str) -> bool:
    """False while the StorageDriver serves any vDisk (each vDisk records the driver that serves it)."""
    await repo.get("storagedriver", guid)  # ObjectNotFound for an unknown one
    return not await repo.reverse_guids("storagedriver", guid, "vdisks")
