"""Lua scripts name keys exactly as ``ovsd/store/keys.py`` does: the Lua functions are generated from it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted

from ovsd.store import keys, scripts
from ovsd.store.connection import Store

# a colon, a quote, a backslash, a Lua escape, non-ASCII, a guid, an empty value: the key must be the same
SAMPLES = ["f6c3a1e2-9d1b-4c55-8a4e-0f3b2d1c9e7a", "a:b", "it's", "back\\slash", "\\n", "ünïcødé ✓", ""]


def _functions() -> dict[str, Callable[..., str]]:
    return {name: f for name, f in inspect.getmembers(keys, inspect.isfunction) if f.__module__ == keys.__name__}


@pytest_twisted.ensureDeferred
async def test_every_key_function_names_the_same_key_in_lua_and_in_python(store: Store) -> None:
    functions = _functions()
    assert {"obj", "unique", "reverse", "dynamic", "index"} <= set(functions)
    assert set(scripts.key_functions()) == {f"{name}_key" for name in functions}
    for name, function in functions.items():
        arity = len(inspect.signature(function).parameters)
        for n in range(len(SAMPLES)):
            args = [SAMPLES[(n + i) % len(SAMPLES)] for i in range(arity)]
            lua = scripts.key_functions()[f"{name}_key"]
            call = f"return {name}_key({', '.join(f'ARGV[{i + 1}]' for i in range(arity))})"
            assert await store.execute("EVAL", f"{lua}\n{call}", 0, *args) == function(*args), (name, args)


def test_a_key_function_that_transforms_its_argument_cannot_be_translated() -> None:
    def lowered(kind: str) -> str:
        return f"ovs:x:{kind.lower()}"

    def dropped(kind: str, guid: str) -> str:
        return f"ovs:x:{kind}"

    with pytest.raises(ValueError, match="lowered transforms its arguments"):
        scripts._translate(lowered)
    with pytest.raises(ValueError, match="dropped does not use every argument"):
        scripts._translate(dropped)


def test_no_lua_script_builds_a_key_name_from_a_prefix_of_its_own() -> None:
    # the store's prefix and the key families appear only in keys.py: a script writing 'obj:' or 'ovs:'
    # itself would disagree with Python the day keys.py changes
    families = re.compile(r"""['"](?:ovs:|obj:|uniq:|rel:|dyn:|idx:|task:|tasks:|msg:|auth:|node:|sd:)""")
    for path in sorted(scripts.LUA_DIR.glob("*.lua")):
        assert not families.search(path.read_text()), path.name


def test_no_python_module_carries_lua_of_its_own() -> None:
    root = Path(scripts.__file__).parent.parent
    inline = [str(p.relative_to(root)) for p in root.rglob("*.py") if "redis.call(" in p.read_text()]
    assert inline == []


def test_load_lua_prepends_only_the_functions_a_script_calls_on_one_line() -> None:
    # one first line: an error the server reports on line n + 1 is on line n of the file
    source = scripts.load_lua("dal_apply")
    assert source.split("\n", 1)[1] == (scripts.LUA_DIR / "dal_apply.lua").read_text()
    assert "local function obj_key(" in source.split("\n", 1)[0]
    assert "task_key" not in source  # only the functions a script calls
