"""The connection pool to the store, and the one error every caller sees while it is down.

A command is never queued waiting for a connection: that would turn an outage into hung requests. ``Store``
refuses at once (``StoreUnavailable``) when no connection is up, and drops a connection whose commands got
no reply for ``command_timeout`` (failing them the same way), so the API can answer 503 ``store_unavailable``
and recover by itself when the server returns. Each connection is kept by a Twisted ``ClientService``: it
reconnects with a back-off capped at ``max_retry_delay`` and never gives up, whatever the link does (a
connection that is accepted and then reset, or never answers its handshake, counts as a failed attempt).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, ssl
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ovsd.store.errors import (
    StoreCommandError,
    StoreError,
    StoreProtocolError,
    StoreReplyError,
    StoreUnavailable,
)
from ovsd.store.protocol import StoreProtocol
from ovsd.store.scripts import load_lua

__all__ = [
    "Store",
    "StoreAddress",
    "StoreCommandError",
    "StoreError",
    "StoreProtocolError",
    "StoreReplyError",
    "StoreUnavailable",
    "load_lua",
    "parse_store_url",
]

log = Logger()


@dataclass(frozen=True)
class StoreAddress:
    """Where the store is and how to log in: what a ``store.url`` says."""

    kind: str  # "unix", "tcp" or "tls"
    path: str = ""
    host: str = ""
    port: int = 6379
    db: int | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @property
    def description(self) -> str:
        """The address for log lines and errors: never the password."""
        if self.kind == "unix":
            where = f"unix://{self.path}"
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
            where = f"{'rediss' if self.kind == 'tls' else 'redis'}://{host}:{self.port}"
        return where + (f"/{self.db}" if self.db is not None else "")

    def handshake(self) -> list[tuple[Any, ...]]:
        """The commands a new connection sends before it carries anyone's commands."""
        commands: list[tuple[Any, ...]] = []
        if self.password is not None:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db is not None:
            commands.append(("SELECT", self.db))
        return commands


def parse_store_url(url: str, store_dir: Path) -> StoreAddress:
    """The address of a ``store.url``; ValueError saying what is wrong with it.

    ``embedded``; ``unix:///path.sock[?db=N&username=U&password=P]``;
    ``redis://[[user]:password@]host[:port][/db]`` (host may be a name, an IPv4 or a bracketed IPv6 address);
    ``rediss://…`` the same over TLS, verified against the system's CAs or ``?ca=/path/ca.pem``.
    """
    if url == "embedded":
        return StoreAddress("unix", path=str(store_dir / "valkey.sock"))
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"db", "username", "password", "ca"}
    if unknown:
        raise ValueError(f"has unknown parameters: {', '.join(sorted(unknown))}")

    def _db(text: str | None) -> int | None:
        if not text:
            return None
        if not text.isdigit():
            raise ValueError("has a database that is not a number")
        return int(text)

    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("needs a socket path (unix:///path.sock)")
        return StoreAddress("unix", path=parts.path, db=_db(query.get("db")),
                            username=query.get("username") or None, password=query.get("password"))
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ValueError("needs a host")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError("has an invalid port") from None
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if username and password is None:  # redis://password@host is how many clients write a bare password
            username, password = None, username
        ca = query.get("ca")
        if ca and parts.scheme != "rediss":
            raise ValueError("has a ca parameter but is not rediss://")
        return StoreAddress("tls" if parts.scheme == "rediss" else "tcp", host=parts.hostname, port=port,
                            db=_db(parts.path.strip("/") or query.get("db")), username=username or None,
                            password=password, ca_file=ca)
    if parts.scheme == "sentinel":
        raise ValueError("sentinel:// is not supported yet (use embedded, redis://, rediss:// or unix://)")
    raise ValueError("must be 'embedded', redis://[user:password@]host:port/db, rediss://… or unix:///path.sock")


