"""Benchmark of a task's round trip through the API: start a no-op task, its worker runs it, the caller gets
its result from ``GET /api/tasks/<id>/get/``.

    .venv/bin/python bench/task_roundtrip.py            (from the repo root; BENCH_TASKS=1000 by default)
    .venv/bin/python bench/task_roundtrip.py --direct   (in-process: TaskEngine.enqueue + wait, no HTTP)

Default (HTTPS): a node process (this file with ``--serve``) that is the daemon's own service tree
(``ovsd.service.makeService``: embedded Valkey, API, task engine, worker with concurrency 4, bus, agent)
plus one declared task, ``bench.noop``, and one action that starts it, ``POST /api/bench/noop/`` → task id
(the shape of every action of the API). Ready when it sends systemd's READY=1. With an admin token
(password grant), one round trip is

    POST /api/bench/noop/                    -> "<task id>"   (authenticated, routed, enqueued)
    GET  /api/tasks/<id>/get/?timeout=30     -> null          (waits on the completion stream, no polling)

sequential: 1,000 in a row on one persistent connection (http.client); concurrent: 1,000 at once, one
connection each (asyncio, connections opened before the clock starts). Prints

    sequential: n=… p50_ms=… p99_ms=… tasks_s=…   (+ the split: enqueue_p50_ms, get_p50_ms)
    concurrent: n=… p50_ms=… p99_ms=… tasks_s=…
    budget: task_roundtrip_sequential_p50_ms <= 5 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error. ``BENCH_WORKER_CONCURRENCY`` (default 4, the daemon's) sets
the worker's concurrency; ``BENCH_PROFILE=<file>`` writes a cProfile of the node process there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
from http.client import HTTPSConnection
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from aio_https import Connection, open_all  # noqa: E402
from common import BenchError, api_headers, percentile, verdict  # noqa: E402
from ready_node import python_node  # noqa: E402

from devnode import node_sections, write_config  # noqa: E402

BUDGET_P50_MS = 5.0
WARMUP = 50
NOOP = "/api/bench/noop/"


def count() -> int:
    return int(os.environ.get("BENCH_TASKS", "1000"))


def worker_concurrency() -> int:
    return int(os.environ.get("BENCH_WORKER_CONCURRENCY", "4"))  # the daemon's default


def report(label: str, latencies: list[float], elapsed: float, extra: str = "") -> float:
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    print(f"{label}: n={len(latencies)} p50_ms={p50:.2f} p99_ms={p99:.2f} "
          f"tasks_s={len(latencies) / elapsed:.0f}{extra}", flush=True)
    return p50


# --- the node process ---------------------------------------------------------------------------------------
def serve(config_path: Path) -> int:
    """The daemon's service tree, plus the no-op task and the action that starts it."""
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from ovsd.api.call import Call
    from ovsd.api.declare import RW, endpoint
    from ovsd.config import load
    from ovsd.service import makeService
    from ovsd.tasks import Route, TaskContext, task

    @task(name="bench.noop", route=Route.THIS_NODE, idempotent=True)
    async def noop(ctx: TaskContext) -> None:
        return None

    # declared before makeService builds the API, as a view module declares its endpoints on import
    @endpoint(path=NOOP, method="POST", roles=RW, returns="task")
    async def start_noop(call: Call) -> Any:
        """Start a task that does nothing (the benchmark's action)."""
        assert call.context.tasks is not None
        return await call.context.tasks.enqueue("bench.noop")

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    service = makeService(load(config_path, environ={}), reactor)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    profile = os.environ.get("BENCH_PROFILE")
    if not profile:
        reactor.run()
        return 0
    import cProfile

    profiler = cProfile.Profile()
    profiler.runcall(reactor.run)
    profiler.dump_stats(profile)
    return 0


