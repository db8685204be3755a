"""Role grants: the junction objects (RoleClient, RoleGroup) that give a client or a group a role.

A grant's guid is derived from what it joins (holder and role), so granting twice, from two nodes at once
or in a migration run again after a crash, finds the grant already there instead of making a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ovsd.dal.repository import (
    MAX_UPDATE_ATTEMPTS,
    DataObject,
    Delete,
    Members,
    Operation,
    Repository,
    UniqueConflict,
    VersionConflict,
)

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


def planned_roles(
    repository: Repository, kind: str, holder_guid: str, current: Iterable[DataObject], role_guids: Iterable[str],
) -> list[Operation]:
    """The change-set operations that make a holder whose junctions are ``current`` hold exactly these roles."""
    wanted = list(dict.fromkeys(role_guids))
    current = list(current)
    ops: list[Operation] = [Delete(j) for j in current if j.data["role_guid"] not in wanted]
    held = {j.data["role_guid"] for j in current}
    ops.extend(
        repository.planned_create(JUNCTIONS[kind], {"role_guid": r, f"{kind}_guid": holder_guid},
                                  guid=grant_guid(kind, holder_guid, r))
        for r in wanted if r not in held
    )
    return ops


async def set_roles(repository: Repository, kind: str, holder_guid: str, role_guids: Iterable[str]) -> None:
    """Make a client or group hold exactly these roles (missing grants added, the others revoked), at once."""
    wanted = list(role_guids)
    for _ in range(MAX_UPDATE_ATTEMPTS):
        guids = await repository.reverse_guids(kind, holder_guid, "roles")
        current = await repository.get_many(JUNCTIONS[kind], guids)
        ops = planned_roles(repository, kind, holder_guid, current, wanted)
        if not ops:
            return
        try:
            await repository.apply(ops, [Members(kind, holder_guid, "roles", tuple(guids))])
            return
        except VersionConflict:
            continue  # granted or revoked meanwhile: plan again from what is there now
    raise VersionConflict(f"the roles of {kind} {holder_guid} kept changing")


async def revoke_all(repository: Repository, kind: str, holder_guid: str) -> None:
    await set_roles(repository, kind, holder_guid, [])
