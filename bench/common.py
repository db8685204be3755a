"""What the benchmarks share: a real node, its admin token, seeding its store, latency percentiles, RSS.

Not a benchmark itself (``bench/run.sh`` does not run it); ``throughput.py`` adds the wrk comparison with
the bare Klein baseline. A benchmark builds on these pieces:

- ``running_node(workdir)``: a real ``twistd -n ovsd`` (``devnode.TwistdNode``) answering ``GET /api``,
  stopped on the way out;
- ``password_token(node)``: a bearer token of the admin (password grant);
- ``seed(node, build)``: runs ``build(repository)`` against the node's own store with a Repository on its
  own Store connection (the reactor runs once, so a benchmark seeds once, before it measures);
- ``Client`` + ``latencies``: sequential requests over one persistent HTTPS connection;
- ``rss_kb``, ``percentile``, ``verdict``, ``bench_main``.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPSConnection
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devnode import ADMIN_PASSWORD, TwistdNode  # noqa: E402

if TYPE_CHECKING:
    from ovsd.dal.repository import Repository

T = TypeVar("T")

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

Alive = Callable[[], "str | None"]


class BenchError(Exception):
    """The benchmark could not produce a meaningful figure."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


# --- HTTPS ----------------------------------------------------------------------------------------------------
def https_get(port: int, context: ssl.SSLContext, path: str = "/api", headers: Mapping[str, str] | None = None,
              timeout: float = 5.0) -> Answer:
    """One GET on a fresh connection."""
    conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, response.getheader("Content-Type") or "", body)
    finally:
        conn.close()


def wait_answer(port: int, context: ssl.SSLContext, alive: Alive, path: str = "/api",
                headers: Mapping[str, str] | None = None) -> Answer:
    """Poll GET path until it answers 200; alive() returns why the server is gone, or None."""
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        dead = alive()
        if dead is not None:
            raise BenchError(dead)
        try:
            answer = https_get(port, context, path, headers)
            if answer.status == 200:
                return answer
            last = BenchError(f"GET {path} answered {answer.status}: {answer.body[:300]!r}")
        except (OSError, ssl.SSLError) as e:
            last = e
        time.sleep(0.1)
    raise BenchError(f"no 200 on https://127.0.0.1:{port}{path} within {READY_TIMEOUT:.0f}s (last: {last})")


def wait_file(path: Path, alive: Alive) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not path.exists():
        dead = alive()
        if dead is not None:
            raise BenchError(dead)
        if time.monotonic() > deadline:
            raise BenchError(f"{path} not created within {READY_TIMEOUT:.0f}s")
        time.sleep(0.1)


