"""Benchmark of GET /api: a real ovsd node against a bare Klein app serving the same bytes over the same TLS.

    .venv/bin/python bench/api_metadata.py        (from the repo root; BENCH_DURATION=10, BENCH_ROUNDS=3)

Prints each round's figures and the wrk report of each server's best round, then

    ovsd_req_s=…
    bare_req_s=…
    api_metadata_ratio=…          (ovsd ÷ bare, 3 decimals)
    budget: api_metadata_ratio >= 0.5 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import (
    BenchError,
    bench_main,
    running_node,
    stop_process,
    verdict,
    wait_answer,
)
from throughput import compare, duration, ensure_wrk, start_bare

BUDGET = 0.5


def run(workdir: Path) -> int:
    seconds = duration()
    wrk = ensure_wrk()
    bare: subprocess.Popen[bytes] | None = None
    with running_node(workdir) as node:
        try:
            answer = wait_answer(node.port, node.context, node.alive)
            text = answer.body.decode(errors="replace")
            print(f"ovsd GET /api: {answer.content_type}, {len(answer.body)} bytes: {text}", flush=True)
            bare, bare_port = start_bare(workdir, node, answer)

            figures = compare(wrk, {"ovsd": node.port, "bare klein": bare_port}, seconds)
            ovsd_rps, bare_rps = figures["ovsd"], figures["bare klein"]
            if bare_rps <= 0:
                raise BenchError("the bare Klein baseline served nothing")
            ratio = ovsd_rps / bare_rps
            print(f"ovsd_req_s={ovsd_rps:.3f}")
            print(f"bare_req_s={bare_rps:.3f}")
            print(f"api_metadata_ratio={ratio:.3f}")
            return 0 if verdict("api_metadata_ratio", ratio, ">=", BUDGET) else 1
        finally:
            if bare is not None:
                stop_process(bare)


if __name__ == "__main__":
    sys.exit(bench_main("api_metadata", run))
