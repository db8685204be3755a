"""Messages (contract §8): subscriptions and the long-poll, served by any node for any subscriber."""

from __future__ import annotations

import math
from typing import Any

from ovsd.api.app import Response, encode_json
from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint, resource
from ovsd.api.errors import invalid_data
from ovsd.api.params import Param
from ovsd.messages import subscriptions as subs
from ovsd.messages.bus import MAX_WAIT, MessageBus

resource("messages", "message", key="sid", key_type="int",
         summary="Long-poll of messages (TASK_COMPLETE, EVENT) for GUIs; <sid> is the subscriber's integer id")


def bus(call: Call) -> MessageBus:
    return call.context.messages


def sid(call: Call) -> int:
    """The subscriber id of the path: an integer the client chose (the resource's key parser checked it)."""
    assert isinstance(call.key, int)
    return call.key


@endpoint(resource="messages", method="GET", kind="list", roles=R, returns="list")
async def subscribed(call: Call) -> Any:
    """Every message type someone is subscribed to."""
    return await subs.all_subscribed_types(call.context.store)


@endpoint(resource="messages", method="GET", kind="fetch", roles=R, returns="list")
async def subscriptions(call: Call) -> Any:
    """The types this subscriber is subscribed to."""
    return await subs.subscriptions(call.context.store, sid(call))


@endpoint(resource="messages", method="POST", action="subscribe", roles=R, returns="list")
async def subscribe(call: Call) -> Any:
    """Subscribe to a JSON array of types (replacing earlier ones); answers the accepted types."""
    types = call.body
    if not isinstance(types, list):
        raise invalid_data("The body must be a JSON array of message types")
    return await subs.subscribe(call.context.store, sid(call), types)


@endpoint(resource="messages", method="GET", link="last", roles=R, returns="value")
async def last(call: Call) -> Any:
    """The id of the last message (0 when none)."""
    return (await subs.read(call.context.store, sid(call))).last_id


@endpoint(resource="messages", method="GET", link="wait", roles=R, returns="object", params=(
    Param("message_id", int, mandatory=True, where="query", description="the last message id the client has"),
    Param("timeout", float, where="query", default=MAX_WAIT, description="seconds to wait, at most 60"),
))
async def wait(call: Call) -> Any:
    """Messages after message_id of the subscriber's types, as soon as there are some (or at the timeout)."""
    after, seconds = call.params["message_id"], call.params["timeout"]
    if after < 0:
        raise invalid_data("Invalid data passed: message_id must be a message id (an integer, 0 or more)")
    if not math.isfinite(seconds) or seconds < 0:
        raise invalid_data("Invalid data passed: timeout must be a number of seconds")
    # a GET: a client that goes away cancels this call (the dispatcher does), which drops the waiter at once
    body = await bus(call).wait(sid(call), after, min(seconds, MAX_WAIT))
    return Response(_SHARED.encode(body))


class SharedAnswer:
    """The JSON of the last long-poll answer, reused while answers are the same.

    A fan-out hands one message list object to every waiter of the same types, so thousands of answers in a
    row are equal; encoding each would be a tenth of the cost of answering. The entry holds that list, so
    the identity test cannot be fooled by a new list at a reused address; the bus never changes a list it
    handed out (each batch builds its own).
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._encoded = b""

    def encode(self, body: dict[str, Any]) -> bytes:
        messages = body["messages"]
        if not messages:
            return encode_json(body)  # a timeout's answer: cheap, and a fresh empty list each time
        key = (messages, body["last_message_id"], tuple(body["subscriptions"]), body.get("missed", False))
        last = self._key
        if last is not None and last[0] is messages and last[1:] == key[1:]:
            return self._encoded
        self._key, self._encoded = key, encode_json(body)
        return self._encoded


_SHARED = SharedAnswer()
