"""Benchmark of fetching one object: GET /api/storagerouters/<guid>/ with a bearer token, against bare Klein.

    .venv/bin/python bench/api_object.py          (from the repo root; BENCH_DURATION=10 by default)

A real node, an admin token (password grant), and a StorageRouter (with its pMachine, a vPool and a
StorageDriver, so its relations and dynamics have something to say) created through the repository in the
node's store. Each call is authenticated, routed, negotiated (``Accept: application/json; version=1``),
loaded and serialized; the baseline serves the very bytes ovsd answered over the same TLS. Prints each wrk
report, then

    ovsd_req_s=…
    bare_req_s=…
    api_object_ratio=…            (ovsd ÷ bare, 3 decimals)
    budget: api_object_ratio >= 0.5 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import (
    BenchError,
    api_headers,
    bench_main,
    password_token,
    running_node,
    seed,
    stop_process,
    verdict,
    wait_answer,
)
from throughput import compare, duration, ensure_wrk, start_bare

from ovsd.dal.repository import Repository

BUDGET = 0.5


async def storagerouter(repo: Repository) -> str:
    """A StorageRouter as the agent would register it, serving one vPool; returns its guid."""
    pmachine = await repo.create("pmachine", {"name": "bench-host", "ip": "127.0.0.1", "hvtype": "KVM"})
    router = await repo.create("storagerouter", {
        "name": "bench-node", "machine_id": "bench-machine", "ip": "127.0.0.1", "pmachine_guid": pmachine.guid,
    })
    vpool = await repo.create("vpool", {"name": "bench-pool", "type": "LOCAL"})
    await repo.create("storagedriver", {
        "name": "bench-pool-sd", "storagedriver_id": "bench-pool-sd", "vpool_guid": vpool.guid,
        "storagerouter_guid": router.guid, "mountpoint": "/mnt/bench-pool",
    })
    return router.guid


def run(workdir: Path) -> int:
    seconds = duration()
    wrk = ensure_wrk()
    bare: subprocess.Popen[bytes] | None = None
    with running_node(workdir) as node:
        try:
            guid = seed(node, storagerouter)
            headers = api_headers(password_token(node), 1)
            path = f"/api/storagerouters/{guid}/"
            answer = wait_answer(node.port, node.context, node.alive, path, headers)
            print(f"ovsd GET {path}: {answer.content_type}, {len(answer.body)} bytes: "
                  f"{answer.body.decode(errors='replace')}", flush=True)
            bare, bare_port = start_bare(workdir, node, answer, path, headers)

            figures = compare(wrk, {"ovsd": node.port, "bare klein": bare_port}, seconds, path, headers)
            ovsd_rps, bare_rps = figures["ovsd"], figures["bare klein"]
            if bare_rps <= 0:
                raise BenchError("the bare Klein baseline served nothing")
            ratio = ovsd_rps / bare_rps
            print(f"ovsd_req_s={ovsd_rps:.3f}")
            print(f"bare_req_s={bare_rps:.3f}")
            print(f"api_object_ratio={ratio:.3f}")
            return 0 if verdict("api_object_ratio", ratio, ">=", BUDGET) else 1
        finally:
            if bare is not None:
                stop_process(bare)


if __name__ == "__main__":
    sys.exit(bench_main("api_object", run))
