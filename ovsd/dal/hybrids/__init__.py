"""One module per object type; ``ALL`` lists every declared type (public and internal)."""

from __future__ import annotations

from ovsd.dal.fields import ObjectType
from ovsd.dal.hybrids import (
    bearertoken,
    branding,
    client,
    group,
    mgmtcenter,
    pmachine,
    role,
    roleclient,
    rolegroup,
    storagedriver,
    storagerouter,
    user,
    vdisk,
    vmachine,
    vpool,
)

ALL: list[ObjectType] = [
    branding.TYPE, client.TYPE, group.TYPE, mgmtcenter.TYPE, pmachine.TYPE, role.TYPE, storagedriver.TYPE,
    storagerouter.TYPE, user.TYPE, vdisk.TYPE, vmachine.TYPE, vpool.TYPE, bearertoken.TYPE, roleclient.TYPE,
    rolegroup.TYPE,
]
