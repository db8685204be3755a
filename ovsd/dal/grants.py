"""Role grants: the junction objects (RoleClient, RoleGroup) that give a client or a group a role.

A grant's guid is derived from what it joins (holder and role), so granting twice, from two nodes at once
or in a migration run again after a crash, finds the grant already there instead of making a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ovsd.dal.repository import DataObject, ObjectNotFound, Repository, UniqueConflict

#: holder kind -> its junction kind
JUNCTIONS = {"client": "roleclient", "group": "rolegroup"}
_NAMESPACE = uuid.UUID("8a3c51a6-6a43-4d0e-9a55-0f7d2b4c1e90")


def grant_guid(kind: str, holder_guid: str, role_guid: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{holder_guid}:{role_guid}"))


async def grants_of(repository: Repository, kind: str, holder_guid: str) -> list[DataObject]:
    """The junctions of a client or group."""
    junction = JUNCTIONS[kind]
    return await repository.get_many(junction, await repository.reverse_guids(kind, holder_guid, "roles"))


async def role_guids_of(repository: Repository, kind: str, holder_guid: str) -> list[str]:
    """The guids of the roles a client or group holds (sorted)."""
    return sorted({str(j.data["role_guid"]) for j in await grants_of(repository, kind, holder_guid)})


async def grant(repository: Repository, kind: str, holder_guid: str, role_guid: str) -> str:
    """Give a client or group a role (nothing changes when it holds it already); returns the junction guid."""
    guid = grant_guid(kind, holder_guid, role_guid)
    try:
        await repository.create(JUNCTIONS[kind], {"role_guid": role_guid, f"{kind}_guid": holder_guid}, guid=guid)
    except UniqueConflict:
        pass  # granted already
    return guid


async def revoke(repository: Repository, kind: str, junction_guid: str) -> None:
    try:
        await repository.delete(JUNCTIONS[kind], junction_guid)
    except ObjectNotFound:
        pass  # revoked already


async def set_roles(repository: Repository, kind: str, holder_guid: str, role_guids: Iterable[str]) -> None:
    """Make a client or group hold exactly these roles: missing grants added, the others revoked."""
    wanted = list(dict.fromkeys(role_guids))
    current = await grants_of(repository, kind, holder_guid)
    for junction in current:
        if junction.data["role_guid"] not in wanted:
            await revoke(repository, kind, junction.guid)
    held = {j.data["role_guid"] for j in current}
    for role_guid in wanted:
        if role_guid not in held:
            await grant(repository, kind, holder_guid, role_guid)


async def revoke_all(repository: Repository, kind: str, holder_guid: str) -> None:
    for junction in await grants_of(repository, kind, holder_guid):
        await revoke(repository, kind, junction.guid)
