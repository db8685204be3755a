"""An object fetch writes its cached dynamics' JSON text into the answer as it is: the client reads the same
object as when they were computed, a damaged cache entry is computed again (never an invalid answer), a lone
surrogate is answered U+FFFD as everywhere else, and the HTML page shows the values."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted

from ovsd.api.app import encode_json
from ovsd.dal.jsontext import JsonText, WithJsonText, json_text
from ovsd.store import keys
from tests.views_support import Cluster, ViewsNode, populate, views_node

__all__ = ["views_node"]  # fixtures


async def router_read(node: ViewsNode) -> tuple[Cluster, str, str]:
    """A populated cluster, a read token, and the path of its StorageRouter (whose six dynamics are cached)."""
    cluster = await populate(node.repository)
    return cluster, await node.admin_token("read"), f"/api/storagerouters/{cluster.storagerouter}/"


async def fetched(node: ViewsNode, token: str, path: str) -> Any:
    reply = await node.call("GET", path, token)
    assert reply.status == 200, reply.body
    return reply.body


@pytest_twisted.ensureDeferred
async def test_a_fetch_from_the_cache_answers_what_the_computed_fetch_answered(views_node: ViewsNode) -> None:
    node = views_node
    cluster, token, path = await router_read(node)
    computed = await fetched(node, token, path)
    assert await node.store.execute("EXISTS", keys.dynamic("storagerouter", cluster.storagerouter, "statistics"))
    hits = node.repository.counters["dynamic_hit"]
    cached = await fetched(node, token, path)
    assert node.repository.counters["dynamic_hit"] - hits == 6  # every cached dynamic came from the cache
    assert cached == computed
    assert set(cached["statistics"]) >= {"data_read", "data_written_ps", "timestamp"}
    assert cached["vpools_guids"] == [cluster.vpool] and cached["stored_data"] == 0


@pytest_twisted.ensureDeferred
async def test_a_damaged_cache_entry_is_computed_again_and_the_answer_stays_json(views_node: ViewsNode) -> None:
    node = views_node
    cluster, token, path = await router_read(node)
    good = await fetched(node, token, path)
    key = keys.dynamic("storagerouter", cluster.storagerouter, "vpools_guids")
    for damaged in ('["unterminated', "", "[] []", "{'single': 1}", "\ufffd"):
        await node.store.execute("SET", key, damaged, "EX", 60)
        reply = await node.call("GET", path, token)
        assert reply.status == 200 and isinstance(reply.body, dict), (damaged, reply.raw)
        assert reply.body["vpools_guids"] == good["vpools_guids"], damaged
        assert json.loads(await node.store.execute("GET", key)) == [cluster.vpool]  # cached again, whole


@pytest_twisted.ensureDeferred
async def test_a_cached_lone_surrogate_is_answered_as_the_replacement_character(views_node: ViewsNode) -> None:
    node = views_node
    cluster, token, path = await router_read(node)
    key = keys.dynamic("storagerouter", cluster.storagerouter, "failover_mode")
    await node.store.execute("SET", key, '"ok \\ud800 and \\ud83d\\ude00"', "EX", 60)
    reply = await node.call("GET", path, token)
    assert reply.status == 200
    assert reply.body["failover_mode"] == "ok \ufffd and \U0001f600"
    reply.raw.decode("utf-8")  # strict UTF-8 on the wire


@pytest_twisted.ensureDeferred
async def test_the_html_page_of_a_fetch_shows_its_cached_dynamics(views_node: ViewsNode) -> None:
    node = views_node
    cluster, token, path = await router_read(node)
    await fetched(node, token, path)  # now cached
    reply = await node.call("GET", path, token, version=None, headers={"Accept": "text/html"})
    assert reply.status == 200 and reply.header("content-type") == "text/html; charset=utf-8"
    page = reply.raw.decode()
    assert "data_written_ps" in page and cluster.vpool in page
    assert "JsonText" not in page


def test_the_spliced_text_is_one_json_object_with_every_member() -> None:
    item = WithJsonText({"guid": "g", "stats": json_text('{"a":1,"b":[2,3]}'), "name": "n\u00e9",
                         "empty": json_text("null")})
    assert json.loads(encode_json(item)) == {"guid": "g", "stats": {"a": 1, "b": [2, 3]}, "name": "n\u00e9",
                                             "empty": None}
    assert json.loads(encode_json(WithJsonText({"only": json_text("[1]")}))) == {"only": [1]}
    assert json.loads(encode_json(WithJsonText({}))) == {}


def test_json_text_outside_an_answer_object_fails_loudly_rather_than_as_a_string() -> None:
    with pytest.raises(TypeError):
        encode_json({"data": [WithJsonText({"stats": json_text("{}")})], "x": JsonText("{}")})
    with pytest.raises(ValueError):
        json_text("{not json")
