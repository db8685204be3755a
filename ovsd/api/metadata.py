"""``GET /api``: what the API is, which versions it speaks, who the caller is.

It never answers 401: a bad token is reported in ``authentication_state`` (the seed's spelling), so a GUI
can ask "am I still logged in?" without handling errors.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from ovsd.api.negotiation import VERSIONS
from ovsd.auth.authenticator import AUTHENTICATION_STATES
from ovsd.auth.errors import AuthError
from ovsd.auth.identity import Identity
from ovsd.context import NodeContext
from ovsd.store.connection import StoreUnavailable

log = Logger()



def _ip_order(ip: str) -> tuple[int, Any]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (2, ip)
    return (address.version, int(address))


#: how long the cluster's ip list is reused: it changes when a node joins or moves, and a second of delay
#: there is harmless, while reading it for every metadata call or CORS check costs a store round trip
IPS_FRESH_FOR = 1.0


async def storagerouter_ips(context: NodeContext) -> list[str]:
    """The ips of every StorageRouter of the cluster (this node's own ip at least, even before it registered)."""
    now = context.reactor.seconds()
    cached = context.ips_cache
    if cached is not None and now - cached[0] < IPS_FRESH_FOR:
        return list(cached[1])
    ips = {context.config.node.ip}
    if context.repository is not None:
        for router in await context.repository.load_all("storagerouter"):
            if router.data.get("ip"):
                ips.add(str(router.data["ip"]))
    ordered = sorted(ips, key=_ip_order)
    context.ips_cache = (now, ordered)
    return list(ordered)


async def caller(context: NodeContext, request: Request) -> tuple[Identity | None, str | None]:
    """(identity, authentication_state): the state is None exactly when the caller is authenticated."""
    if context.authenticator is None:
        return None, "unauthenticated"
    try:
        identity = await context.authenticator.authenticate(request)
    except AuthError as err:
        return None, AUTHENTICATION_STATES.get(err.code, "unexpected exception")
    except StoreUnavailable:
        raise  # a 503 says what is wrong; "unexpected exception" would not
    except Exception:
        log.failure("authenticating a metadata call failed")
        return None, "unexpected exception"
    if identity is None:
        return None, "unauthenticated"
    return identity, None


async def api_metadata(context: NodeContext, request: Request) -> dict[str, Any]:
    identity, state = await caller(context, request)
    return {
        "authenticated": identity is not None,
        "authentication_state": state,
        "username": identity.username if identity else None,
        "userguid": identity.user_guid if identity else None,
        "roles": sorted(identity.roles) if identity else [],
        "storagerouter_ips": await storagerouter_ips(context),
        "versions": list(VERSIONS),
        "node": context.config.node.name,
        # false while the node starts: every other route answers 503 not_ready until then
        "ready": context.readiness.ready,
    }
