"""The messages endpoints' functions: validation, bodies, and a client that hangs up mid-wait.

The long-poll is served here by a small Klein route over real HTTP (the way the API's view will call
it), so a disconnect is a real closed connection, not a simulated one.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
import treq
from klein import Klein
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.client import ResponseNeverReceived
from twisted.web.server import Request, Site

from ovsd.api.errors import ApiError
from ovsd.messages import http as messages_http
from ovsd.messages.bus import MessageBus
from ovsd.messages.events import publish_task_complete
from ovsd.messages.log import EVENT, TASK_COMPLETE
from ovsd.store.connection import Store


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.async_yield_fixture
async def bus(store: Store) -> AsyncIterator[MessageBus]:
    b = MessageBus(store, reactor)
    b.startService()
    await until(lambda: b.position is not None)
    yield b
    await b.stopService()


def refused(status: int, code: str) -> Any:
    class Check:
        def __eq__(self, err: object) -> bool:
            return isinstance(err, ApiError) and (err.status, err.code) == (status, code)

    return Check()


def test_the_arguments_are_validated_with_the_contracts_errors() -> None:
    assert messages_http.parse_sid(b"1234567890") == 1234567890
    assert messages_http.parse_sid("-3") == -3
    for bad in ("abc", "1.5", "", None, b"12x"):
        with pytest.raises(ApiError) as info:
            messages_http.parse_sid(bad)
        assert (info.value.status, info.value.code) == (400, "invalid_data")
    with pytest.raises(ApiError) as info:
        messages_http.parse_message_id(None)
    assert (info.value.status, info.value.code) == (406, "invalid_data")
    assert info.value.description == "Invalid data passed: message_id is missing"
    for bad in (b"last", "-1", "2.0"):
        with pytest.raises(ApiError) as info:
            messages_http.parse_message_id(bad)
        assert (info.value.status, info.value.code) == (400, "invalid_data")
    assert messages_http.parse_message_id(b"0") == 0
    assert messages_http.parse_timeout(None) == 60
    assert messages_http.parse_timeout(b"600") == 60
    assert messages_http.parse_timeout("2.5") == 2.5
    for bad in (b"soon", "-1", "nan", "inf"):
        with pytest.raises(ApiError):
            messages_http.parse_timeout(bad)


@pytest_twisted.ensureDeferred
async def test_subscribe_list_and_last(store: Store) -> None:
    assert await messages_http.subscribed_types(store) == []
    assert await messages_http.subscribe(store, "77", ["EVENT", "BOGUS"]) == [EVENT]
    with pytest.raises(ApiError) as info:
        await messages_http.subscribe(store, "77", {"types": ["EVENT"]})
    assert (info.value.status, info.value.code) == (400, "invalid_data")
    assert await messages_http.subscriber_types(store, b"77") == [EVENT]
    assert await messages_http.subscribed_types(store) == [EVENT]
    assert await messages_http.last(store, "77") == 0
    await publish_task_complete(store, "t")
    assert await messages_http.last(store, "77") == 1


@pytest_twisted.ensureDeferred
async def test_wait_answers_the_contract_body(store: Store, bus: MessageBus) -> None:
    await messages_http.subscribe(store, "5", [TASK_COMPLETE])
    await publish_task_complete(store, "t-1")
    body = await messages_http.wait(bus, "5", b"0", b"1")
    assert body == {"messages": [{"id": 1, "type": TASK_COMPLETE, "body": "t-1"}], "last_message_id": 1,
                    "subscriptions": [TASK_COMPLETE]}
    with pytest.raises(ApiError):
        await messages_http.wait(bus, "5", None, None)


@pytest_twisted.ensureDeferred
async def test_the_disconnect_deferred_drops_the_waiter(store: Store, bus: MessageBus) -> None:
    await messages_http.subscribe(store, "6", [EVENT])
    gone: defer.Deferred[None] = defer.Deferred()
    pending = defer.ensureDeferred(messages_http.wait(bus, "6", "0", "30", disconnected=gone))
    await until(lambda: bus.waiter_count == 1)
    gone.errback(ConnectionError("the client hung up"))
    assert bus.waiter_count == 0
    with pytest.raises(defer.CancelledError):
        await pending


class WaitRoute:
    """What the API's view will be: the query parameters in, the function's body out."""

    app = Klein()

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    @app.route("/api/messages/<sid>/wait/")
    async def wait(self, request: Request, sid: str) -> bytes:
        args = request.args or {}
        body = await messages_http.wait(
            self.bus, sid, args.get(b"message_id", [None])[0], args.get(b"timeout", [None])[0],
        )
        request.setHeader("Content-Type", "application/json")
        return json.dumps(body).encode()


@pytest_twisted.ensureDeferred
async def test_a_client_hanging_up_leaves_no_waiter_behind(store: Store, bus: MessageBus) -> None:
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(WaitRoute(bus).app.resource()))
    base = f"http://127.0.0.1:{port.getHost().port}/api/messages"
    try:
        await messages_http.subscribe(store, "8", [TASK_COMPLETE])
        hanging_up = [treq.get(f"{base}/8/wait/?message_id=0&timeout=30") for _ in range(3)]
        await until(lambda: bus.waiter_count == 3)
        for request in hanging_up:
            request.cancel()  # closes the connection
        await until(lambda: bus.waiter_count == 0, timeout=2)
        for request in hanging_up:
            with pytest.raises(ResponseNeverReceived):
                await request
        # the next client is served as usual
        staying = treq.get(f"{base}/8/wait/?message_id=0&timeout=30")
        await until(lambda: bus.waiter_count == 1)
        await publish_task_complete(store, "t-9")
        response = await staying
        assert response.code == 200
        assert (await response.json())["messages"] == [{"id": 1, "type": TASK_COMPLETE, "body": "t-9"}]
    finally:
        await port.stopListening()
