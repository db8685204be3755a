"""StorageRouters, StorageDrivers, vPools, vDisks, vMachines: list, fetch and PATCH of writable fields.

Their actions (move_away, add_vpool, snapshots, clones …) arrive with the node agent, the task engine and
the data plane; until then they are not routed (404 not_found).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, RWM, R, endpoint, resource
from ovsd.api.params import GUID, Param
from ovsd.api.views.common import FETCH_PARAMS, LIST_PARAMS, fetch_by_guid, list_answer, patch_answer, repository
from ovsd.dal.registry import TYPES

# resource name, object kind, roles needed to PATCH, list filters (parameter -> (kind, reverse relation))
_SERVED: list[tuple[str, str, tuple[str, ...], dict[str, tuple[str, str]]]] = [
    ("storagerouters", "storagerouter", RWM, {}),
    ("storagedrivers", "storagedriver", RW, {}),
    ("vpools", "vpool", RW, {}),
    ("vdisks", "vdisk", RW, {"vmachineguid": ("vmachine", "vdisks"), "vpoolguid": ("vpool", "vdisks")}),
    ("vmachines", "vmachine", RW, {"vpoolguid": ("vpool", "vmachines")}),
]


def _declare(name: str, kind: str, patch_roles: Sequence[str], filters: dict[str, tuple[str, str]]) -> None:
    t = TYPES[kind]
    resource(name, kind, default_sort=t.default_sort, summary=t.doc)

    async def list_all(call: Call) -> Any:
        repo = repository(call)
        guids: set[str] | None = None
        for param, (owner, reverse) in filters.items():
            value = call.params.get(param)
            if value is not None:
                found = set(await repo.reverse_guids(owner, value, reverse))
                guids = found if guids is None else guids & found
        return await list_answer(call, kind, None if guids is None else sorted(guids))

    async def fetch(call: Call) -> Any:
        return await fetch_by_guid(call, kind)

    async def patch(call: Call) -> Any:
        return await patch_answer(call, kind)

    list_all.__doc__ = f"List the {name}" + (f" (filters: {', '.join(filters)})" if filters else "") + "."
    fetch.__doc__ = f"One {kind}."
    patch.__doc__ = f"Change a {kind}'s writable fields."
    filter_params = tuple(Param(p, GUID, where="query") for p in filters)
    endpoint(resource=name, method="GET", kind="list", roles=R, params=(*LIST_PARAMS, *filter_params),
             returns="list")(list_all)
    endpoint(resource=name, method="GET", kind="fetch", roles=R, params=FETCH_PARAMS)(fetch)
    endpoint(resource=name, method="PATCH", roles=patch_roles, fields=t.writable_fields())(patch)


for _name, _kind, _roles, _filters in _SERVED:
    _declare(_name, _kind, _roles, _filters)
