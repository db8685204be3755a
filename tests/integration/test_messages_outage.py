"""The message bus through store outages: a real Valkey that is stopped, restarted, or replaced empty."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from ovsd.messages.bus import MessageBus
from ovsd.messages.events import publish_event
from ovsd.messages.log import EVENT
from ovsd.messages.subscriptions import subscribe
from ovsd.store.connection import Store
from tests.support import free_port, valkey_server


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02, lambda: None)


class OwnStore:
    """A Valkey on TCP that this test may stop and start again (on the same port and data)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, directory: Path | None = None) -> None:
        self.process = valkey_server(self.port, directory or self.directory)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a clean stop writes the AOF out: nothing is lost
            self.process.wait(10)


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[OwnStore]:
    server = OwnStore(tmp_path / "valkey")
    server.start()
    yield server
    server.stop()


async def connected(url: str, directory: Path) -> Store:
    store = Store(url, directory, reactor)
    store.startService()
    await store.wait_until_available(interval=0.05)
    return store


@pytest_twisted.ensureDeferred
async def test_a_waiter_survives_a_store_restart_and_gets_what_was_published_after(
    own_store: OwnStore, tmp_path: Path,
) -> None:
    store = await connected(own_store.url, tmp_path)
    bus = MessageBus(store, reactor)
    bus.startService()
    try:
        await subscribe(store, 1, [EVENT])
        await publish_event(store, "vdisk_created", {"n": 1})
        await until(lambda: bus.position == 1)
        pending = defer.ensureDeferred(bus.wait(1, 1, timeout=30))
        await until(lambda: bus.waiter_count == 1)

        own_store.stop()
        await until(lambda: not store.available)
        own_store.start()
        await store.wait_until_available(interval=0.05)
        assert bus.waiter_count == 1  # the outage itself released no one

        message_id = await publish_event(store, "vdisk_deleted", {"n": 2})
        result = await pending
        assert message_id == 2
        assert result["messages"] == [{"id": 2, "type": EVENT, "body": {"type": "vdisk_deleted", "metadata": {"n": 2}}}]
        assert "missed" not in result
        # and the reader keeps following afterwards
        again = defer.ensureDeferred(bus.wait(1, 2, timeout=30))
        await until(lambda: bus.waiter_count == 1)
        await publish_event(store, "vdisk_created", {"n": 3})
        assert [m["id"] for m in (await again)["messages"]] == [3]
    finally:
        await bus.stopService()
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_waiters_are_told_to_resynchronise_when_the_store_comes_back_empty(
    own_store: OwnStore, tmp_path: Path,
) -> None:
    store = await connected(own_store.url, tmp_path)
    bus = MessageBus(store, reactor)
    bus.startService()
    try:
        await subscribe(store, 2, [EVENT])
        for n in range(5):
            await publish_event(store, "vdisk_created", {"n": n})
        await until(lambda: bus.position == 5)
        pending = defer.ensureDeferred(bus.wait(2, 5, timeout=30))
        await until(lambda: bus.waiter_count == 1)

        own_store.stop()
        own_store.start(tmp_path / "empty")  # a new server without the old data: ids start again at 1
        result = await pending
        assert result == {"messages": [], "last_message_id": 0, "subscriptions": [EVENT], "missed": True}
        await store.wait_until_available(interval=0.05)
        # a client still at 5 is told at once; from the id it is given, it is in step again
        assert (await bus.wait(2, 5, timeout=30))["missed"] is True
        await subscribe(store, 2, [EVENT])
        fresh = defer.ensureDeferred(bus.wait(2, 0, timeout=30))
        await until(lambda: bus.waiter_count == 1)
        await publish_event(store, "vdisk_created", {"n": "new"})
        assert [m["id"] for m in (await fresh)["messages"]] == [1]
    finally:
        await bus.stopService()
        await store.stopService()
