"""Users: list and fetch (self, or everyone with manage), create/patch/delete (manage), set_password."""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, RWM, R, endpoint, resource
from ovsd.api.errors import forbidden, invalid_data, missing_parameter
from ovsd.api.params import GUID, Param
from ovsd.api.views.common import (
    FETCH_PARAMS,
    LIST_PARAMS,
    caller_guid,
    fetch_answer,
    has_manage,
    list_answer,
    patch_answer,
    repository,
    require_self_or_manage,
)
from ovsd.auth import accounts
from ovsd.auth.passwords import verify_password
from ovsd.dal.registry import TYPES
from ovsd.dal.repository import ObjectNotFound
from ovsd.dal.serializer import serialize_one

resource("users", "user", default_sort=("username",), summary="The users of the cluster")


@endpoint(resource="users", method="GET", kind="list", roles=R, params=LIST_PARAMS, returns="list")
async def list_users(call: Call) -> Any:
    """List users: all of them for managers, else only the caller."""
    return await list_answer(call, "user", None if has_manage(call) else [caller_guid(call)])


@endpoint(resource="users", method="GET", kind="fetch", roles=R, params=FETCH_PARAMS)
async def get_user(call: Call) -> Any:
    """One user (yourself, or anyone with manage)."""
    user = await repository(call).get("user", call.guid)
    require_self_or_manage(call, user.guid, "user")
    return await fetch_answer(call, user)


@endpoint(resource="users", method="POST", roles=RWM, params=(
    Param("username", str), Param("password", str), Param("is_active", bool, default=True),
    Param("group_guid", GUID), Param("language", str, default="en-US"),
))
async def create_user(call: Call) -> Any:
    """Create a user (and its GUI client); a taken username is 409."""
    p = call.params
    for name in ("username", "password", "group_guid"):
        if p.get(name) in (None, ""):
            raise invalid_data(f"Invalid data passed: {name} is mandatory")
    repo = repository(call)
    try:
        user = await accounts.create_user(repo, p["username"], p["password"], p["group_guid"], p["is_active"],
                                          p["language"])
    except ObjectNotFound:
        raise invalid_data(f"Invalid data passed: group {p['group_guid']} does not exist") from None
    return await serialize_one(repo, user, None)


@endpoint(resource="users", method="PATCH", roles=RWM, fields=TYPES["user"].writable_fields())
async def patch_user(call: Call) -> Any:
    """Change a user (not yourself); a new group also changes what its clients and tokens may do."""
    if call.guid == caller_guid(call):
        raise forbidden("A user cannot change itself")
    repo = repository(call)
    before = await repo.get("user", call.guid)
    changes = dict(call.body or {})
    if "group_guid" in changes and changes["group_guid"] != before.data.get("group_guid"):
        # the user, its clients' grants and the revocation of its tokens land together (one change set)
        return await serialize_one(repo, await accounts.change_user(repo, call.guid, changes), None)
    return await patch_answer(call, "user")


@endpoint(resource="users", method="DELETE", roles=RWM, returns="none")
async def delete_user(call: Call) -> None:
    """Delete a user with its clients and tokens (not yourself)."""
    if call.guid == caller_guid(call):
        raise forbidden("A user cannot delete itself")
    repo = repository(call)
    await repo.get("user", call.guid)
    await accounts.delete_user(repo, call.guid)


# fields=(): a misspelt field (``curent_password``) is refused, never silently ignored (contract §1)
@endpoint(resource="users", method="POST", action="set_password", roles=RW, status=202, fields=(), params=(
    Param("new_password", str, mandatory=True), Param("current_password", str),
))
async def set_password(call: Call) -> Any:
    """Set a user's password (your own needs current_password; manage may reset others); revokes its tokens."""
    repo = repository(call)
    user = await repo.get("user", call.guid)
    own = user.guid == caller_guid(call)
    if own:
        current = call.params.get("current_password")
        if current is None:
            raise missing_parameter("current_password")
        if not await verify_password(user.data.get("password"), current):
            raise forbidden("The current password is not correct")
    elif not has_manage(call):
        raise forbidden("Only a manager can set another user's password")
    if not call.params["new_password"]:
        raise invalid_data("Invalid data passed: new_password must not be empty")
    user = await accounts.set_password(repo, user.guid, call.params["new_password"])
    return await serialize_one(repo, user, None)
