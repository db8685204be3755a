"""Throughput against the bare Klein baseline: wrk runs of ovsd and of bench/bare_klein.py, in rounds.

Not a benchmark itself: ``api_metadata`` and ``api_object`` build on it (with ``common`` for the node).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from common import REPO, Answer, BenchError, Node, stop_process, wait_answer

from devnode import free_port

WARMUP_SECONDS = 2
THREADS = 2
CONNECTIONS = 20
REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
SOCKET_ERRORS = re.compile(r"^\s*Socket errors:.*$", re.MULTILINE)


# --- settings and tools --------------------------------------------------------------------------------------
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


# --- the bare Klein baseline and wrk ---------------------------------------------------------------------------
def start_bare(workdir: Path, node: Node, answer: Answer, path: str = "/api",
               headers: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """bench/bare_klein.py serving answer's bytes at path over the node's TLS; checked byte for byte."""
    body_file = workdir / "bare-body"
    body_file.write_bytes(answer.body)
    port = free_port()
    log_path = workdir / "bare_klein.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "bare_klein.py"), "--tls-dir", str(node.twistd.data_dir / "tls"),
             "--port", str(port), "--path", path, "--body-file", str(body_file),
             "--content-type", answer.content_type],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
        )

    def alive() -> str | None:
        if process.poll() is None:
            return None
        return f"bare_klein exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"

    try:
        bare = wait_answer(port, node.context, alive, path, headers)
        if (bare.body, bare.content_type) != (answer.body, answer.content_type):
            raise BenchError(f"bare_klein answers {bare.content_type!r} {bare.body!r}, "
                             f"ovsd {answer.content_type!r} {answer.body!r}")
    except BaseException:
        stop_process(process)
        raise
    return process, port


def wrk_command(wrk: str, port: int, seconds: int, path: str, headers: Mapping[str, str] | None) -> list[str]:
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    return [*cmd, f"https://127.0.0.1:{port}{path}"]


def run_wrk(wrk: str, port: int, seconds: int, path: str = "/api",
            headers: Mapping[str, str] | None = None) -> str:
    cmd = wrk_command(wrk, port, seconds, path, headers)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def requests_per_sec(report: str, path: str = "/api") -> float:
    match = REQUESTS_PER_SEC.search(report)
    if match is None:
        raise BenchError(f"no Requests/sec in the wrk report:\n{report}")
    non_2xx = NON_2XX.search(report)
    if non_2xx is not None and int(non_2xx.group(1)) > 0:
        raise BenchError(f"{non_2xx.group(1)} non-2xx answers: the figure would not measure GET {path}")
    errors = SOCKET_ERRORS.search(report)
    if errors is not None:
        print(f"warning: {errors.group(0).strip()}", flush=True)
    return float(match.group(1))


def rounds() -> int:
    raw = os.environ.get("BENCH_ROUNDS", "3").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"BENCH_ROUNDS must be a positive whole number, not {raw!r}")
    return int(raw)


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def compare(wrk: str, servers: Mapping[str, int], seconds: int, path: str = "/api",
            headers: Mapping[str, str] | None = None) -> dict[str, float]:
    """The best requests/s of GET path on each server (name -> port) over BENCH_ROUNDS rounds.

    Each round measures every server in turn, so a burst of load from elsewhere on a shared machine falls on
    both sides of the ratio rather than on one; each server gets a warm-up run before its first round. The
    wrk report of each server's best run is printed.
    """
    count = rounds()
    best: dict[str, tuple[float, str]] = {}
    print(f"{count} round(s) of {seconds}s per server; {load_average()}", flush=True)
    for n in range(1, count + 1):
        for name, port in servers.items():
            if n == 1:
                run_wrk(wrk, port, WARMUP_SECONDS, path, headers)
            report = run_wrk(wrk, port, seconds, path, headers)
            rps = requests_per_sec(report, path)
            print(f"round {n}: {name}: {rps:.1f} req/s", flush=True)
            if name not in best or rps > best[name][0]:
                best[name] = (rps, report)
    for name, (_, report) in best.items():
        shown = f"https://127.0.0.1:{servers[name]}{path}" + "".join(f" -H '{k}: …'" for k in (headers or {}))
        print(f"== {name} (best round): wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency {shown}")
        print(report.rstrip(), flush=True)
    print(load_average(), flush=True)
    return {name: rps for name, (rps, _) in best.items()}