def _endpoint(address: StoreAddress, reactor: Any) -> IStreamClientEndpoint:
    if address.kind == "unix":
        return UNIXClientEndpoint(reactor, address.path, timeout=2)
    tcp = HostnameEndpoint(reactor, address.host, address.port, timeout=2)
    if address.kind == "tcp":
        return tcp
    if address.ca_file:
        trust = ssl.Certificate.loadPEM(Path(address.ca_file).read_bytes())
        options = ssl.optionsForClientTLS(address.host, trustRoot=trust)
    else:
        options = ssl.optionsForClientTLS(address.host)
    return wrapClientTLS(options, tcp)


class _ConnectionFactory(Factory):
    """Builds one pool member's connections; each tells the pool when it is ready and when it is gone.

    A connection counts as made only once its handshake answered: one lost before that (a link that accepts
    and then resets, a server that says nothing or refuses the password) is a failed attempt, and the member's
    back-off grows with them. Twisted's ClientService could count them through ``prepareConnection``, but its
    state machine has no transition for a connection lost while being prepared: every such loss logged a
    NoTransition traceback. So the member counts them here and its retry policy adds them.
    """

    def __init__(self, pool: Store, policy: Callable[[int], float]) -> None:
        self.pool = pool
        self.policy = policy
        self.failed_handshakes = 0

    def buildProtocol(self, addr: Any) -> StoreProtocol:
        pool = self.pool
        conn = StoreProtocol(pool.reactor, pool.address.handshake(), self._ready, self._gone)
        conn.ready.addErrback(lambda _: None)  # a failed handshake is counted in _gone; the pool waits on none
        pool._live.add(conn)
        return conn

    def _ready(self, conn: StoreProtocol) -> None:
        self.failed_handshakes = 0
        self.pool._connection_ready(conn)

    def _gone(self, conn: StoreProtocol) -> None:
        if conn not in self.pool._ready:
            self.failed_handshakes += 1
        self.pool._connection_gone(conn)

    def retry_delay(self, failed_connects: int) -> float:
        """The wait before the next attempt (ClientService counts the connects that failed, we the handshakes)."""
        return self.policy(failed_connects + self.failed_handshakes)


def retry_policy(initial: float, cap: float) -> Callable[[int], float]:
    """The delay before reconnection attempt ``n`` (0-based): ``initial`` doubling up to ``cap``, plus a jitter
    of at most ``initial`` so that nodes cut off together do not knock at the same instant. (Twisted's default
    jitter adds up to a whole second to every attempt: a link back within 50 ms would wait up to 1.05 s.)"""
    return backoffPolicy(initialDelay=initial, maxDelay=cap, factor=2.0, jitter=lambda: random.uniform(0, initial))


