"""Links of vPools that need no storage data plane (contract §6): which StorageRouters serve a vPool.

The seed era's GUI reads ``GET /api/vpools/<guid>/storagerouters/`` on a vPool's page; the answer is a list
like any other (GUIDs, or objects with ``contents``; sort and page as for lists).
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint
from ovsd.api.views import storage  # noqa: F401  (declares the vpools resource)
from ovsd.api.views.common import LIST_PARAMS, list_answer, repository


@endpoint(resource="vpools", method="GET", link="storagerouters", roles=R, params=LIST_PARAMS, returns="list")
async def storagerouters(call: Call) -> Any:
    """The StorageRouters serving this vPool (those with one of its StorageDrivers)."""
    repo = repository(call)
    await repo.get("vpool", call.guid)  # 404 for a vPool that does not exist
    drivers = await repo.get_many("storagedriver", await repo.reverse_guids("vpool", call.guid, "storagedrivers"))
    routers = sorted({str(d.data["storagerouter_guid"]) for d in drivers if d.data.get("storagerouter_guid")})
    return await list_answer(call, "storagerouter", routers)
