"""Reads of the object model that take one store round trip, whatever they gather.

Every round trip costs the API a write, a wake-up and a reply's worth of Deferreds, and a call that needs an
object, its reverse relations and its cached dynamics would otherwise make four. Each read here is one
small Lua script (run by SHA, read-only, with the key names built by ``ovsd.store.keys`` and passed in):

- ``gather``: an object (optionally), any number of sets (reverse indexes) and strings (cached dynamics);
- ``load_kind``: every object of a kind, guid and document, without a 10,000-key MGET built in Python;
- ``guids``: the members of a kind's index;
- ``members_many``: the members of many sets sharing one key prefix (the reverse index of each listed object).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovsd.dal.fields import ReverseRelation
from ovsd.store import keys
from ovsd.store.connection import Store

# ARGV: the object key ('' for none), the number n of set keys, n set keys, then string keys.
# Returns one JSON text: [object json or false, [members of each set]..., each string or false...]. One
# bulk reply rather than a nested one: a client without a C parser pays a reactor turn per bulk string.
_GATHER = """
local out = {false}
if ARGV[1] ~= '' then out[1] = redis.call('GET', ARGV[1]) end
local n = tonumber(ARGV[2])
for i = 3, n + 2 do out[#out + 1] = redis.call('SMEMBERS', ARGV[i]) end
for i = n + 3, #ARGV do out[#out + 1] = redis.call('GET', ARGV[i]) end
return cjson.encode(out)
"""

# ARGV: the index key of a kind, the object key prefix of that kind. Returns one text: guid, newline, JSON,
# newline, guid … (guids are GUIDs and compact JSON escapes every control character, so a newline is never
# part of either). One bulk reply instead of two per object: a client parses 20,000 small replies one at a
# time, a single one at once.
_LOAD_KIND = """
local out = {}
for _, guid in ipairs(redis.call('SMEMBERS', ARGV[1])) do
  local raw = redis.call('GET', ARGV[2] .. guid)
  if raw then
    out[#out + 1] = guid
    out[#out + 1] = raw
  end
end
return table.concat(out, '\\n')
"""

# ARGV: a set key whose members are GUIDs. Returns them in one text, separated by newlines (see above).
_GUIDS = """
return table.concat(redis.call('SMEMBERS', ARGV[1]), '\\n')
"""

# ARGV: a key prefix, then suffixes. Returns the members of each set prefix..suffix, in order.
_MEMBERS_MANY = """
local out = {}
local prefix = ARGV[1]
for i = 2, #ARGV do out[i - 1] = redis.call('SMEMBERS', prefix .. ARGV[i]) end
return out
"""


async def gather(
    store: Store, object_key: str | None, set_keys: Sequence[str], string_keys: Sequence[str],
) -> tuple[str | None, list[list[str]], list[str | None]]:
    """(the object's JSON or None, the members of each set, each string or None), in one round trip."""
    reply = json.loads(await store.script(_GATHER, [], [object_key or "", len(set_keys), *set_keys, *string_keys]))
    sets_end = 1 + len(set_keys)
    # an empty set is an empty Lua table, which cjson spells {}; a missing string is false
    return reply[0] or None, [list(m or []) for m in reply[1:sets_end]], [v or None for v in reply[sets_end:]]


async def load_kind(store: Store, index_key: str, object_prefix: str) -> list[tuple[str, str]]:
    """(guid, JSON) of every object in a kind's index, in no particular order."""
    text: str = await store.script(_LOAD_KIND, [], [index_key, object_prefix])
    if not text:
        return []
    parts = text.split("\n")
    return list(zip(parts[0::2], parts[1::2], strict=True))


async def guids(store: Store, index_key: str) -> list[str]:
    """The members of a set of GUIDs (a kind's index), in no particular order."""
    text: str = await store.script(_GUIDS, [], [index_key])
    return text.split("\n") if text else []


async def members_many(store: Store, prefix: str, suffixes: Sequence[str]) -> list[list[str]]:
    """The members of the set ``prefix + suffix`` for each suffix, in order."""
    if not suffixes:
        return []
    reply: list[Any] = await store.script(_MEMBERS_MANY, [], [prefix, *suffixes])
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
