"""Subscriptions: which message types a subscriber (a GUI session, ``sid``) wants.

``msg:subs:<sid>`` is the set of its types; it expires ``ttl`` seconds after the subscriber's last call,
and every call refreshes it. ``msg:subscribers:<type>`` indexes the subscribers of each type, scored by
their expiry, so "every type someone is subscribed to" never scans the keyspace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ovsd.messages.log import MESSAGE_TYPES, Message, message
from ovsd.store import keys
from ovsd.store.connection import Store, load_lua

SUBSCRIPTION_TTL = 300.0

_READ = load_lua("message_read")
_SUBSCRIBE = load_lua("message_subscribe")
_SUBSCRIBED_TYPES = load_lua("message_subscribed_types")
_TYPE_INDEXES = [keys.message_subscribers(t) for t in MESSAGE_TYPES]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def in_contract_order(types: Iterable[str]) -> list[str]:
    present = set(types)
    return [t for t in MESSAGE_TYPES if t in present]


async def subscribe(store: Store, sid: int, types: Iterable[object], ttl: float = SUBSCRIPTION_TTL) -> list[str]:
    """Replace the subscriber's types; returns the accepted ones (unknown types are dropped)."""
    accepted: list[str] = []
    for t in types:
        if isinstance(t, str) and t in MESSAGE_TYPES and t not in accepted:
            accepted.append(t)
    args: list[object] = [sid, _ms(ttl)]
    for t in MESSAGE_TYPES:
        args += [t, "1" if t in accepted else "0"]
    await store.script(_SUBSCRIBE, [keys.subscription(sid), *_TYPE_INDEXES], args)
    return accepted


@dataclass(frozen=True)
class SubscriberView:
    """What one subscriber call saw of the log, read in one atomic step."""

    last_id: int  # the newest message id of the cluster
    oldest_id: int  # the oldest retained id (last_id + 1 when the log is empty)
    scanned_to: int  # every message up to here was looked at for this subscriber
    types: list[str]
    messages: list[Message]  # of the subscriber's types, after the requested id, in id order


async def read_many(
    store: Store, requests: Sequence[tuple[int, int]], limit: int = 1000, ttl: float = SUBSCRIPTION_TTL,
) -> list[SubscriberView]:
    """Serve several subscriber calls ``(sid, after)`` in one store call: refresh each subscription and,
    when ``after >= 0``, read the subscriber's messages with id > after (at most ``limit`` looked at)."""
    args: list[object] = [_ms(ttl), limit, len(MESSAGE_TYPES), *MESSAGE_TYPES]
    for sid, after in requests:
        args += [sid, after]
    reply = await store.script(
        _READ, [keys.MESSAGE_SEQ, keys.MESSAGE_LOG, *_TYPE_INDEXES, *(keys.subscription(sid) for sid, _ in requests)],
        args,
    )
    last, oldest, logs, typesets = int(reply[0]), int(reply[1]), reply[2], reply[3]
    # a burst of long-polls mostly shares one position: each message is decoded once, and shared
    by_position: dict[int, tuple[int, list[Message]]] = {}
    for after, scanned, flat in logs:
        found = [message(int(flat[i]), flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]
        by_position[int(after)] = (int(scanned), found)
    views = []
    for (_, after), types in zip(requests, typesets, strict=True):
        wanted = in_contract_order(types)
        scanned, logged = by_position.get(after, (last, []))
        views.append(SubscriberView(last, oldest, scanned, wanted, [m for m in logged if m["type"] in wanted]))
    return views


async def read(
    store: Store, sid: int, after: int = -1, limit: int = 1000, ttl: float = SUBSCRIPTION_TTL,
) -> SubscriberView:
    """Refresh the subscription of ``sid`` and, when ``after >= 0``, read its messages with id > after."""
    return (await read_many(store, [(sid, after)], limit, ttl))[0]


async def subscriptions(store: Store, sid: int, ttl: float = SUBSCRIPTION_TTL) -> list[str]:
    """The subscriber's types (refreshing its subscription, as every call of a subscriber does)."""
    return (await read(store, sid, ttl=ttl)).types


async def all_subscribed_types(store: Store) -> list[str]:
    """Every message type at least one live subscriber wants."""
    live = await store.script(_SUBSCRIBED_TYPES, _TYPE_INDEXES, list(MESSAGE_TYPES))
    return in_contract_order(live)
