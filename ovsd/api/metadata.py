"""``GET /api``: what the API is, which versions it speaks, who the caller is."""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from ovsd.context import NodeContext

VERSIONS = [1, 2]


async def storagerouter_ips(context: NodeContext) -> list[str]:
    """The ips of every StorageRouter of the cluster (this node's own ip at least)."""
    ips = [context.config.node.ip]
    return ips


async def api_metadata(context: NodeContext, request: Request) -> dict[str, Any]:
    return {
        "authenticated": False,
        "authentication_state": "unauthenticated",
        "username": None,
        "userguid": None,
        "roles": [],
        "storagerouter_ips": await storagerouter_ips(context),
        "versions": VERSIONS,
        "node": context.config.node.name,
    }