# --- the clients --------------------------------------------------------------------------------------------
class Sequential:
    """Round trips one after the other on one persistent connection."""

    def __init__(self, port: int, context: ssl.SSLContext, headers: dict[str, str]) -> None:
        self.conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
        self.headers = headers

    def call(self, method: str, path: str) -> Any:
        self.conn.request(method, path, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise BenchError(f"{method} {path} answered {response.status}: {raw[:300]!r}")
        return json.loads(raw)

    def roundtrip(self) -> tuple[float, float]:
        """(seconds to get the task id, seconds from there to its result)."""
        started = time.perf_counter()
        task_id = self.call("POST", NOOP)
        queued = time.perf_counter()
        result = self.call("GET", f"/api/tasks/{task_id}/get/?timeout=30")
        if result is not None:
            raise BenchError(f"the no-op task answered {result!r}")
        return queued - started, time.perf_counter() - queued

    def close(self) -> None:
        self.conn.close()


async def concurrent(port: int, context: ssl.SSLContext, headers: dict[str, str], n: int) -> tuple[
        list[float], float]:
    connections = [Connection("127.0.0.1", port, context, headers) for _ in range(n)]
    await open_all(connections)

    async def roundtrip(conn: Connection) -> float:
        started = time.perf_counter()
        task_id = await conn.request("POST", NOOP)
        if await conn.request("GET", f"/api/tasks/{task_id}/get/?timeout=60") is not None:
            raise BenchError("the no-op task answered something")
        return time.perf_counter() - started

    try:
        started = time.perf_counter()
        latencies = await asyncio.gather(*(roundtrip(c) for c in connections))
        return list(latencies), time.perf_counter() - started
    finally:
        for c in connections:
            c.close()


def run_https(workdir: Path) -> bool:
    node = python_node(workdir, Path(__file__), "--serve", worker={"concurrency": worker_concurrency()})
    try:
        context = node.start()
        headers = api_headers(node.admin_token(), 1)
        n = count()
        print(f"https: POST {NOOP} + GET /api/tasks/<id>/get/ on a node process (makeService; worker "
              f"concurrency {worker_concurrency()}; embedded Valkey)", flush=True)
        client = Sequential(node.port, context, headers)
        try:
            for _ in range(WARMUP):
                client.roundtrip()
            cpu = node.cpu_seconds()
            started = time.perf_counter()
            splits = [client.roundtrip() for _ in range(n)]
            elapsed = time.perf_counter() - started
            cpu = node.cpu_seconds() - cpu
        finally:
            client.close()
        enqueue = percentile([s[0] for s in splits], 0.5) * 1000
        wait = percentile([s[1] for s in splits], 0.5) * 1000
        p50 = report("sequential", [a + b for a, b in splits], elapsed,
                     f" (enqueue_p50_ms={enqueue:.2f} get_p50_ms={wait:.2f}; "
                     f"node_cpu_ms_per_task={cpu * 1000 / n:.2f})")
        cpu = node.cpu_seconds()
        latencies, elapsed = asyncio.run(concurrent(node.port, context, headers, n))
        cpu = node.cpu_seconds() - cpu  # includes the connections' handshakes, made before the clock ran
        report("concurrent", latencies, elapsed, f" (node_cpu_ms_per_task={cpu * 1000 / n:.2f}, handshake included)")
    finally:
        node.stop()
    print(f"sequential_p50_ms={p50:.2f}")
    return verdict("task_roundtrip_sequential_p50_ms", p50, "<=", BUDGET_P50_MS, digits=2)


# --- in-process, no HTTP: what the engine alone costs -------------------------------------------------------
def run_direct(workdir: Path) -> bool:
    from twisted.internet import defer
    from twisted.python.failure import Failure

    from ovsd.config import load
    from ovsd.service import build_node
    from ovsd.store.connection import Store
    from ovsd.store.embedded import EmbeddedStoreServer
    from ovsd.tasks import Route, TaskContext, TaskRegistry

    outcome: dict[str, bool] = {}

    async def measure(reactor: Any) -> None:
        config = load(write_config(workdir / "ovsd.toml", node_sections(workdir / "node", 0)), environ={})
        server = EmbeddedStoreServer(workdir / "store", reactor)
        server.startService()
        store = Store("embedded", workdir / "store", reactor)
        store.startService()
        registry = TaskRegistry()

        @registry.task(name="bench.noop", route=Route.THIS_NODE, idempotent=True)
        async def noop(ctx: TaskContext) -> None:
            return None

        # a node's own engine and worker, nothing else of it; the worker publishes no TASK_COMPLETE message,
        # so the figure stays what it always measured: the engine and the worker alone
        node = build_node(config, reactor, store=store, registry=registry, worker_options={"on_complete": None})
        engine, worker = node.engine, node.worker

        async def roundtrip() -> float:
            started = time.perf_counter()
            record = await engine.wait(await engine.enqueue("bench.noop"), 30)
            if record is None or record["status"] != "SUCCESS":
                raise BenchError(f"the no-op task did not succeed: {record}")
            return time.perf_counter() - started

        try:
            await store.wait_until_available(interval=0.05)
            engine.startService()
            worker.startService()
            for _ in range(WARMUP):
                await roundtrip()
            n = count()
            print("direct: TaskEngine.enqueue -> worker -> TaskEngine.wait, in one process, no HTTP", flush=True)
            started = time.perf_counter()
            sequential = [await roundtrip() for _ in range(n)]
            p50 = report("sequential", sequential, time.perf_counter() - started)
            started = time.perf_counter()
            together = await defer.gatherResults([defer.ensureDeferred(roundtrip()) for _ in range(n)])
            report("concurrent", together, time.perf_counter() - started)
            print(f"sequential_p50_ms={p50:.2f}")
            outcome["ok"] = verdict("task_roundtrip_sequential_p50_ms", p50, "<=", BUDGET_P50_MS, digits=2)
        finally:
            await worker.stopService()
            await engine.stopService()
            await store.stopService()
            await server.stopService()

    from twisted.internet import reactor

    def done(result: Any) -> None:
        if isinstance(result, Failure):
            print(f"task_roundtrip: {result.getErrorMessage()}", file=sys.stderr)
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(measure(reactor)).addBoth(done))
    reactor.run()
    return outcome.get("ok", False)


def terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the node


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--direct", action="store_true", help="in-process engine and worker, no HTTP")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve)
    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="ovsd-bench-tasks-"))
    try:
        ok = run_direct(workdir) if args.direct else run_https(workdir)
    except BenchError as e:
        print(f"task_roundtrip: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
