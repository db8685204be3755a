"""The connection pool to the store, and the one error every caller sees while it is down.

txredisapi queues a command until a connection exists, which would turn an outage into hung requests.
``Store`` refuses at once (``StoreUnavailable``) when no connection is up and puts a timeout on every
command, so the API can answer 503 ``store_unavailable`` and recover by itself when the server returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()


class StoreUnavailable(Exception):
    """The store cannot be reached; nothing was written."""


class _Factory(txredisapi.RedisFactory):
    # reconnect fast: the embedded server comes back within 2 s and we want to be back right after
    initialDelay = 0.1
    maxDelay = 1.0
    factor = 2.0


def _endpoint_for(url: str, store_dir: Path, reactor: Any) -> tuple[Any, int | None, str]:
    """(endpoint, db, description) for a store URL."""
    if url == "embedded":
        path = store_dir / "valkey.sock"
        return UNIXClientEndpoint(reactor, str(path), timeout=2), None, f"embedded ({path})"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return UNIXClientEndpoint(reactor, parts.path, timeout=2), None, url
    if parts.scheme == "redis":
        db_text = parts.path.strip("/")
        db = int(db_text) if db_text else None
        host = parts.hostname or "127.0.0.1"
        return TCP4ClientEndpoint(reactor, host, parts.port or 6379, timeout=2), db, f"redis://{host}:{parts.port}"
    raise ValueError(f"unsupported store url {url!r}")


class Store(Service):
    """A pool of connections to the store with fail-fast semantics and Lua script helpers."""

    name = "store"
    command_timeout = 5.0

    def __init__(self, url: str, store_dir: Path, reactor: Any = None, poolsize: int = 8) -> None:
        self.url = url
        self.store_dir = store_dir
        self.reactor = reactor or global_reactor
        self.poolsize = poolsize
        self._factory: _Factory | None = None
        self._scripts: dict[str, str] = {}
        self._next = 0
        self.description = url

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        endpoint, db, self.description = _endpoint_for(self.url, self.store_dir, self.reactor)
        factory = _Factory(
            self.description, db, self.poolsize, isLazy=True,
            handler=txredisapi.ConnectionHandler, charset="utf-8", replyTimeout=None, convertNumbers=False,
        )
        factory.startConnecting(endpoint)
        self._factory = factory

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        factory, self._factory = self._factory, None
        if factory is None:
            return defer.succeed(None)
        return factory.disconnect().addCallback(lambda _: None)  # type: ignore[no-any-return]

    def dedicated(self, reply_timeout: float) -> Store:
        """A started one-connection Store to the same server, for one blocking reader (XREAD… BLOCK).

        The pool pipelines every caller on its connections: a blocked read there would stall them all.
        ``reply_timeout`` is the longest BLOCK plus a margin: only a connection silent past it is dead.
        """
        reader = Store(self.url, self.store_dir, self.reactor, poolsize=1)
        reader.command_timeout = reply_timeout
        reader.startService()
        return reader

    # --- state -----------------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True while at least one connection to the server is up."""
        return self._factory is not None and self._factory.size > 0

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
    def _connection(self) -> Any:
        """A connected protocol of the pool, round robin.

        Commands go straight to it (Redis pipelines them per connection): txredisapi's handler would
        add a Deferred chain and a queue wait per command, which costs as much as the round trip itself.
        Blocking commands never use this pool (they have dedicated connections), so any member will do.
        """
        factory = self._factory
        if factory is None or factory.size == 0:
            raise StoreUnavailable("the store is not connected")
        pool = factory.pool
        for _ in range(len(pool)):
            self._next = (self._next + 1) % len(pool)
            conn = pool[self._next]
            if conn.connected:
                return conn
        raise StoreUnavailable("the store is not connected")

    async def execute(self, *args: Any) -> Any:
        """Run one command; StoreUnavailable when the store is down or does not answer in time."""
        d = self._connection().execute_command(*args)
        d.addTimeout(self.command_timeout, self.reactor)
        try:
            return await d
        except (txredisapi.ConnectionError, defer.TimeoutError, defer.CancelledError) as e:
            raise StoreUnavailable(str(e) or "the store did not answer") from None

    async def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands at once (one round trip on one connection) and return their replies."""
        if not commands:
            return []
        conn = self._connection()
        try:
            ds = [conn.execute_command(*cmd) for cmd in commands]
            results = defer.gatherResults(ds, consumeErrors=True)
            results.addTimeout(self.command_timeout, self.reactor)
            return list(await results)
        except defer.FirstError as e:
            inner = e.subFailure.value
            if isinstance(inner, txredisapi.ConnectionError):
                raise StoreUnavailable(str(inner)) from None
            raise e.subFailure.raiseException() from None
        except (txredisapi.ConnectionError, defer.TimeoutError, defer.CancelledError) as e:
            raise StoreUnavailable(str(e) or "the store did not answer") from None

    async def script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script by its SHA1, loading it on the server the first time (or after a restart)."""
        sha = self._scripts.get(source)
        if sha is None:
            sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            self._scripts[source] = sha
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except txredisapi.ResponseError as e:
            if "NOSCRIPT" not in str(e):
                raise
        return await self.execute("EVAL", source, len(keys), *keys, *args)


def load_lua(name: str) -> str:
    """The source of one of our Lua scripts (``ovsd/store/lua/<name>.lua``)."""
    return (Path(__file__).parent / "lua" / f"{name}.lua").read_text()