class Store(Service):
    """A pool of connections to the store with fail-fast semantics and Lua script helpers."""

    name = "store"
    command_timeout = 5.0
    # reconnect fast: the embedded server comes back within 2 s and we want to be back right after; a link
    # that keeps failing is tried again at least every max_retry_delay, forever
    initial_retry_delay = 0.05
    max_retry_delay = 1.0

    def __init__(self, url: str, store_dir: Path, reactor: Any = None, poolsize: int = 2) -> None:
        self.url = url
        self.store_dir = store_dir
        self.reactor = reactor or global_reactor
        self.poolsize = poolsize
        self.address = parse_store_url(url, store_dir)
        self.description = self.address.description
        self._scripts: dict[str, str] = {}
        self._services: list[ClientService] = []
        # connected and past the handshake, oldest first: commands go to the first
        self._ready: list[StoreProtocol] = []
        self._live: set[StoreProtocol] = set()  # every open connection, in its handshake or ready
        self._watchdog: LoopingCall | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        endpoint = _endpoint(self.address, self.reactor)
        policy = retry_policy(self.initial_retry_delay, self.max_retry_delay)
        for _ in range(self.poolsize):
            factory = _ConnectionFactory(self, policy)
            service = ClientService(endpoint, factory, retryPolicy=factory.retry_delay, clock=self.reactor)
            service.startService()
            self._services.append(service)
        # one check of every connection instead of a timer per command (a timer per command cost a heap
        # insert and a cancel on every store call of every request)
        self._watchdog = LoopingCall(self._drop_silent)
        self._watchdog.clock = self.reactor
        self._watchdog.start(min(1.0, max(0.05, self.command_timeout / 5)), now=False)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        services, self._services = self._services, []
        stopped = [service.stopService() for service in services]
        return defer.gatherResults(stopped, consumeErrors=True).addCallback(lambda _: None)

    def dedicated(self, reply_timeout: float) -> Store:
        """A started one-connection Store to the same server, for one blocking reader (XREAD… BLOCK).

        The pool pipelines every caller on its connections: a blocked read there would stall them all.
        ``reply_timeout`` is the longest BLOCK plus a margin: only a connection silent past it is dead.
        """
        reader = Store(self.url, self.store_dir, self.reactor, poolsize=1)
        reader.command_timeout = reply_timeout
        reader.startService()
        return reader

    # --- connections -----------------------------------------------------------------------------------
    def _connection_ready(self, conn: StoreProtocol) -> None:
        self._ready.append(conn)

    def _connection_gone(self, conn: StoreProtocol) -> None:
        self._live.discard(conn)
        if conn in self._ready:
            self._ready.remove(conn)

    @property
    def available(self) -> bool:
        """True while at least one connection to the server is up."""
        return bool(self._ready)

    def _connection(self) -> StoreProtocol:
        """The connection every command goes to: the oldest ready one.

        All commands go to one connection because the server runs commands one at a time anyway, while the
        client pays a send, a wake-up and a read per connection written to: what callers send in one
        reactor turn leaves in one write and comes back in one read. The others are spares for when it drops.
        Blocking commands never use this pool (they have dedicated connections).
        """
        if not self._ready:
            raise StoreUnavailable("the store is not connected")
        return self._ready[0]

    def _drop_silent(self) -> None:
        """Drop a connection whose commands got no reply for command_timeout: they fail StoreUnavailable and
        the pool reconnects (a server that stopped answering looks like this, not like a closed socket).
        Connections still in their handshake are watched too: a link that accepts and says nothing is dead."""
        now = self.reactor.seconds()
        for conn in list(self._live):
            silent = conn.silent_for(now)
            if silent > self.command_timeout:
                log.warn("the store {store} did not answer for {seconds:.1f} s; reconnecting",
                         store=self.description, seconds=silent)
                conn.abort()

    # --- state -----------------------------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self.execute("PING") == "PONG")
        except StoreUnavailable:
            return False

    async def wait_until_available(self, interval: float = 0.5) -> None:
        """Wait (logging each retry) until the store answers a PING."""
        attempt = 0
        clock: IReactorTime = self.reactor
        while True:
            if await self.ping():
                if attempt:
                    log.info("store {store} is available", store=self.description)
                return
            attempt += 1
            log.warn("waiting for the store {store} (attempt {attempt})", store=self.description, attempt=attempt)
            d: defer.Deferred[None] = defer.Deferred()
            clock.callLater(interval, d.callback, None)
            await d

    # --- commands --------------------------------------------------------------------------------------
    async def execute(self, *args: Any) -> Any:
        """Run one command and return its reply.

        ``StoreUnavailable`` when the store is down or does not answer in time, ``StoreReplyError`` when the
        server refused the command, ``StoreCommandError`` when it cannot be sent (nothing was).
        """
        d = self._connection().send_one(args)
        try:
            return await d
        except defer.CancelledError:
            raise StoreUnavailable("the command was cancelled") from None

    async def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands at once (one write on one connection) and return their replies in order.

        If any fails, the first failure is raised (after all have answered); the others still ran.
        """
        if not commands:
            return []
        answers = self._connection().send(commands)
        try:
            return list(await defer.gatherResults(answers, consumeErrors=True))
        except defer.FirstError as e:
            e.subFailure.raiseException()
            raise  # unreachable: raiseException always raises
        except defer.CancelledError:
            raise StoreUnavailable("the command was cancelled") from None

    async def script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script by its SHA1, loading it on the server the first time (or after a restart)."""
        sha = self._scripts.get(source)
        if sha is None:
            sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            self._scripts[source] = sha
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except StoreReplyError as e:
            if "NOSCRIPT" not in str(e):
                raise
        return await self.execute("EVAL", source, len(keys), *keys, *args)
