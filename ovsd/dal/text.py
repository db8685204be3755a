"""What text the object model holds, and how text leaves the node as UTF-8 whatever was stored.

Every stored string is made of Unicode scalar values (no lone surrogates: UTF-8 cannot encode them, the
store's Lua JSON refuses their escapes, and a stored one once made every answer showing it fail) and holds
no NUL. A single-line field (names, usernames, ips, passwords) also holds no other control character (C0,
DEL, C1); a text field (descriptions) may hold tab, line feed and carriage return. Strings inside a JSON
structure (a ``dict`` or ``list`` field, keys included) follow the first rule only: they are data of
their own.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

SURROGATE: Final = "holds a lone surrogate (not valid Unicode)"
NUL: Final = "holds a NUL character"
CONTROL: Final = "holds a control character"

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _named(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return SURROGATE
    return NUL if char == "\x00" else CONTROL


def string_problem(value: str, *, text: bool = False) -> str | None:
    """What is wrong with a string for a single-line field (``text``: a text field), or None."""
    found = (_CONTROL_TEXT if text else _CONTROL_LINE).search(value)
    return None if found is None else _named(found.group())


def unstorable(value: str) -> str | None:
    """What makes a string impossible to store anywhere (a lone surrogate, a NUL), or None."""
    found = _UNSTORABLE.search(value)
    return None if found is None else _named(found.group())


def display(name: str) -> str:
    """A field name as an error description shows it: plain names as they are, others JSON-quoted in ASCII
    (the name itself may be what is hostile)."""
    return name if _PLAIN_NAME.fullmatch(name) else json.dumps(name)


def nested_problem(value: Any, where: str) -> tuple[str, str] | None:
    """(where in ``value``, what is wrong) for the first unstorable string of a JSON structure, keys included;
    ``where`` names ``value`` itself (``metadata`` gives ``metadata.key[2]``)."""
    if isinstance(value, str):
        problem = unstorable(value)
        return None if problem is None else (where, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                problem = unstorable(key)
                if problem is not None:
                    return (f"a field name in {where}" if where else "a field name"), problem
            found = nested_problem(item, f"{where}.{display(str(key))}" if where else display(str(key)))
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nested_problem(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


def utf8(text: str) -> bytes:
    """UTF-8 of a text that may hold lone surrogates (a value an earlier release stored): a surrogate pair
    becomes its character, a lone surrogate U+FFFD. Plain text costs one strict encode."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")
