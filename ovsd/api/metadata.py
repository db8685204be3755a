"""``GET /api``: what the API is, which versions it speaks, who the caller is.

It never answers 401: a bad token is reported in ``authentication_state`` (the seed's spelling), so a GUI
can ask "am I still logged in?" without handling errors.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from ovsd.api.negotiation import VERSIONS
from ovsd.auth.authenticator import AUTHENTICATION_STATES
from ovsd.auth.errors import AuthError
from ovsd.auth.identity import Identity
from ovsd.context import NodeContext
from ovsd.dal.repository import Repository
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


class ClusterIps:
    """The ips of every StorageRouter of the cluster (this node's own ip at least, even before it registered),
    read again at most every IPS_FRESH_FOR seconds. One per API (ApiApp): GET /api and the CORS check read it."""

    def __init__(self, repository: Repository, own_ip: str, clock: Any) -> None:
        self.repository = repository
        self.own_ip = own_ip
        self.clock = clock
        self._cached: tuple[float, list[str]] | None = None

    async def __call__(self) -> list[str]:
        now = self.clock.seconds()
        cached = self._cached
        if cached is not None and now - cached[0] < IPS_FRESH_FOR:
            return list(cached[1])
        ips = {self.own_ip}
        for router in await self.repository.load_all("storagerouter"):
            if router.data.get("ip"):
                ips.add(str(router.data["ip"]))
        ordered = sorted(ips, key=_ip_order)
        self._cached = (now, ordered)
        return list(ordered)


@dataclass(frozen=True)
class MetadataSource:
    """What ``GET /api`` reads: the node, and the API's cached cluster ips."""

    context: NodeContext
    cluster_ips: ClusterIps


async def caller(context: NodeContext, request: Request) -> tuple[Identity | None, str | None]:
    """(identity, authentication_state): the state is None exactly when the caller is authenticated."""
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


async def api_metadata(source: MetadataSource, request: Request) -> dict[str, Any]:
    context = source.context
    identity, state = await caller(context, request)
    return {
        "authenticated": identity is not None,
        "authentication_state": state,
        "username": identity.username if identity else None,
        "userguid": identity.user_guid if identity else None,
        "roles": sorted(identity.roles) if identity else [],
        "storagerouter_ips": await source.cluster_ips(),
        "versions": list(VERSIONS),
        "node": context.config.node.name,
        # false while the node starts: every other route answers 503 not_ready until then
        "ready": context.readiness.ready,
    }
