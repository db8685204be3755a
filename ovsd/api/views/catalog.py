"""Read-only catalogues: branding (no token needed), groups and roles."""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint, resource
from ovsd.api.views.common import FETCH_PARAMS, LIST_PARAMS, fetch_answer, list_answer, repository

resource("branding", "branding", summary="Brandings of the GUI")
resource("groups", "group", summary="The groups a user can belong to")
resource("roles", "role", summary="Roles (scopes) of groups, clients and tokens")


@endpoint(resource="branding", method="GET", kind="list", roles=(), token=False, params=LIST_PARAMS,
          returns="list")
async def list_branding(call: Call) -> Any:
    """List the brandings (no token needed)."""
    return await list_answer(call, "branding")


@endpoint(resource="branding", method="GET", kind="fetch", roles=(), token=False, params=FETCH_PARAMS)
async def get_branding(call: Call) -> Any:
    """One branding (no token needed)."""
    return await fetch_answer(call, await repository(call).get("branding", call.guid))


@endpoint(resource="groups", method="GET", kind="list", roles=R, params=LIST_PARAMS, returns="list")
async def list_groups(call: Call) -> Any:
    """List the groups."""
    return await list_answer(call, "group")


@endpoint(resource="groups", method="GET", kind="fetch", roles=R, params=FETCH_PARAMS)
async def get_group(call: Call) -> Any:
    """One group."""
    return await fetch_answer(call, await repository(call).get("group", call.guid))


@endpoint(resource="roles", method="GET", kind="list", roles=R, params=LIST_PARAMS, returns="list")
async def list_roles(call: Call) -> Any:
    """List the roles."""
    return await list_answer(call, "role")


@endpoint(resource="roles", method="GET", kind="fetch", roles=R, params=FETCH_PARAMS)
async def get_role(call: Call) -> Any:
    """One role."""
    return await fetch_answer(call, await repository(call).get("role", call.guid))
