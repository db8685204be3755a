"""ovsd/store/ is the only part of ovsd that speaks the Redis protocol or imports a Redis client library."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import ovsd

ROOT = Path(ovsd.__file__).parent
REDIS_LIBRARIES = {"hiredis", "txredisapi", "redis", "valkey"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_store_package_imports_a_redis_client_library() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & REDIS_LIBRARIES)
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] != "store" and _imported_roots(path) & REDIS_LIBRARIES
    }
    assert offenders == {}


def test_no_ovsd_module_loads_txredisapi() -> None:
    # every module imported, as the daemon and the CLI would: none may pull the old client in (its
    # exceptions would be the ones leaking to views)
    for module in pkgutil.walk_packages(ovsd.__path__, "ovsd."):
        importlib.import_module(module.name)
    assert "txredisapi" not in sys.modules
