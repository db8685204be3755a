"""Benchmark of a task's round trip: enqueue a no-op task, a worker runs it, the caller sees SUCCESS.

    .venv/bin/python bench/task_roundtrip.py      (from the repo root; BENCH_TASKS=1000 by default)

In-process, against a private valkey-server started by the daemon's own launcher (unix socket, AOF on):
one TaskEngine (enqueue, then ``wait``, which blocks on the completion stream) and one TaskWorker with the
default concurrency (4). The HTTP leg (``GET /api/tasks/<id>/get/``) is not part of it yet. Prints

    sequential: n=… p50_ms=… p99_ms=… tasks_s=…     (one task after the other)
    concurrent: n=… p50_ms=… p99_ms=… tasks_s=…     (all enqueued at once)
    budget: task_roundtrip_sequential_p50_ms <= 5 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from twisted.internet import defer, task  # noqa: E402

from ovsd.config import load  # noqa: E402
from ovsd.context import NodeContext  # noqa: E402
from ovsd.store.connection import Store  # noqa: E402
from ovsd.store.embedded import EmbeddedStoreServer  # noqa: E402
from ovsd.tasks import Route, TaskContext, TaskEngine, TaskRegistry, TaskWorker  # noqa: E402
from tests.support import node_sections, write_config  # noqa: E402

BUDGET_P50_MS = 5.0
WARMUP = 50


def count() -> int:
    return int(os.environ.get("BENCH_TASKS", "1000"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(label: str, latencies: list[float], elapsed: float) -> float:
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    print(f"{label}: n={len(latencies)} p50_ms={p50:.2f} p99_ms={p99:.2f} tasks_s={len(latencies) / elapsed:.0f}")
    return p50


async def roundtrip(engine: TaskEngine) -> float:
    started = time.perf_counter()
    record = await engine.wait(await engine.enqueue("bench.noop"), 30)
    if record is None or record["status"] != "SUCCESS":
        raise RuntimeError(f"the no-op task did not succeed: {record}")
    return time.perf_counter() - started


async def measure(reactor: Any, directory: Path) -> bool:
    config = load(write_config(directory / "ovsd.toml", node_sections(directory / "node", 0)), environ={})
    server = EmbeddedStoreServer(directory / "store", reactor)
    server.startService()
    store = Store("embedded", directory / "store", reactor)
    store.startService()
    registry = TaskRegistry()

    @registry.task(name="bench.noop", route=Route.THIS_NODE, idempotent=True)
    async def noop(ctx: TaskContext) -> None:
        return None

    machine_id = config.node.machine_id
    engine = TaskEngine(store, registry, machine_id, reactor)
    worker = TaskWorker(NodeContext(config, store, reactor), machine_id, config.worker.concurrency, registry, reactor)
    try:
        await store.wait_until_available(interval=0.05)
        engine.startService()
        worker.startService()
        for _ in range(WARMUP):
            await roundtrip(engine)
        n = count()
        print("in-process: enqueue -> worker -> SUCCESS seen through TaskEngine.wait "
              f"(worker concurrency {config.worker.concurrency}); the HTTP GET /api/tasks/<id>/get/ leg comes later")

        started = time.perf_counter()
        sequential = [await roundtrip(engine) for _ in range(n)]
        p50 = report("sequential", sequential, time.perf_counter() - started)

        started = time.perf_counter()
        concurrent = await defer.gatherResults([defer.ensureDeferred(roundtrip(engine)) for _ in range(n)])
        report("concurrent", concurrent, time.perf_counter() - started)
    finally:
        await worker.stopService()
        await engine.stopService()
        await store.stopService()
        await server.stopService()
    ok = p50 <= BUDGET_P50_MS
    print(f"sequential_p50_ms={p50:.2f}")
    print(f"budget: task_roundtrip_sequential_p50_ms <= {BUDGET_P50_MS:g} -> {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="ovsd-bench-tasks-"))
    outcome: dict[str, bool] = {}

    async def run(reactor: Any) -> None:
        try:
            outcome["ok"] = await measure(reactor, directory)
        except Exception as e:
            print(f"task_roundtrip could not run: {e!r}", file=sys.stderr)
            outcome["ok"] = False

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    sys.exit(0 if outcome.get("ok") else 1)


if __name__ == "__main__":
    main()
