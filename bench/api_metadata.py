"""Benchmark of GET /api: a real ovsd node against a bare Klein app serving the same bytes over the same TLS.

    .venv/bin/python bench/api_metadata.py        (from the repo root; BENCH_DURATION=10 by default)

Prints each wrk report, then

    ovsd_req_s=…
    bare_req_s=…
    api_metadata_ratio=…          (ovsd ÷ bare, 3 decimals)
    budget: api_metadata_ratio >= 0.5 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPSConnection
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import TwistdNode, free_port  # noqa: E402

BUDGET = 0.5
WARMUP_SECONDS = 2
THREADS = 2
CONNECTIONS = 20
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
SOCKET_ERRORS = re.compile(r"^\s*Socket errors:.*$", re.MULTILINE)


class BenchError(Exception):
    """The benchmark could not produce a meaningful figure."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def duration() -> int:
    raw = os.environ.get("BENCH_DURATION", "10").strip().removesuffix("s")
    try:
        seconds = int(raw)
    except ValueError:
        raise BenchError(f"BENCH_DURATION must be a whole number of seconds, not {raw!r}") from None
    if seconds < 1:
        raise BenchError("BENCH_DURATION must be at least 1 second")
    return seconds


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        print("wrk not found: installing the Debian package", flush=True)
        subprocess.run("apt-get update -qq && apt-get install -y -qq wrk", shell=True, check=True)  # noqa: S602
        found = shutil.which("wrk")
        if found:
            return found
    print("wrk is not installed: run `sudo apt-get install wrk` (Debian/Ubuntu), then retry", file=sys.stderr)
    raise SystemExit(1)


def get_api(port: int, context: ssl.SSLContext, timeout: float = 5.0) -> Answer:
    conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
    try:
        conn.request("GET", "/api")
        response = conn.getresponse()
        body = response.read()
        return Answer(response.status, response.getheader("Content-Type") or "", body)
    finally:
        conn.close()


def wait_answer(port: int, context: ssl.SSLContext, alive: Callable[[], str | None]) -> Answer:
    """Poll GET /api until it answers 200; alive() returns why the server is gone, or None."""
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        dead = alive()
        if dead is not None:
            raise BenchError(dead)
        try:
            answer = get_api(port, context)
            if answer.status == 200:
                return answer
            last = BenchError(f"GET /api answered {answer.status}")
        except (OSError, ssl.SSLError) as e:
            last = e
        time.sleep(0.1)
    raise BenchError(f"no 200 on https://127.0.0.1:{port}/api within {READY_TIMEOUT:.0f}s (last: {last})")


def wait_file(path: Path, alive: Callable[[], str | None]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not path.exists():
        dead = alive()
        if dead is not None:
            raise BenchError(dead)
        if time.monotonic() > deadline:
            raise BenchError(f"{path} not created within {READY_TIMEOUT:.0f}s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def run_wrk(wrk: str, port: int, seconds: int) -> str:
    url = f"https://127.0.0.1:{port}/api"
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def requests_per_sec(report: str) -> float:
    match = REQUESTS_PER_SEC.search(report)
    if match is None:
        raise BenchError(f"no Requests/sec in the wrk report:\n{report}")
    non_2xx = NON_2XX.search(report)
    if non_2xx is not None and int(non_2xx.group(1)) > 0:
        raise BenchError(f"{non_2xx.group(1)} non-2xx answers: the figure would not measure GET /api")
    errors = SOCKET_ERRORS.search(report)
    if errors is not None:
        print(f"warning: {errors.group(0).strip()}", flush=True)
    return float(match.group(1))


def measure(wrk: str, name: str, port: int, seconds: int) -> float:
    run_wrk(wrk, port, WARMUP_SECONDS)
    report = run_wrk(wrk, port, seconds)
    print(f"== {name}: wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency https://127.0.0.1:{port}/api")
    print(report.rstrip(), flush=True)
    return requests_per_sec(report)


def start_bare(
    workdir: Path, tls_dir: Path, answer: Answer, context: ssl.SSLContext,
) -> tuple[subprocess.Popen[bytes], int]:
    body_file = workdir / "api-body"
    body_file.write_bytes(answer.body)
    port = free_port()
    log_path = workdir / "bare_klein.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "bare_klein.py"), "--tls-dir", str(tls_dir),
             "--port", str(port), "--body-file", str(body_file), "--content-type", answer.content_type],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )

    def alive() -> str | None:
        if process.poll() is None:
            return None
        return f"bare_klein exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"

    try:
        bare = wait_answer(port, context, alive)
        if (bare.body, bare.content_type) != (answer.body, answer.content_type):
            raise BenchError(f"bare_klein answers {bare.content_type!r} {bare.body!r}, "
                             f"ovsd {answer.content_type!r} {answer.body!r}")
    except BaseException:
        stop_process(process)
        raise
    return process, port


def run(workdir: Path) -> int:
    seconds = duration()
    wrk = ensure_wrk()
    node = TwistdNode(workdir / "ovsd", extra={"log": {"level": "warn"}})
    bare: subprocess.Popen[bytes] | None = None
    try:
        node.start()

        def node_alive() -> str | None:
            if node.process is None or node.process.poll() is None:
                return None
            return f"ovsd exited with {node.process.returncode}:\n{node.log_text()}"

        # the node creates its CA on first start: trust exactly that CA, once it exists
        wait_file(node.data_dir / "tls" / "ca.pem", node_alive)
        context = node.ssl_context()
        answer = wait_answer(node.port, context, node_alive)
        text = answer.body.decode(errors="replace")
        print(f"ovsd GET /api: {answer.content_type}, {len(answer.body)} bytes: {text}", flush=True)
        bare, bare_port = start_bare(workdir, node.data_dir / "tls", answer, context)

        ovsd_rps = measure(wrk, "ovsd", node.port, seconds)
        bare_rps = measure(wrk, "bare klein", bare_port, seconds)
        if bare_rps <= 0:
            raise BenchError("the bare Klein baseline served nothing")
        ratio = ovsd_rps / bare_rps
        # the figures are rounded before the comparison, so the printed ratio and the verdict agree
        verdict = "PASS" if round(ratio, 3) >= BUDGET else "FAIL"
        print(f"ovsd_req_s={ovsd_rps:.3f}")
        print(f"bare_req_s={bare_rps:.3f}")
        print(f"api_metadata_ratio={ratio:.3f}")
        print(f"budget: api_metadata_ratio >= {BUDGET} -> {verdict}", flush=True)
        return 0 if verdict == "PASS" else 1
    finally:
        if bare is not None:
            stop_process(bare)
        if node.process is not None:
            stop_process(node.process)


def terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop both servers


def main() -> int:
    signal.signal(signal.SIGTERM, terminated)
    with tempfile.TemporaryDirectory(prefix="ovsd-bench-") as tmp:
        try:
            return run(Path(tmp))
        except BenchError as e:
            print(f"api_metadata: {e}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
