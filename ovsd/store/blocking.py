"""A blocking reader's own connection (``XREADGROUP … BLOCK``, ``XREAD … BLOCK``) and the pause between its tries.

The pooled connections of ``Store`` pipeline every caller's commands on one connection: a blocking read
there would stall everyone. A reader gets a one-connection ``Store`` of its own instead, replaced when it
stays connected but silent past the reply timeout (a dead peer). Between failed reads the reader pauses
with a back-off (doubling from ``retry_initial`` up to ``retry_max``; equal values give a fixed pause)
that the reader resets once it reads again and that ``stop`` cuts short.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from ovsd.store.connection import Store
from ovsd.store.errors import StoreUnavailable

log = Logger()

__all__ = ["BlockingReader"]


class BlockingReader:
    """One connection to the same store as ``store``, for one blocking reader, and its retry back-off."""

    connect_timeout = 5.0
    connect_check = 0.02

    def __init__(
        self, store: Store, purpose: str, reply_timeout: float, *, retry_initial: float = 0.5,
        retry_max: float | None = None,
    ) -> None:
        """``reply_timeout``: how long a reply may take, the longest BLOCK plus a margin."""
        self.store = store
        self.purpose = purpose
        self.reply_timeout = reply_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_initial if retry_max is None else retry_max
        self._delay = retry_initial
        self._connection: Store | None = None
        self._pause: defer.Deferred[None] | None = None

    @property
    def started(self) -> bool:
        """True from ``start`` until ``stop``."""
        return self._connection is not None

    def start(self) -> None:
        self._connection = self.store.dedicated(self.reply_timeout)

    async def stop(self) -> None:
        """Close the connection (a read in progress fails at once with StoreUnavailable) and end a pause."""
        connection, self._connection = self._connection, None
        if self._pause is not None:
            self._pause.cancel()
        if connection is not None:
            await connection.stopService()

    async def execute(self, *args: Any) -> Any:
        """Run one (blocking) command; StoreUnavailable if there is no connection or no answer in time.

        Waits up to ``connect_timeout`` for the connection (just started, or reconnecting), so a reader
        does not fail its first read while the connection is being made.
        """
        connection = self._connection
        if connection is None:
            raise StoreUnavailable(f"{self.purpose}: connection closed")
        reactor = self.store.reactor
        waited = 0.0
        while not connection.available and waited < self.connect_timeout and connection is self._connection:
            await task.deferLater(reactor, self.connect_check, lambda: None)
            waited += self.connect_check
        sent = reactor.seconds()
        try:
            return await connection.execute(*args)
        except StoreUnavailable:
            silent = reactor.seconds() - sent >= self.reply_timeout
            if silent and connection.available and connection is self._connection:
                log.warn("{purpose}: no reply in {timeout} s, reconnecting", purpose=self.purpose,
                         timeout=self.reply_timeout)
                self._connection = self.store.dedicated(self.reply_timeout)
                await connection.stopService()
            raise

    async def back_off(self) -> None:
        """Pause before the next try after a failure: longer after each failure in a row, cut short by stop."""
        delay, self._delay = self._delay, min(self._delay * 2, self.retry_max)
        self._pause = task.deferLater(self.store.reactor, delay, lambda: None)
        try:
            await self._pause
        except defer.CancelledError:
            pass
        finally:
            self._pause = None

    def reset_back_off(self) -> None:
        """The reader reads again: the next failure pauses ``retry_initial`` again."""
        self._delay = self.retry_initial
