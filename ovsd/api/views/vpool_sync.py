"""sync_vmachines (contract §6): declared so the route exists, and refused.

The original asked the hypervisor which VMs live on the vPool's mountpoint and registered them. ovsd has
no hypervisor integration, so there is nothing to ask: the call answers 406 saying so (after the usual
role check and a 404 for an unknown vPool), and vMachines are registered with POST /api/vmachines/.
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, endpoint
from ovsd.api.errors import not_acceptable
from ovsd.api.views import storage  # noqa: F401  (declares the vpools resource)
from ovsd.api.views.common import repository

#: why the call is refused (the contract's route, without a hypervisor to sync with)
NO_HYPERVISOR = ("sync_vmachines needs a hypervisor integration, which this node does not have; "
                 "vMachines are registered with POST /api/vmachines/")


@endpoint(resource="vpools", method="POST", action="sync_vmachines", roles=RW, returns="task", fields=())
async def sync_vmachines(call: Call) -> Any:
    """Refused (406): registering the hypervisor's VMs needs a hypervisor integration ovsd does not have."""
    await repository(call).get("vpool", call.guid)
    raise not_acceptable(NO_HYPERVISOR)
