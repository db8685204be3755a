"""What a dynamic answers before the subsystem that measures it exists: the empty value, never null.

The seed era's web GUI walks these values without null checks (it lower-cases ``failover_mode``, reads
``statistics.data_read_ps``, loops over ``*_guids``), so the contract (§6 "Never null") gives each kind of
value its empty form: ``[]`` for lists, ``"UNKNOWN"`` for a mode or status nobody reported, the full
statistics dictionary with zeros, and 0 bytes stored. None of these invents data: nothing was measured,
so nothing is counted.
"""

from __future__ import annotations

from typing import Any

#: the counters of the era's volume statistics (the GUI reads them, and their ``_ps`` rates, by name)
STATISTICS_COUNTERS = (
    "backend_data_read", "backend_data_written", "backend_read_operations", "backend_write_operations",
    "cluster_cache_hits", "cluster_cache_misses", "data_read", "data_written", "metadata_store_hits",
    "metadata_store_misses", "read_operations", "sco_cache_hits", "sco_cache_misses", "write_operations",
)
#: the sums the era computed from those counters
STATISTICS_SUMS = {
    "operations": ("write_operations", "read_operations"),
    "cache_hits": ("sco_cache_hits", "cluster_cache_hits"),
    "data_transferred": ("data_written", "data_read"),
}


def zero_statistics(now: float) -> dict[str, Any]:
    """The full statistics dictionary with nothing counted: every counter and sum, each rate, the time."""
    out: dict[str, Any] = {}
    for name in (*STATISTICS_COUNTERS, *STATISTICS_SUMS):
        out[name] = 0
        out[f"{name}_ps"] = 0
    out["timestamp"] = now
    return out


async def stored_data(obj: Any, repo: Any) -> int:
    return 0


async def no_guids(obj: Any, repo: Any) -> list[str]:
    return []


async def no_snapshots(obj: Any, repo: Any) -> list[dict[str, Any]]:
    return []


async def unknown(obj: Any, repo: Any) -> str:
    return "UNKNOWN"


async def volume_info(obj: Any, repo: Any) -> dict[str, Any]:
    # the GUI reads info.stored and lower-cases info.failover_mode
    return {"stored": 0, "failover_mode": "UNKNOWN"}
