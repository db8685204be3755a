"""One wiring: ovsd.service.build_node builds the node's context, worker and API service for the daemon, the
test fixtures and the benchmarks alike, so no harness runs a node wired differently from the daemon."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from twisted.internet import reactor

from ovsd.service import build_node
from ovsd.store.connection import Store
from tests.conftest import node_config

REPO = Path(__file__).resolve().parents[2]
WIRED_ONLY_BY_BUILD_NODE = ("NodeContext", "TaskWorker", "ApiService")


def constructions(root: Path, base: Path) -> list[str]:
    """``path:line name`` (relative to ``base``) of every call of a name only build_node may call."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if callee in WIRED_ONLY_BY_BUILD_NODE:
                    found.append(f"{path.relative_to(base)}:{node.lineno} {callee}")
    return found


def test_only_build_node_constructs_the_context_the_worker_and_the_api_service() -> None:
    built = [c for top in ("ovsd", "tests", "bench", "devnode") for c in constructions(REPO / top, REPO)]
    assert {c.split(":")[0] for c in built} == {"ovsd/service.py"}, built


def test_the_check_finds_a_hand_built_context(tmp_path: Path) -> None:
    (tmp_path / "harness.py").write_text("context = NodeContext(config, store, reactor)\nworker = t.TaskWorker()\n")
    assert constructions(tmp_path, tmp_path) == ["harness.py:1 NodeContext", "harness.py:2 TaskWorker"]


def test_a_built_node_starts_nothing_and_its_context_is_complete_and_fixed(data_dir: Path) -> None:
    config = node_config(data_dir)
    node = build_node(config, reactor, store=Store("embedded", config.store_dir, reactor))
    assert not any(service.running for service in node.top)  # a harness starts what it needs
    context = node.context
    assert (context.repository, context.tasks, context.messages, context.agent, context.storage) == (
        node.repository, node.engine, node.bus, node.agent, node.storage)
    assert not context.readiness.ready
    node.mark_ready()
    assert context.readiness.ready and node.when_ready().called
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.repository = node.repository  # type: ignore[misc]
