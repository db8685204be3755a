"""Test support for the task engine: waiting on conditions, and a worker process that can be killed.

``python -m tests.tasks_support CONFIG`` runs the TaskWorker of the node of CONFIG (concurrency 3) against
the store of CONFIG (``store.url``), with tasks that keep running while the file named by their ``hold``
argument exists: the integration tests SIGKILL it mid-task, as a crash would.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor, task
from twisted.logger import globalLogBeginner, textFileLogObserver

from ovsd.tasks import Route, TaskContext, TaskRegistry


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """The first truthy value of ``check()``, tried until ``timeout`` seconds passed."""
    deadline = reactor.seconds() + timeout
    while True:
        value = await check()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await task.deferLater(reactor, interval, lambda: None)


def held_tasks() -> TaskRegistry:
    """Tasks that run while their ``hold`` file exists, then return their name."""
    registry = TaskRegistry()

    async def hold(ctx: TaskContext, hold: str) -> str:
        await ctx.progress(10)
        while Path(hold).exists():
            await task.deferLater(reactor, 0.02, lambda: None)
        return ctx.name

    registry.task(name="test.node_idempotent", route=Route.STORAGEROUTER, idempotent=True)(hold)
    registry.task(name="test.node_once", route=Route.STORAGEROUTER, idempotent=False)(hold)
    registry.task(name="test.shared_idempotent", route=Route.ANY, idempotent=True)(hold)
    registry.task(name="test.shared_once", route=Route.ANY, idempotent=False)(hold)
    return registry


def main(config_path: str) -> None:
    from ovsd.config import load
    from ovsd.service import build_node
    from ovsd.store.connection import Store

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    config = load(Path(config_path), environ={})
    store = Store(config.store.url, config.store_dir, reactor)
    # the node's own wiring, of which only the worker runs (a crash of it is what the tests cause)
    node = build_node(config, reactor, store=store, registry=held_tasks(), concurrency=3,
                      worker_options={"claim_idle": 1.0})
    store.startService()
    node.worker.startService()
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1])
