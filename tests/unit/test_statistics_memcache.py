"""GET /api/statistics/memcache/ (contract §9): the seed era's statistics page, fed by the store's own INFO."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from tests.views_support import ViewsNode, populate, views_node

__all__ = ["views_node"]  # fixtures

DAL = {f"{name}_{kind}" for name in ("datalist", "object_load", "descriptor", "relations") for kind in ("hit", "miss")}
FIGURES = ("bytes", "curr_items", "total_items", "get_hits", "get_misses", "cmd_get", "cmd_set", "bytes_read",
           "bytes_written", "uptime")


async def memcache(node: ViewsNode, token: str) -> dict[str, Any]:
    reply = await node.call("GET", "/api/statistics/memcache/", token, version="*")
    assert reply.status == 200, reply.body
    return dict(reply.body)


@pytest_twisted.ensureDeferred
async def test_the_era_shape_with_every_figure_a_number(views_node: ViewsNode) -> None:
    node = views_node
    stats = await memcache(node, await node.admin_token("read"))
    assert set(stats) == {"dal", "nodes", "offline"}
    assert set(stats["dal"]) == DAL and all(isinstance(v, int) for v in stats["dal"].values())
    assert stats["offline"] == []
    [server] = stats["nodes"]
    config = node.api.context.config
    assert server["node"] == str(config.store_dir / "valkey.sock")  # the embedded store's socket
    for figure in FIGURES:
        assert isinstance(server[figure], int), figure
    # the GUI prints every attribute with toString(): none may be null
    assert all(value is not None for value in server.values())
    assert server["bytes"] > 0 and server["curr_items"] > 0  # bootstrap stored roles, groups, admin
    assert server["cmd_get"] == server["get_hits"] + server["get_misses"]
    # no token, or a token without read: refused as every read is
    assert (await node.call("GET", "/api/statistics/memcache/", version="*")).error == (401, "not_authenticated")
    refused = await node.call("GET", "/api/statistics/memcache/", await node.admin_token("none"), version="*")
    assert refused.error == (403, "invalid_roles")


@pytest_twisted.ensureDeferred
async def test_the_figures_move_when_the_store_is_used(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token("read")
    before = await memcache(node, token)
    cluster = await populate(node.repository)  # seven objects stored, with their indexes
    for _ in range(3):
        assert (await node.call("GET", f"/api/vdisks/{cluster.vdisk}/", token)).status == 200
    assert (await node.call("GET", "/api/vdisks/", token)).body == [cluster.vdisk]
    after = await memcache(node, token)
    [was], [now] = before["nodes"], after["nodes"]
    assert now["curr_items"] >= was["curr_items"] + 7
    assert now["cmd_set"] >= was["cmd_set"] + 7 and now["total_items"] >= was["total_items"] + 7
    assert now["get_hits"] >= was["get_hits"] + 3 and now["cmd_get"] > was["cmd_get"]
    assert now["bytes_read"] > was["bytes_read"] and now["bytes_written"] > was["bytes_written"]
    assert after["dal"]["object_load_hit"] >= before["dal"]["object_load_hit"] + 3
    assert after["dal"]["datalist_hit"] >= before["dal"]["datalist_hit"] + 1
