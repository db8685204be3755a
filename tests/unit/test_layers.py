"""The API is the edge: the domain (auth, object model, store, tasks, messages, agent, controllers, storage)
never imports it, so every refusal leaves the domain as a domain error and becomes HTTP in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OVSD = Path(__file__).resolve().parents[2] / "ovsd"
DOMAIN = ("auth", "dal", "store", "tasks", "messages", "agent", "controllers", "storage")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", DOMAIN)
def test_the_domain_never_imports_the_api(package: str) -> None:
    offenders = {
        str(path.relative_to(OVSD.parent)): sorted(m for m in imported_modules(path) if m.startswith("ovsd.api"))
        for path in (OVSD / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


BENCH = OVSD.parent / "bench"


def test_the_benchmarks_never_import_the_test_suite() -> None:
    # a benchmark shares real nodes and stores with the tests through devnode, never through tests/
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m == "tests" or m.startswith("tests."))
        for path in BENCH.glob("*.py")
    }
    assert sorted(offenders) != [], "no benchmark found to check"
    assert {k: v for k, v in offenders.items() if v} == {}
