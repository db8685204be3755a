"""Cached JSON spliced into an answer as it is, rather than decoded and encoded again on every read.

A cached dynamic (a StorageRouter's 35 statistics, its vDisk guids …) is kept in the store as JSON text. An
object fetch used to decode each one and the answer then encoded it again: with the statistics that was a
sixth of the CPU of a fetch. The text is spliced into the answer only once this process has parsed that very
text (so a damaged cache entry can never make an answer invalid JSON) and when it holds no UTF-16 surrogate
escape (the answer spells a lone surrogate U+FFFD; a text with one takes the decoding path).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# texts already parsed, and whether each may be spliced; cache entries change every few seconds at most, so
# a hot object's texts are found here (a dict keyed by the text: one hash and one compare on a hit)
_CHECKED: dict[str, bool] = {}
_CHECKED_KEPT = 4096
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# ',"name":' for each member name met: dynamics' names, a handful of ASCII identifiers (the same text
# whatever the encoder's ensure_ascii)
_MEMBERS: dict[str, str] = {}
_MEMBERS_KEPT = 256


class JsonText:
    """A value already encoded as JSON text, to be written into an answer as it is. Not a str: an encoder
    that meets one anywhere but in a WithJsonText fails loudly instead of writing it as a quoted string."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class WithJsonText(dict[str, Any]):
    """An answer's object holding some values as :class:`JsonText`."""

    __slots__ = ()

    def decoded(self) -> dict[str, Any]:
        """The same object with every value decoded (for a reader other than the JSON encoder)."""
        return {k: json.loads(v.text) if type(v) is JsonText else v for k, v in self.items()}

    def encode(self, encode: Callable[[Any], str]) -> str:
        """The object's JSON text: ``encode`` writes the decoded values, the texts follow as they are."""
        plain: dict[str, Any] = {}
        tail: list[str] = []
        for name, value in self.items():
            if type(value) is JsonText:
                member = _MEMBERS.get(name)
                if member is None:
                    member = f",{encode(name)}:"
                    if len(_MEMBERS) < _MEMBERS_KEPT:
                        _MEMBERS[name] = member
                tail.append(member)
                tail.append(value.text)
            else:
                plain[name] = value
        if not tail:
            return encode(plain)
        head = encode(plain)
        if plain:
            return head[:-1] + "".join(tail) + "}"
        return "{" + "".join(tail)[1:] + "}"  # no member before the first text: drop its comma


def cache_text(value: Any) -> str:
    """The JSON text a dynamic's value is cached as: compact, ASCII (what an answer can splice)."""
    return _COMPACT.encode(value)


def json_text(raw: str) -> Any:
    """A cached dynamic's value for an answer: its text as a JsonText when it may be spliced, else decoded
    (raises ValueError, like json.loads, on a text that is not one JSON value)."""
    spliceable = _CHECKED.get(raw)
    if spliceable is None:
        json.loads(raw)  # once per distinct text
        spliceable = "\\ud" not in raw and "\\uD" not in raw
        if len(_CHECKED) >= _CHECKED_KEPT:
            _CHECKED.clear()
        _CHECKED[raw] = spliceable
    return JsonText(raw) if spliceable else json.loads(raw)
