"""The messages endpoints of contract §8 as plain async functions, so their views are a few lines.

Arguments come as the request carries them (text or bytes, None when absent); these functions validate
them (``ApiError`` with the contract's status and code) and return the JSON-able body to answer.
"""

from __future__ import annotations

import math
import re
from typing import Any

from twisted.internet import defer

from ovsd.api.errors import invalid_data, missing_parameter
from ovsd.messages import subscriptions as subs
from ovsd.messages.bus import MAX_WAIT, MessageBus
from ovsd.store.connection import Store

Raw = str | bytes | int | None
_INTEGER = re.compile(r"-?\d{1,19}")


def _integer(raw: Raw) -> int | None:
    """The integer a path segment or query value spells, or None."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).strip()
    return int(text) if _INTEGER.fullmatch(text) else None


def parse_sid(raw: Raw) -> int:
    """The subscriber id of the path: an integer chosen by the client (400 otherwise)."""
    sid = _integer(raw)
    if sid is None:
        raise invalid_data("The subscriber id must be an integer")
    return sid


def parse_message_id(raw: Raw) -> int:
    """The id the client has seen up to: mandatory (406 when absent, 400 when not an integer)."""
    if raw is None:
        raise missing_parameter("message_id")
    message_id = _integer(raw)
    if message_id is None or message_id < 0:
        raise invalid_data("message_id must be a message id (an integer, 0 or more)")
    return message_id


def parse_timeout(raw: Raw) -> float:
    """Seconds to wait: 60 when absent, at most 60."""
    if raw is None:
        return MAX_WAIT
    try:
        seconds = float(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
    except ValueError:
        raise invalid_data("timeout must be a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise invalid_data("timeout must be a number of seconds")
    return min(seconds, MAX_WAIT)


async def subscribed_types(store: Store) -> list[str]:
    """``GET /api/messages/``: every type someone is subscribed to."""
    return await subs.all_subscribed_types(store)


async def subscriber_types(store: Store, sid: Raw) -> list[str]:
    """``GET /api/messages/<sid>/``: that subscriber's types."""
    return await subs.subscriptions(store, parse_sid(sid))


async def subscribe(store: Store, sid: Raw, types: Any) -> list[str]:
    """``POST /api/messages/<sid>/subscribe/`` with a JSON array of types: the accepted ones."""
    subscriber = parse_sid(sid)
    if not isinstance(types, list):
        raise invalid_data("The body must be a JSON array of message types")
    return await subs.subscribe(store, subscriber, types)


async def last(store: Store, sid: Raw) -> int:
    """``GET /api/messages/<sid>/last/``: the current last message id (0 when none)."""
    return (await subs.read(store, parse_sid(sid))).last_id


async def wait(
    bus: MessageBus, sid: Raw, message_id: Raw, timeout: Raw = None,
    disconnected: defer.Deferred[Any] | None = None,
) -> dict[str, Any]:
    """``GET /api/messages/<sid>/wait/?message_id=N[&timeout=S]``.

    ``disconnected`` errbacks when the client is gone (``request.notifyFinish()``): the waiter is dropped
    at once. Cancelling the Deferred running this coroutine (Klein does on disconnect) does the same.
    """
    subscriber = parse_sid(sid)
    after = parse_message_id(message_id)
    seconds = parse_timeout(timeout)
    return await bus.wait(subscriber, after, seconds, disconnected)
