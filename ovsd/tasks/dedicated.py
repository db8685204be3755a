"""A store connection of its own, for blocking reads (``XREADGROUP … BLOCK``, ``XREAD … BLOCK``).

The pooled connections of ``Store`` pipeline every caller's commands on one connection: a blocking read
there would stall everyone. A reader gets a one-connection ``Store`` of its own instead, replaced when it
stays connected but silent past the reply timeout (a dead peer).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.logger import Logger

from ovsd.store.connection import Store, StoreUnavailable

log = Logger()


class DedicatedConnection:
    """One connection to the same store as ``store``, for one blocking reader."""

    connect_timeout = 5.0
    connect_check = 0.02

    def __init__(self, store: Store, purpose: str, reply_timeout: float) -> None:
        """``reply_timeout``: how long a reply may take, the longest BLOCK plus a margin."""
        self.store = store
        self.purpose = purpose
        self.reply_timeout = reply_timeout
        self._reader: Store | None = None

    def _connect(self) -> Store:
        return self.store.dedicated(self.reply_timeout)

    def start(self) -> None:
        self._reader = self._connect()

    async def stop(self) -> None:
        """Close the connection; a read in progress fails at once with StoreUnavailable."""
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stopService()

    async def execute(self, *args: Any) -> Any:
        """Run one (blocking) command; StoreUnavailable if there is no connection or no answer in time.

        Waits up to ``connect_timeout`` for the connection (just started, or reconnecting), so a reader
        does not fail its first read while the connection is being made.
        """
        reader = self._reader
        if reader is None:
            raise StoreUnavailable(f"{self.purpose}: connection closed")
        waited = 0.0
        while not reader.available and waited < self.connect_timeout and reader is self._reader:
            await task.deferLater(self.store.reactor, self.connect_check, lambda: None)
            waited += self.connect_check
        sent = self.store.reactor.seconds()
        try:
            return await reader.execute(*args)
        except StoreUnavailable:
            silent = self.store.reactor.seconds() - sent >= self.reply_timeout
            if silent and reader.available and reader is self._reader:
                log.warn("{purpose}: no reply in {timeout} s, reconnecting", purpose=self.purpose,
                         timeout=self.reply_timeout)
                self._reader = self._connect()
                await reader.stopService()
            raise
