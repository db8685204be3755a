"""Test support for the work endpoints: an in-process HTTPS node wired as ``ovsd/service.py`` wires a node.

The node has the real store, repository, bearer authenticator and bootstrap, and — what the views of
tasks, messages and statistics need — a TaskEngine, a TaskWorker, a MessageBus and a NodeAgent
(registration, heartbeats, the node's live figures), with completions published as TASK_COMPLETE. Its
task functions are test ones from a registry of their own: ``test.noop``, ``test.echo``, ``test.fail``
and ``test.gated`` (runs until the test opens its gate). The worker runs one task at a time, so a task
queued behind a gated one stays PENDING until the gate opens.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import defer, reactor, task
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived

from ovsd import tls
from ovsd.agent.service import NodeAgent
from ovsd.context import NodeContext
from ovsd.messages import MessageBus
from ovsd.service import Node, build_node, prepare_data_dir
from ovsd.store.connection import Store
from ovsd.tasks import Route, TaskContext, TaskEngine, TaskRegistry, TaskWorker
from tests.conftest import ApiHarness, node_config
from tests.views_support import ViewsNode

#: fast heartbeats, so "a node that stopped pushing" is visible within a few seconds
FAST_AGENT = {"heartbeat_interval": 0.5, "warning_after": 1.5, "failure_after": 3.0}


async def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """The first truthy value of ``predicate()`` (a plain function), tried until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await task.deferLater(reactor, interval, lambda: None)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """The first truthy value of ``await check()``, tried until ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await task.deferLater(reactor, interval, lambda: None)


async def hang_up(work: WorkNode, path: str, token: str, count: int, held: Callable[[], int]) -> None:
    """``count`` clients GET ``path`` and hang up while the node holds them (``held()`` counts them); each
    must leave at once (``held()`` back to 0 within 2 s) and none may have got an answer."""
    headers = {"Accept": "application/json; version=1", "Authorization": f"Bearer {token}"}
    url = work.node.api.url(path)
    hanging_up: list[defer.Deferred[Any]] = [work.node.api.client.get(url, headers=headers) for _ in range(count)]
    await until(lambda: held() == count)
    for request in hanging_up:
        request.cancel()  # closes its connection
    await until(lambda: held() == 0, timeout=2)
    for request in hanging_up:
        try:
            await request
        except (ResponseNeverReceived, defer.CancelledError):
            pass
        else:
            raise AssertionError("a cancelled request got an answer")


class Gates:
    """Gates the ``test.gated`` tasks wait behind, by key."""

    def __init__(self) -> None:
        self._gates: dict[str, defer.Deferred[None]] = {}

    def gate(self, key: str) -> defer.Deferred[None]:
        return self._gates.setdefault(key, defer.Deferred())

    def open(self, key: str) -> None:
        gate = self.gate(key)
        if not gate.called:
            gate.callback(None)

    def open_all(self) -> None:
        for key in list(self._gates):
            self.open(key)


def work_tasks(gates: Gates) -> TaskRegistry:
    """Task functions for the tests, declared in a registry of their own."""
    registry = TaskRegistry()

    @registry.task(name="test.noop", route=Route.THIS_NODE, idempotent=True)
    async def noop(ctx: TaskContext) -> None:
        return None

    @registry.task(name="test.echo", route=Route.THIS_NODE, idempotent=True)
    async def echo(ctx: TaskContext, value: Any) -> Any:
        return value

    @registry.task(name="test.fail", route=Route.THIS_NODE)
    async def fail(ctx: TaskContext, reason: str) -> None:
        raise RuntimeError(reason)

    @registry.task(name="test.gated", route=Route.THIS_NODE)
    async def gated(ctx: TaskContext, key: str, result: Any = None) -> Any:
        await ctx.progress(40)
        await gates.gate(key)
        return result

    @registry.task(name="test.shared", route=Route.ANY, idempotent=True)
    async def shared(ctx: TaskContext) -> str:
        return ctx.name

    return registry


@dataclass
class WorkNode:
    """The node, its services, and a client of its API (``node.call``, ``node.admin_token`` …)."""

    node: ViewsNode
    context: NodeContext
    engine: TaskEngine
    worker: TaskWorker
    bus: MessageBus
    agent: NodeAgent
    gates: Gates
    services: list[Any] = field(repr=False)
    built: Node = field(repr=False)

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def machine_id(self) -> str:
        return self.context.config.node.machine_id

    async def enqueue(self, name: str, **kwargs: Any) -> str:
        """Queue a task as a controller does (the API has no endpoint that queues an arbitrary task)."""
        return await self.engine.enqueue(name, kwargs)

    async def token(self, roles: str = "read+write+manage") -> str:
        return await self.node.admin_token(roles)


async def start_work_node(
    store: Store, directory: Path, *, concurrency: int = 1, **sections: dict[str, Any],
) -> WorkNode:
    """A node named after ``directory`` (machine_id ``mid-<name>``); ``sections`` add to its configuration
    (``agent=FAST_AGENT`` for heartbeats that go stale within seconds)."""
    data_dir = directory / "data"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    node = {"name": directory.name, "machine_id": f"mid-{directory.name}", **sections.pop("node", {})}
    config = node_config(data_dir, node=node, **sections)
    prepare_data_dir(config)
    gates = Gates()
    # the daemon's own wiring (ovsd.service.build_node) on the test store, with the test task functions
    built = build_node(config, reactor, store=store, registry=work_tasks(gates), concurrency=concurrency)
    built.top.startService()
    await built.when_ready()
    port = await built.api.when_listening()
    await until(lambda: built.bus.position is not None)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 20
    agent_ = Agent(reactor, contextFactory=tls.client_policy((config.tls_dir / "ca.pem").read_bytes()), pool=pool)
    harness = ApiHarness(built.context, built.api, HTTPClient(agent_), port.getHost().port)
    return WorkNode(ViewsNode(harness, built.repository, pool), built.context, built.engine, built.worker, built.bus,
                    built.agent, gates, built.services, built)


async def stop_work_node(work: WorkNode) -> None:
    work.gates.open_all()  # a gated task still running would hold the worker's stop for its grace period
    await work.node.pool.closeCachedConnections()
    await work.built.top.stopService()  # the node's services in reverse start order, as the daemon stops


@pytest_twisted.async_yield_fixture
async def work_node(store: Store, tmp_path: Path) -> AsyncIterator[WorkNode]:
    """A node serving every view, with its task engine, worker (one task at a time), bus and agent."""
    work = await start_work_node(store, tmp_path / "node")
    yield work
    await stop_work_node(work)
