"""The connection pool to the store, and the one error every caller sees while it is down.

txredisapi queues a command until a connection exists, which would turn an outage into hung requests.
``Store`` refuses at once (``StoreUnavailable``) when no connection is up, and drops a connection whose
commands got no reply for ``command_timeout`` (failing them the same way), so the API can answer 503
``store_unavailable`` and recover by itself when the server returns.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hiredis
import txredisapi
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


class StoreUnavailable(Exception):
    """The store cannot be reached; nothing was written."""


class _Protocol(txredisapi.HiredisProtocol):
    """txredisapi's connection with the per-command path cut down to a write and, per reply, one callback.

    Its own path builds the command in Python, then takes each reply through a DeferredQueue, a decoding
    pass and two chained Deferreds: on a cached object fetch that was as much CPU as the rest of the request.
    Here hiredis packs the command and decodes the reply to str (the pool's charset), and replies are
    matched to their commands in order, which is what a Redis connection guarantees. Connection setup
    (AUTH, SELECT) and the pool stay txredisapi's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader = hiredis.Reader(
            protocolError=txredisapi.InvalidData, replyError=txredisapi.ResponseError, encoding="utf-8",
        )
        self._replies: deque[defer.Deferred[Any]] = deque()
        # when the server last showed progress on this connection while commands were outstanding
        self._waiting_since = 0.0

    def execute_command(self, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        if not self.connected:
            raise txredisapi.ConnectionError("Not connected")
        d: defer.Deferred[Any] = defer.Deferred()
        if not self._replies:
            self._waiting_since = self.factory.clock.seconds()
        self._replies.append(d)
        self.transport.write(hiredis.pack_command(args))
        return d

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        reader = self._reader
        reader.feed(data)
        reply = reader.gets()
        if reply is not False:
            self._waiting_since = self.factory.clock.seconds()
        while reply is not False:
            d = self._replies.popleft()
            if isinstance(reply, txredisapi.ResponseError):
                d.errback(reply)
            else:
                d.callback(reply)
            reply = reader.gets()

    def silent_for(self, now: float) -> float:
        """How long commands have been waiting on this connection without any reply (0 when none wait)."""
        return now - self._waiting_since if self._replies else 0.0

    def connectionLost(self, why: Any) -> None:
        waiting, self._replies = self._replies, deque()
        try:
            super().connectionLost(why)
        finally:
            for d in waiting:
                d.errback(txredisapi.ConnectionError("Lost connection"))


class _Factory(txredisapi.RedisFactory):
    # reconnect fast: the embedded server comes back within 2 s and we want to be back right after
    initialDelay = 0.1
    maxDelay = 1.0
    factor = 2.0
    protocol = _Protocol
    clock: IReactorTime = global_reactor


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
        self.description = url
        self._watchdog: LoopingCall | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        endpoint, db, self.description = _endpoint_for(self.url, self.store_dir, self.reactor)
        factory = _Factory(
            self.description, db, self.poolsize, isLazy=True,
            handler=txredisapi.ConnectionHandler, charset="utf-8", replyTimeout=None, convertNumbers=False,
        )
        factory.clock = self.reactor
        factory.startConnecting(endpoint)
        self._factory = factory
        # one check of every connection instead of a timer per command (a timer per command cost a heap
        # insert and a cancel on every store call of every request)
        self._watchdog = LoopingCall(self._drop_silent)
        self._watchdog.clock = self.reactor
        self._watchdog.start(min(1.0, max(0.05, self.command_timeout / 5)), now=False)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
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
        """The first connected protocol of the pool.

        Commands go straight to it (Redis pipelines them per connection): txredisapi's handler would
        add a Deferred chain and a queue wait per command, which costs as much as the round trip itself.
        All of them go to one connection because the server runs commands one at a time anyway, while the
        client pays a send, a wake-up and a read per connection written to: what callers send in one
        reactor turn leaves in one write and comes back in one read. The other connections are spares for
        when it drops. Blocking commands never use this pool (they have dedicated connections).
        """
        factory = self._factory
        if factory is None or factory.size == 0:
            raise StoreUnavailable("the store is not connected")
        for conn in factory.pool:
            if conn.connected:
                return conn
        raise StoreUnavailable("the store is not connected")

    def _drop_silent(self) -> None:
        """Drop a connection whose commands got no reply for command_timeout: they fail StoreUnavailable and
        the pool reconnects (a server that stopped answering looks like this, not like a closed socket)."""
        factory = self._factory
        if factory is None:
            return
        now = self.reactor.seconds()
        for conn in list(factory.pool):
            silent = conn.silent_for(now)
            if silent > self.command_timeout and conn.transport is not None:
                log.warn("the store {store} did not answer for {seconds:.1f} s; reconnecting",
                         store=self.description, seconds=silent)
                conn.transport.abortConnection()

    async def execute(self, *args: Any) -> Any:
        """Run one command; StoreUnavailable when the store is down or does not answer in time."""
        d = self._connection().execute_command(*args)
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
