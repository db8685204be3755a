"""Our Lua scripts (``ovsd/store/lua/<name>.lua``), each given the key-name functions of :mod:`ovsd.store.keys`.

A script that needs a key it cannot be handed in KEYS (the object of a guid it just read, the unique index
of a value) calls ``obj_key(kind, guid)``, ``unique_key(kind, field, value)``… — one Lua function per
function of ``keys.py`` (its name plus ``_key``, same parameters). Each is generated from the Python
function itself: called with marker arguments, its result becomes a Lua concatenation of the literal parts
and the parameters. So Python and Lua can never disagree on a key name; a key function that does more than
put its arguments between fixed text cannot be translated and fails the import.

``load_lua`` prepends only the functions a script calls, all on its first line: the script's own line
numbers (in the server's error messages) are one more than in its file.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ovsd.store import keys

__all__ = ["key_functions", "load_lua"]

LUA_DIR = Path(__file__).parent / "lua"

# mixed case: a key function that changed the case of a value would change the marker and be caught
_MARKER = re.compile("\x00p(\\d+)Q\x00")


def _lua_string(text: str) -> str:
    """A Lua string literal of ``text`` (UTF-8 bytes; anything but plain printable ASCII as a \\ddd escape)."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in "'\\" else f"\\{byte:03d}")
    return "'" + "".join(out) + "'"


def _translate(function: Callable[..., str]) -> str:
    """The Lua function of one key function (ValueError when it cannot be written as a concatenation)."""
    params = list(inspect.signature(function).parameters)
    text = function(*(f"\x00p{i}Q\x00" for i in range(len(params))))
    pieces = _MARKER.split(text)
    parts: list[str] = []
    used: set[int] = set()
    for n, piece in enumerate(pieces):
        if n % 2:
            used.add(int(piece))
            parts.append(params[int(piece)])
        elif "\x00" in piece:
            raise ValueError(f"keys.{function.__name__} transforms its arguments: it has no Lua equivalent")
        elif piece:
            parts.append(_lua_string(piece))
    if used != set(range(len(params))):
        raise ValueError(f"keys.{function.__name__} does not use every argument as given: no Lua equivalent")
    body = " .. ".join(parts) or "''"
    return f"local function {function.__name__}_key({', '.join(params)}) return {body} end"


@cache
def key_functions() -> dict[str, str]:
    """Lua name -> Lua source of every key function of ``keys.py``."""
    functions = {}
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        if function.__module__ == keys.__name__ and not name.startswith("_"):
            functions[f"{name}_key"] = _translate(function)
    return functions


def _preamble(source: str) -> str:
    called = [lua for name, lua in key_functions().items() if re.search(rf"\b{name}\s*\(", source)]
    return " ".join(called)


def load_lua(name: str) -> str:
    """The source of ``ovsd/store/lua/<name>.lua`` with the key functions it calls defined on a first line."""
    source = (LUA_DIR / f"{name}.lua").read_text()
    return f"{_preamble(source)}\n{source}"
