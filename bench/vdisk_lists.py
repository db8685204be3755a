"""Benchmark of the vDisk lists with 10,000 vDisks in the store: latency percentiles and the daemon's memory.

    .venv/bin/python bench/vdisk_lists.py         (from the repo root; BENCH_VDISKS=10000, BENCH_REPEAT=20)

A real node and an admin token (password grant); a StorageRouter with its pMachine, 4 vPools with their
StorageDrivers, 100 vMachines and the vDisks (most attached to a vMachine, some clones of another vDisk)
are created through the repository in the node's store, concurrently. Then, one after the other over one
persistent HTTPS connection (``Accept: application/json; version=1``), each list is asked 3 times to warm
up and BENCH_REPEAT times measured (request sent to last byte read):

    GET /api/vdisks/                                   every GUID
    GET /api/vdisks/?contents=_relations&sort=name     every vDisk with its relations, by name
    GET /api/vdisks/?sort=-name&page=500               10 GUIDs, by name descending

The answers are checked (counts, order, the page is the right slice). Prints one line per list, then

    vdisks_guids_p50_ms=…
    vdisks_relations_by_name_p50_ms=…
    vdisks_by_name_desc_page_p50_ms=…
    daemon_rss_mb=…                  (VmRSS of the twistd process after the run)
    budget: <figure> <= <budget> -> PASS|FAIL     (one line per figure)

and exits 0 when every figure is within its budget, 1 on a FAIL or on any error.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Client,
    api_headers,
    bench_main,
    create_many,
    latencies,
    password_token,
    percentile,
    rss_kb,
    running_node,
    seed,
    verdict,
)

from ovsd.dal.query import natural_key
from ovsd.dal.repository import Repository

WARMUP = 3
VMACHINES = 100
VPOOLS = 4
BUDGET_RSS_MB = 250.0
GUIDS = "/api/vdisks/"
RELATIONS_BY_NAME = "/api/vdisks/?contents=_relations&sort=name"
PAGE = 500
BY_NAME_DESC_PAGE = f"/api/vdisks/?sort=-name&page={PAGE}"
#: (figure, path, budget in ms)
LISTS = (
    ("vdisks_guids_p50_ms", GUIDS, 50.0),
    ("vdisks_relations_by_name_p50_ms", RELATIONS_BY_NAME, 400.0),
    ("vdisks_by_name_desc_page_p50_ms", BY_NAME_DESC_PAGE, 300.0),
)


def setting(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise BenchError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


def vdisk_values(count: int, vpools: list[str], vmachines: list[str]) -> list[dict[str, Any]]:
    """The vDisks: 4 in 5 attached to a vMachine (named after it), the others loose volumes."""
    values = []
    for i in range(count):
        vm = i % len(vmachines)
        attached = i % 5 != 4
        values.append({
            "name": f"vm{vm}-disk{i // len(vmachines)}" if attached else f"volume{i}",
            "size": (1 + i % 64) * 1024 ** 3,
            "devicename": f"/vdisk-{i}.raw",
            "volume_id": f"volume-{i:06d}",
            "order": i // len(vmachines),
            "vpool_guid": vpools[i % len(vpools)],
            "vmachine_guid": vmachines[vm] if attached else None,
        })
    return values


async def cluster(repo: Repository, count: int) -> None:
    """A StorageRouter serving VPOOLS vPools, VMACHINES vMachines and count vDisks (1 in 100 a clone)."""
    started = time.monotonic()
    pmachine = await repo.create("pmachine", {"name": "bench-host", "ip": "127.0.0.1", "hvtype": "KVM"})
    router = await repo.create("storagerouter", {
        "name": "bench-node", "machine_id": "bench-machine", "ip": "127.0.0.1", "pmachine_guid": pmachine.guid,
    })
    vpools = await create_many(repo, "vpool", [{"name": f"pool{n}", "type": "LOCAL"} for n in range(VPOOLS)])
    await create_many(repo, "storagedriver", [
        {"name": f"pool{n}-sd", "storagedriver_id": f"pool{n}-sd", "vpool_guid": v, "storagerouter_guid": router.guid}
        for n, v in enumerate(vpools)
    ])
    vmachines = await create_many(repo, "vmachine", [
        {"name": f"vm{n}", "pmachine_guid": pmachine.guid, "vpool_guid": vpools[n % VPOOLS]} for n in range(VMACHINES)
    ])
    values = vdisk_values(count, vpools, vmachines)
    clones = values[-(count // 100):] if count >= 100 else []
    originals = await create_many(repo, "vdisk", values[:len(values) - len(clones)])
    for n, clone in enumerate(clones):
        clone["parent_vdisk_guid"] = originals[n]
    await create_many(repo, "vdisk", clones)
    print(f"seeded {count} vdisks, {VMACHINES} vmachines, {VPOOLS} vpools in {time.monotonic() - started:.1f}s",
          flush=True)


def check(path: str, body: Any, count: int, by_name: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Raise BenchError unless the answer is what the list should be; returns the objects by name."""
    if path == GUIDS:
        if not isinstance(body, list) or len(body) != count or len(set(body)) != count:
            raise BenchError(f"GET {path}: expected {count} distinct GUIDs")
        return by_name
    if path == RELATIONS_BY_NAME:
        if not isinstance(body, list) or len(body) != count:
            raise BenchError(f"GET {path}: expected {count} objects")
        names = [o["name"] for o in body]
        if names != sorted(names, key=natural_key):
            raise BenchError(f"GET {path}: not sorted by name")
        clones = sum(1 for o in body if o.get("child_vdisks_guids"))
        if "vpool_guid" not in body[0] or clones != count // 100:
            raise BenchError(f"GET {path}: relations missing ({clones} vDisks list their clones)")
        return body
    if by_name is not None:
        start = (min(PAGE, -(-count // 10)) - 1) * 10  # a page beyond the last is the last
        expected = [o["guid"] for o in reversed(by_name)][start:start + 10]
        if body != expected:
            raise BenchError(f"GET {path}: not the page {PAGE} of the vDisks by name descending")
    return by_name


def run(workdir: Path) -> int:
    count = setting("BENCH_VDISKS", 10_000)
    repeat = setting("BENCH_REPEAT", 20)
    if count < 10 * PAGE:
        print(f"note: {count} vdisks make fewer than {PAGE} pages; page {PAGE} is the last one", flush=True)
    with running_node(workdir) as node:
        seed(node, lambda repo: cluster(repo, count))
        headers = api_headers(password_token(node), 1)
        client = Client(node.port, node.context)
        figures: list[tuple[str, float, float]] = []
        by_name: list[dict[str, Any]] | None = None
        try:
            for figure, path, budget in LISTS:
                answer, seconds = latencies(client, path, headers, WARMUP, repeat)
                by_name = check(path, json.loads(answer.body), count, by_name)
                ms = [s * 1000 for s in seconds]
                p50 = percentile(ms, 0.5)
                print(f"GET {path}: n={len(ms)} p50_ms={p50:.1f} p90_ms={percentile(ms, 0.9):.1f} "
                      f"max_ms={max(ms):.1f} bytes={len(answer.body)}", flush=True)
                figures.append((figure, p50, budget))
        finally:
            client.close()
        rss_mb = rss_kb(node.pid) / 1024
    ok = True
    for figure, p50, _ in figures:
        print(f"{figure}={p50:.1f}")
    print(f"daemon_rss_mb={rss_mb:.1f}")
    for figure, p50, budget in figures:
        ok = verdict(figure, p50, "<=", budget, digits=1) and ok
    ok = verdict("daemon_rss_mb", rss_mb, "<=", BUDGET_RSS_MB, digits=1) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(bench_main("vdisk_lists", run))
