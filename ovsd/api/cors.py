"""CORS: which browser origins may call the API (a StorageRouter's own GUI, or a configured origin)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit

ClusterIps = Callable[[], Awaitable[Sequence[str]]]

ALLOW_HEADERS = "x-requested-with, content-type, accept, origin, authorization"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()


def origin_host(origin: str) -> str | None:
    """The host of ``https://<host>[:<port>]``; None for anything else (other schemes, paths, users)."""
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return None
    if parts.scheme != "https" or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or not parts.hostname:
        return None
    return _normal_ip(parts.hostname)


class CorsPolicy:
    """Allows ``https://<any StorageRouter ip>`` (any port) and the origins listed in api.cors_origins."""

    def __init__(self, configured: Iterable[str], cluster_ips: ClusterIps) -> None:
        self.configured = frozenset(o.strip().rstrip("/").lower() for o in configured)
        self.cluster_ips = cluster_ips

    async def allows(self, origin: str) -> bool:
        if origin.rstrip("/").lower() in self.configured:
            return True
        host = origin_host(origin)
        if host is None:
            return False
        return host in {_normal_ip(ip) for ip in await self.cluster_ips()}

    @staticmethod
    def response_headers(origin: str) -> dict[str, str]:
        """What an allowed origin's actual (non-preflight) responses carry."""
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Vary": "Origin"}

    @staticmethod
    def preflight_headers(origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Vary": "Origin",
        }
