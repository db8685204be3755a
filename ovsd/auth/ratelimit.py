"""The token endpoint's brute-force limit, per client address, kept in the store (every node sees it).

Five failed attempts within 60 s lock the address out for 60 s; successful calls are limited to 60 a
minute. Attempts are members of sorted sets scored by the injected clock's time, so the windows slide
with that clock (tests drive it with ``twisted.internet.task.Clock``); the store's own expiry only
collects what nobody asks about any more.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from collections.abc import Callable, Iterable

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from ovsd.auth.errors import RateLimited
from ovsd.store import keys
from ovsd.store.connection import Store

log = Logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def too_many(code: str, description: str, retry_after: int) -> RateLimited:
    return RateLimited(code, description, retry_after)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class TokenRateLimit:
    """Counts the token endpoint's attempts per client address and refuses those over the limits."""

    max_failures = 5
    failure_window = 60.0
    lockout = 60.0
    max_calls = 60
    call_window = 60.0

    def __init__(self, store: Store, trusted_proxies: Iterable[str], clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.proxies: tuple[Network, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    # --- who is asking ---------------------------------------------------------------------------------
    def client_address(self, request: IRequest) -> str:
        """The TCP peer, or what a trusted proxy says the client is (X-Real-IP, else X-Forwarded-For)."""
        peer = getattr(request.getClientAddress(), "host", None)
        if not isinstance(peer, str):
            return "local"  # a unix socket: one local caller
        peer = _ip(peer) or peer
        if not self._trusted(peer):
            return peer
        real = request.getHeader(b"x-real-ip")
        if real:
            found = _ip(real.decode("latin-1"))
            if found:
                return found
        forwarded = request.getHeader(b"x-forwarded-for")
        if forwarded:
            found = _ip(forwarded.decode("latin-1").split(",")[0])
            if found:
                return found
        return peer

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    # --- the limits ------------------------------------------------------------------------------------
    async def check(self, address: str) -> None:
        """Raise 429 when the address is locked out, or has had its share of tokens this minute."""
        now = self.clock()
        since = f"({now - self.call_window!r}"  # calls older than the window no longer count
        locked_until, calls, oldest = await self.store.pipeline([
            ("GET", keys.auth_lockout(address)),
            ("ZCOUNT", keys.auth_calls(address), since, "+inf"),
            ("ZRANGEBYSCORE", keys.auth_calls(address), since, "+inf", "WITHSCORES", "LIMIT", "0", "1"),
        ])
        if locked_until is not None and float(locked_until) > now:
            left = max(1, math.ceil(float(locked_until) - now))
            raise too_many("rate_limit_timeout", f"Rate limit timeout ({left}s remaining)", left)
        if int(calls) >= self.max_calls:
            first = float(oldest[1]) if oldest else now
            left = max(1, math.ceil(first + self.call_window - now))
            raise too_many("rate_limit_reached",
                           f"Rate limit reached: at most {self.max_calls} tokens a minute ({left}s remaining)",
                           left)

    async def record_failure(self, address: str) -> None:
        """Count a failed attempt; the one that reaches the limit locks the address out and gets 429."""
        now = self.clock()
        key = keys.auth_failures(address)
        _, _, failures, _ = await self.store.pipeline([
            ("ZREMRANGEBYSCORE", key, "-inf", repr(now - self.failure_window)),
            ("ZADD", key, repr(now), f"{now!r}:{uuid.uuid4().hex}"),
            ("ZCARD", key),
            ("PEXPIRE", key, int(self.failure_window * 2000)),
        ])
        if int(failures) < self.max_failures:
            return
        until = now + self.lockout
        await self.store.pipeline([
            ("SET", keys.auth_lockout(address), repr(until), "PX", int(self.lockout * 2000)),
            ("DEL", key),
        ])
        log.warn("{address} locked out of the token endpoint for {seconds}s after {failures} failed attempts",
                 address=address, seconds=int(self.lockout), failures=int(failures))
        seconds = math.ceil(self.lockout)
        raise too_many("rate_limit_reached", f"Too many failed attempts; retry in {seconds}s", seconds)

    async def record_success(self, address: str) -> None:
        now = self.clock()
        key = keys.auth_calls(address)
        await self.store.pipeline([
            ("ZREMRANGEBYSCORE", key, "-inf", repr(now - self.call_window)),
            ("ZADD", key, repr(now), f"{now!r}:{uuid.uuid4().hex}"),
            ("PEXPIRE", key, int(self.call_window * 2000)),
        ])
