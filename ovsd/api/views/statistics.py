"""Statistics (contract §9): object model counters, the store's figures, and every node's own figures."""

from __future__ import annotations

import json
from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint
from ovsd.api.views.common import repository
from ovsd.store import keys

_STORE_FIGURES = ("instantaneous_ops_per_sec", "used_memory", "used_memory_human", "connected_clients",
                  "keyspace_hits", "keyspace_misses", "total_commands_processed", "uptime_in_seconds",
                  "redis_version", "valkey_version")
_DAL_COUNTERS = ("object", "list", "dynamic")


def _info(text: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name in _STORE_FIGURES:
            figures[name] = int(value) if value.isdigit() else value.strip()
    return figures


@endpoint(path="/api/statistics/", method="GET", kind="list", roles=R, returns="object")
async def statistics(call: Call) -> Any:
    """Counters of the object model, the store's INFO figures, each node's requests, waits, tasks, uptime."""
    repo = repository(call)
    counters = repo.counters
    dal: dict[str, int] = {}
    for name in _DAL_COUNTERS:
        dal[f"{name}_hit"] = counters[f"{name}_hit"]
        dal[f"{name}_miss"] = counters[f"{name}_miss"]
    store = call.context.store
    info = _info(await store.execute("INFO"))
    routers = await repo.load_all("storagerouter")
    machine_ids = [str(r.data["machine_id"]) for r in routers]
    lives = await store.execute("MGET", *[keys.node_live(m) for m in machine_ids]) if machine_ids else []
    nodes: list[dict[str, Any]] = []
    offline: list[dict[str, Any]] = []
    for router, raw in zip(routers, lives, strict=True):
        if raw is None:
            offline.append({"node": router.data.get("name"), "storagerouter_guid": router.guid,
                            "machine_id": router.data.get("machine_id")})
            continue
        live = json.loads(raw)
        if router.data.get("machine_id") == call.context.config.node.machine_id:
            live = call.context.agent.live_figures()  # this node's own figures are known now, not as of its last beat
        nodes.append({
            "node": live.get("node"), "storagerouter_guid": router.guid, "requests": live.get("requests", 0),
            "active_waits": live.get("active_waits", 0), "tasks_running": live.get("tasks_running", 0),
            "uptime": live.get("uptime"), "age": round(repo.now() - float(live.get("pushed_at", 0)), 3),
        })
    return {"dal": dal, "store": info, "nodes": nodes, "offline": offline}
