"""StorageRouters, StorageDrivers, vPools, vDisks, vMachines: list, fetch and PATCH of writable fields.

Their data-plane actions (move_away, add_vpool, snapshots, clones …) arrive with the storage data plane;
until then they are not routed (404 not_found). The node-local StorageRouter actions are in
storagerouter_actions.py.
"""

from __future__ import annotations

from ovsd.api.declare import RW, RWM
from ovsd.api.views.common import declare_served

declare_served("storagerouters", "storagerouter", patch_roles=RWM)
declare_served("storagedrivers", "storagedriver", patch_roles=RW)
declare_served("vpools", "vpool", patch_roles=RW)
declare_served("vdisks", "vdisk", patch_roles=RW,
               filters={"vmachineguid": ("vmachine", "vdisks"), "vpoolguid": ("vpool", "vdisks")})
declare_served("vmachines", "vmachine", patch_roles=RW, filters={"vpoolguid": ("vpool", "vmachines")})
