"""Reads of the object model that take one store round trip, whatever they gather.

Every round trip costs the API a write, a wake-up and a reply's worth of Deferreds, and a call that needs an
object, its reverse relations and its cached dynamics would otherwise make four. Each read here is one
small Lua script (``ovsd/store/lua/dal_*.lua``, run by SHA, read-only, its key names from ``ovsd.store.keys``):

- ``gather``: an object (optionally), any number of sets (reverse indexes) and strings (cached dynamics);
- ``load_kind``: every object of a kind, guid and document, without a 10,000-key MGET built in Python;
- ``guids``: the members of a kind's index;
- ``members_many``: the reverse index of one relation for many objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovsd.dal.fields import ReverseRelation
from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.store.scripts import load_lua

_GATHER = load_lua("dal_gather")
_LOAD_KIND = load_lua("dal_load_kind")
_GUIDS = load_lua("dal_guids")
_MEMBERS_MANY = load_lua("dal_members_many")


async def gather(
    store: Store, object_key: str | None, set_keys: Sequence[str], string_keys: Sequence[str],
) -> tuple[str | None, list[list[str]], list[str | None]]:
    """(the object's JSON or None, the members of each set, each string or None), in one round trip."""
    reply = await store.script(_GATHER, [], [object_key or "", len(set_keys), *set_keys, *string_keys])
    sets_end = 1 + len(set_keys)
    # a missing object or string is Lua's false, which the reply spells nil (None)
    return reply[0] or None, [list(m or []) for m in reply[1:sets_end]], [v or None for v in reply[sets_end:]]


async def load_kind(store: Store, kind: str) -> list[tuple[str, str]]:
    """(guid, JSON) of every object in a kind's index, in no particular order."""
    text: str = await store.script(_LOAD_KIND, [], [kind])
    if not text:
        return []
    parts = text.split("\n")
    return list(zip(parts[0::2], parts[1::2], strict=True))


async def guids(store: Store, index_key: str) -> list[str]:
    """The members of a set of GUIDs (a kind's index), in no particular order."""
    text: str = await store.script(_GUIDS, [index_key], [])
    return text.split("\n") if text else []


async def members_many(store: Store, kind: str, relation: str, targets: Sequence[str]) -> list[list[str]]:
    """The guids of the objects of ``kind`` whose ``relation`` points to each target (its reverse index), in order."""
    if not targets:
        return []
    reply: list[Any] = await store.script(_MEMBERS_MANY, [], [kind, relation, *targets])
    return [list(m or []) for m in reply]


@dataclass(frozen=True)
class Sides:
    """What answering with objects needs beside their stored fields, one dict per object, in order.

    ``reverse``: the sorted guids of each asked reverse relation; ``cached``: the cached JSON of each asked
    dynamic (None where the cache holds nothing).
    """

    reverse: list[dict[str, list[str]]]
    cached: list[dict[str, str | None]]


async def read_sides(
    store: Store, kind: str, guids: Sequence[str], reverse: Sequence[ReverseRelation], cached_dynamics: Sequence[str],
    object_key: str | None = None,
) -> tuple[str | None, Sides]:
    """(the JSON at object_key, the sides of the objects guids of kind), in one round trip (none if nothing to read)."""
    set_keys = [keys.reverse(rr.source, rr.relation, guid) for guid in guids for rr in reverse]
    string_keys = [keys.dynamic(kind, guid, name) for guid in guids for name in cached_dynamics]
    if object_key is None and not set_keys and not string_keys:
        return None, Sides([{} for _ in guids], [{} for _ in guids])
    raw, members, strings = await gather(store, object_key, set_keys, string_keys)
    next_members, next_string = iter(members).__next__, iter(strings).__next__
    return raw, Sides(
        [{rr.name: sorted(next_members()) for rr in reverse} for _ in guids],
        [{name: next_string() for name in cached_dynamics} for _ in guids],
    )
