"""move_away (contract §6): a StorageRouter hands its vDisks to the other StorageRouters of their vPools.

The task runs on the StorageRouter the path names (it closes its own exports first); its result is
``{"moved": {vdisk guid: StorageDriver guid}}``, and it fails naming every vDisk it could not move (those
of a LOCAL vPool never can). See ovsd.controllers.relocation. A node that is down answers 503 at once.
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RWM, endpoint
from ovsd.api.errors import node_unavailable
from ovsd.api.views import storage  # noqa: F401  (declares the storagerouters resource)
from ovsd.api.views.common import repository
from ovsd.controllers import relocation, storagerouter
from ovsd.tasks import NodeUnavailable


@endpoint(resource="storagerouters", method="POST", action="move_away", roles=RWM, returns="task", fields=())
async def move_away(call: Call) -> Any:
    """Task: move every vDisk served here to RUNNING StorageDrivers of the same vPools on other StorageRouters."""
    try:
        return await storagerouter.run_on_storagerouter(call.context, call.guid, relocation.MOVE_AWAY, {})
    except NodeUnavailable:
        router = await repository(call).get("storagerouter", call.guid)
        raise node_unavailable(str(router.data.get("name") or call.guid)) from None
