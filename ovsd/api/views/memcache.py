"""``GET /api/statistics/memcache/``: the seed era's statistics route, in that era's shape (contract §9).

That era kept its object cache in memcached and its web GUI's statistics page reads this route: the object
model's cache counters under ``dal`` and one entry per cache server under ``nodes`` with memcached's
``stats`` names. Here the cache is the store, so each figure is the store server's own, from its INFO:
``bytes`` its used memory, ``curr_items`` its keys, ``get_hits``/``get_misses`` its keyspace hits and
misses, ``cmd_get`` their sum, ``cmd_set`` and ``total_items`` its calls of the commands that store a value
(commands run by scripts included), ``bytes_read``/``bytes_written`` its network bytes, ``uptime`` its
uptime in seconds.
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint
from ovsd.api.views.common import repository
from ovsd.store.connection import StoreUnavailable, parse_store_url

# the era's DAL cache counters, by the name of ours that counts the same kind of read
_DAL = {"datalist": "list", "object_load": "object", "descriptor": "dynamic"}
# commands that store a value, as memcached's cmd_set counted its stores
_STORES = ("set", "setex", "psetex", "setnx", "mset", "msetnx", "getset", "hset", "hmset", "hsetnx", "sadd",
           "zadd", "xadd", "rpush", "lpush", "append", "incr", "incrby", "incrbyfloat", "decr", "decrby")


def parse_info(text: str) -> dict[str, str]:
    """The ``name:value`` lines of an INFO reply (section headers and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if sep:
            out[name] = value.strip()
    return out


def _number(info: dict[str, str], name: str) -> int:
    value = info.get(name, "")
    return int(value) if value.isdigit() else 0


def _calls(info: dict[str, str], command: str) -> int:
    # commandstats lines read "cmdstat_set:calls=12,usec=..,..."
    for item in info.get(f"cmdstat_{command}", "").split(","):
        name, _, value = item.partition("=")
        if name == "calls" and value.isdigit():
            return int(value)
    return 0


def node_figures(info: dict[str, str]) -> dict[str, Any]:
    """One store server's figures under memcached's names (every one a number: the GUI prints them all)."""
    items = 0
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit():
            # "keys=12,expires=3,avg_ttl=0"
            for part in value.split(","):
                key, _, count = part.partition("=")
                if key == "keys" and count.isdigit():
                    items += int(count)
    hits, misses = _number(info, "keyspace_hits"), _number(info, "keyspace_misses")
    stores = sum(_calls(info, c) for c in _STORES)
    return {
        "pid": _number(info, "process_id"),
        "uptime": _number(info, "uptime_in_seconds"),
        "version": info.get("valkey_version") or info.get("redis_version") or "",
        "bytes": _number(info, "used_memory"),
        "limit_maxbytes": _number(info, "maxmemory"),
        "curr_connections": _number(info, "connected_clients"),
        "total_connections": _number(info, "total_connections_received"),
        "curr_items": items,
        "total_items": stores,
        "cmd_get": hits + misses,
        "cmd_set": stores,
        "get_hits": hits,
        "get_misses": misses,
        "evictions": _number(info, "evicted_keys"),
        "bytes_read": _number(info, "total_net_input_bytes"),
        "bytes_written": _number(info, "total_net_output_bytes"),
    }


def store_node_name(call: Call) -> str:
    """The store server as the era named a cache server: ``host:port``, or the socket path."""
    config = call.context.config
    address = parse_store_url(config.store.url, config.store_dir)
    if address.kind == "unix":
        return str(address.path)
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


@endpoint(path="/api/statistics/memcache/", method="GET", kind="list", roles=R, returns="object")
async def memcache(call: Call) -> Any:
    """The object model's cache counters and the store server's figures, in the seed era's shape."""
    counters = repository(call).counters
    dal: dict[str, int] = {}
    for era, ours in _DAL.items():
        dal[f"{era}_hit"] = counters[f"{ours}_hit"]
        dal[f"{era}_miss"] = counters[f"{ours}_miss"]
    # reverse relations are read from the store's indexes every time: there is no cache to hit
    dal["relations_hit"] = dal["relations_miss"] = 0
    node = store_node_name(call)
    try:
        info = parse_info(await call.context.store.execute("INFO", "all"))
    except StoreUnavailable:
        return {"dal": dal, "nodes": [], "offline": [node]}
    return {"dal": dal, "nodes": [{"node": node, **node_figures(info)}], "offline": []}
