"""Management centers and pMachines."""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RWM, endpoint
from ovsd.api.errors import invalid_data, not_acceptable
from ovsd.api.params import Param
from ovsd.api.views.common import declare_served, repository
from ovsd.controllers.mgmtcenter import tls_reachable
from ovsd.dal.registry import TYPES
from ovsd.dal.serializer import serialize_one

declare_served("mgmtcenters", "mgmtcenter", summary="Hypervisor management centers")
declare_served("pmachines", "pmachine", patch_roles=RWM, summary="Physical machines (hypervisors)")


@endpoint(resource="mgmtcenters", method="POST", roles=RWM, params=(
    Param("name", str), Param("username", str), Param("password", str), Param("ip", str), Param("port", int),
    Param("type", str), Param("description", str, nullable=True, text=True),
))
async def create_mgmtcenter(call: Call) -> Any:
    """Register a management center once a TLS connection to ip:port succeeds (else 406)."""
    values = dict(call.params)
    for name in ("name", "username", "password", "ip", "port", "type"):
        if values.get(name) in (None, ""):
            raise invalid_data(f"Invalid data passed: {name} is mandatory")
    problem = TYPES["mgmtcenter"].prop_by_name["type"].check(values["type"])
    if problem:
        raise invalid_data(f"Invalid data passed: type {problem}")
    if not 0 < values["port"] < 65536:
        raise invalid_data("Invalid data passed: port must be between 1 and 65535")
    if not await tls_reachable(call.context.reactor, values["ip"], values["port"]):
        raise not_acceptable("The given information is invalid.")
    repo = repository(call)
    return await serialize_one(repo, await repo.create("mgmtcenter", values), None)


@endpoint(resource="mgmtcenters", method="DELETE", roles=RWM, returns="none")
async def delete_mgmtcenter(call: Call) -> None:
    """Remove a management center; its pMachines stay, unlinked."""
    repo = repository(call)
    await repo.get("mgmtcenter", call.guid)
    for pmachine in await repo.reverse_guids("mgmtcenter", call.guid, "pmachines"):
        await repo.update("pmachine", pmachine, {"mgmtcenter_guid": None})
    await repo.delete("mgmtcenter", call.guid)