class Client:
    """One persistent HTTPS connection for sequential requests (what a latency figure should measure)."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = 30.0) -> None:
        self.conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)

    def get(self, path: str, headers: Mapping[str, str]) -> tuple[Answer, float]:
        """The answer and the seconds from sending the request to the last byte of the body."""
        started = time.perf_counter()
        self.conn.request("GET", path, headers=dict(headers))
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        return Answer(response.status, response.getheader("Content-Type") or "", body), elapsed

    def close(self) -> None:
        self.conn.close()


def latencies(client: Client, path: str, headers: Mapping[str, str], warmup: int, count: int) -> tuple[
        Answer, list[float]]:
    """The last answer and count latencies (seconds) of GET path, after warmup unmeasured requests."""
    answer: Answer | None = None
    measured: list[float] = []
    for n in range(warmup + count):
        answer, seconds = client.get(path, headers)
        if answer.status != 200:
            raise BenchError(f"GET {path} answered {answer.status}: {answer.body[:300]!r}")
        if n >= warmup:
            measured.append(seconds)
    assert answer is not None
    return answer, measured


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- processes ------------------------------------------------------------------------------------------------
def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def rss_kb(pid: int) -> int:
    """Resident memory of a process (VmRSS, kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


@dataclass
class Node:
    """A running node, with the TLS context that trusts its CA."""

    twistd: TwistdNode
    context: ssl.SSLContext

    @property
    def port(self) -> int:
        return self.twistd.port

    @property
    def pid(self) -> int:
        assert self.twistd.process is not None
        return self.twistd.process.pid

    def alive(self) -> str | None:
        process = self.twistd.process
        if process is None or process.poll() is None:
            return None
        return f"ovsd exited with {process.returncode}:\n{self.twistd.log_text()}"


@contextmanager
def running_node(workdir: Path) -> Iterator[Node]:
    """A real node (log level warn: no access log, as in production) answering GET /api; stopped after."""
    twistd = TwistdNode(workdir / "ovsd", extra={"log": {"level": "warn"}})
    try:
        twistd.start()

        def alive() -> str | None:
            if twistd.process is None or twistd.process.poll() is None:
                return None
            return f"ovsd exited with {twistd.process.returncode}:\n{twistd.log_text()}"

        # the node creates its CA on first start: trust exactly that CA, once it exists
        wait_file(twistd.data_dir / "tls" / "ca.pem", alive)
        node = Node(twistd, twistd.ssl_context())
        wait_answer(node.port, node.context, node.alive)
        yield node
    finally:
        if twistd.process is not None:
            stop_process(twistd.process)


def password_token(node: Node, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """A bearer token through POST /api/oauth2/token/ (password grant)."""
    return token_at(node.port, node.context, username, password)


def token_at(port: int, context: ssl.SSLContext, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """A bearer token from the node on 127.0.0.1:port (password grant, as the GUI logs in)."""
    conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        form = urlencode({"grant_type": "password", "username": username, "password": password})
        conn.request("POST", "/api/oauth2/token/", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"the token endpoint answered {response.status}: {body!r}")
    return str(json.loads(body)["access_token"])


def api_headers(token: str, version: int | str = 1) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": f"application/json; version={version}"}


# --- seeding the node's store ---------------------------------------------------------------------------------
def seed(node: Node, build: Callable[[Repository], Coroutine[Any, Any, T]]) -> T:
    """Run build(repository) against the node's store (the repository's own connection), then disconnect.

It first waits for the node's bootstrap (the admin user), so ``password_token`` works right after.

    The reactor runs here once: a benchmark seeds once, before it measures with blocking clients.
    """
    from twisted.internet import defer, task
    from twisted.internet import reactor as _reactor

    from ovsd.config import load
    from ovsd.dal.repository import Repository
    from ovsd.store.connection import Store

    reactor: Any = _reactor
    config = load(node.twistd.config_path, environ={})
    outcome: list[Any] = []

    async def run() -> T:
        store = Store(config.store.url, config.store_dir, reactor)
        store.startService()
        try:
            await store.wait_until_available(interval=0.05)
            repo = Repository(store, clock=reactor.seconds, reactor=reactor, thresholds=config.agent)
            # GET /api answers before the node's first-start bootstrap is done: wait for its admin user,
            # so a token can be asked for right after (a refused password grant counts towards a lockout)
            deadline = reactor.seconds() + READY_TIMEOUT
            while await repo.find("user", "username", "admin") is None:
                if reactor.seconds() > deadline:
                    raise BenchError(f"the node did not bootstrap its admin user within {READY_TIMEOUT:.0f}s")
                await task.deferLater(reactor, 0.05, lambda: None)
            return await build(repo)
        finally:
            await store.stopService()

    def done(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addBoth(done))
    reactor.run(installSignalHandlers=False)
    if not outcome:
        raise BenchError("seeding did not finish")
    result = outcome[0]
    if hasattr(result, "raiseException"):  # a Failure
        raise BenchError(f"seeding failed: {result.getTraceback()}")
    return result  # type: ignore[no-any-return]


async def create_many(repo: Repository, kind: str, values: list[dict[str, Any]], batch: int = 500) -> list[str]:
    """Create objects concurrently, batch by batch (the store's connection pool pipelines them)."""
    from twisted.internet import defer

    guids: list[str] = []
    for start in range(0, len(values), batch):
        created = await defer.gatherResults(
            [defer.ensureDeferred(repo.create(kind, v)) for v in values[start:start + batch]], consumeErrors=True,
        )
        guids.extend(o.guid for o in created)
    return guids


# --- verdicts and the main ------------------------------------------------------------------------------------
def verdict(figure: str, value: float, op: str, budget: float, digits: int = 3) -> bool:
    """Print ``budget: <figure> <op> <budget> -> PASS|FAIL`` and return the pass.

    The comparison is on the value rounded as printed (``digits``), so a printed figure and its verdict agree.
    """
    shown = round(value, digits)
    ok = shown >= budget if op == ">=" else shown <= budget
    print(f"budget: {figure} {op} {budget:g} -> {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def bench_main(name: str, run: Callable[[Path], int]) -> int:
    """Run one benchmark in a temporary directory; 1 on any BenchError (no meaningful figure)."""
    signal.signal(signal.SIGTERM, _terminated)
    with tempfile.TemporaryDirectory(prefix=f"ovsd-bench-{name}-") as tmp:
        try:
            return run(Path(tmp))
        except BenchError as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1
