"""OAuth 2 clients: a user's own (manage: everyone's); the secret is shown at creation and regeneration only."""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, R, endpoint, resource
from ovsd.api.errors import forbidden, invalid_data
from ovsd.api.params import GUID, Param
from ovsd.api.views.common import (
    FETCH_PARAMS,
    LIST_PARAMS,
    caller_guid,
    fetch_answer,
    has_manage,
    list_answer,
    repository,
    require_self_or_manage,
)
from ovsd.auth import accounts
from ovsd.dal.repository import ObjectNotFound
from ovsd.dal.serializer import serialize_one

resource("clients", "client", summary="OAuth 2 clients")


@endpoint(resource="clients", method="GET", kind="list", roles=R, returns="list", params=(
    *LIST_PARAMS, Param("userguid", GUID, where="query"), Param("ovs_type", str, where="query"),
))
async def list_clients(call: Call) -> Any:
    """List clients: your own user's (not the INTERNAL one unless asked for); managers see every client."""
    repo = repository(call)
    user = call.params.get("userguid")
    if not has_manage(call):
        if user is not None and user != caller_guid(call):
            return await list_answer(call, "client", [])
        user = caller_guid(call)
    guids = await repo.reverse_guids("user", user, "clients") if user else await repo.guids("client")
    wanted_type = call.params.get("ovs_type")
    if wanted_type is not None or not has_manage(call):
        clients = await repo.get_many("client", guids)
        if wanted_type is not None:
            guids = [c.guid for c in clients if c.data.get("ovs_type") == wanted_type]
        else:
            guids = [c.guid for c in clients if c.data.get("ovs_type") != "INTERNAL"]
    return await list_answer(call, "client", guids)


@endpoint(resource="clients", method="GET", kind="fetch", roles=R, params=FETCH_PARAMS)
async def get_client(call: Call) -> Any:
    """One client (your own, or any with manage)."""
    client = await repository(call).get("client", call.guid)
    require_self_or_manage(call, client.data.get("user_guid"), "client")
    return await fetch_answer(call, client)


@endpoint(resource="clients", method="POST", roles=RW, params=(
    Param("name", str), Param("ovs_type", str), Param("user_guid", GUID), Param("role_guids", list),
))
async def create_client(call: Call) -> Any:
    """Create a client-credentials client; the answer carries client_id and client_secret (shown only now)."""
    p = call.params
    if p.get("ovs_type") != "USER":
        raise invalid_data("Invalid data passed: ovs_type must be USER")
    if not p.get("name"):
        raise invalid_data("Invalid data passed: name is mandatory")
    user_guid = p.get("user_guid") or caller_guid(call)
    if user_guid != caller_guid(call) and not has_manage(call):
        raise forbidden("Only a manager can create clients for another user")
    roles = p.get("role_guids")
    if roles is not None and not all(isinstance(r, str) for r in roles):
        raise invalid_data("Invalid data passed: role_guids must be a list of GUIDs")
    repo = repository(call)
    try:
        client, secret = await accounts.create_client(repo, user_guid, p["name"], roles)
    except ObjectNotFound:
        raise invalid_data(f"Invalid data passed: user {user_guid} does not exist") from None
    answer = await serialize_one(repo, client, None)
    answer["client_id"] = client.guid
    answer["client_secret"] = secret
    return answer


@endpoint(resource="clients", method="DELETE", roles=RW, returns="none")
async def delete_client(call: Call) -> None:
    """Delete a client (yours, or any with manage) and its tokens."""
    repo = repository(call)
    client = await repo.get("client", call.guid)
    require_self_or_manage(call, client.data.get("user_guid"), "client")
    await accounts.delete_client(repo, client.guid)


# fields=(): an action takes no body; one with fields (or not JSON) is refused rather than ignored
@endpoint(resource="clients", method="POST", action="regenerate_secret", roles=RW, returns="value", fields=())
async def regenerate_secret(call: Call) -> Any:
    """Give the client a new secret; the answer is the only place it is shown."""
    repo = repository(call)
    client = await repo.get("client", call.guid)
    require_self_or_manage(call, client.data.get("user_guid"), "client")
    if client.data.get("grant_type") != "CLIENT_CREDENTIALS":
        raise invalid_data("Invalid data passed: only client-credentials clients have a secret")
    return {"client_id": client.guid, "client_secret": await accounts.regenerate_secret(repo, client.guid)}
