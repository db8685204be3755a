"""Property tests of the list semantics (contract §5) through the real HTTPS API, v1 and v2.

Hypothesis draws a world of vPools, vMachines, vDisks and StorageRouters (names with digit runs and case
differences, null descriptions, equal sizes, heartbeats), stores it through the repository, then draws list
requests (sort, page, page_size, contents, query, filters) and compares every answer with the pure-Python
model of the contract in ``tests/list_model.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import HTTPConnectionPool

from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.repository import Repository
from ovsd.service import build_node, prepare_data_dir
from ovsd.store.connection import Store
from tests.auth_support import ADMIN_PASSWORD, START
from tests.conftest import ApiHarness, node_config, serve_api
from tests.list_model import OPERATORS, RESOURCES, World, answer, check_path, value_of

STORED_KINDS = ("pmachine", "vpool", "vmachine", "vdisk", "storagerouter")  # creation order
SIZES = (0, 1, 2, 10, 100, 2**31, 2**40)


@dataclass
class ListNode:
    """A bootstrapped node serving every view, its repository (clock at START) and an admin token."""

    api: ApiHarness
    repository: Repository
    token: str
    stored: World | None = None

    async def get(self, resource: str, version: int, params: dict[str, str]) -> tuple[int, Any]:
        headers = {"Accept": f"application/json; version={version}", "Authorization": f"Bearer {self.token}"}
        status, body, _ = await self.api.request("GET", f"/api/{resource}/", headers=headers, params=params)
        return status, body

    async def replace_world(self, world: World) -> None:
        """Delete the previous example's objects (children first), then store this one's."""
        if world is self.stored:
            return
        repo = self.repository
        disks = await repo.load_all("vdisk")
        for disk in sorted(disks, key=lambda d: d.data.get("parent_vdisk_guid") is None):
            await repo.delete("vdisk", disk.guid)
        for kind in ("vmachine", "storagerouter", "vpool", "pmachine"):
            for guid in await repo.guids(kind):
                await repo.delete(kind, guid)
        for kind in STORED_KINDS:
            # a parent exists before its clones
            objects = sorted(world.of(kind).items(), key=lambda item: item[1].get("parent_vdisk_guid") is not None)
            for guid, data in objects:
                await repo.create(kind, data, guid=guid)
        self.stored = world


@pytest_twisted.async_yield_fixture
async def list_node(store: Store, tmp_path: Path) -> AsyncIterator[ListNode]:
    data_dir = tmp_path / "data"
    config = node_config(data_dir)
    prepare_data_dir(config)
    clock = Clock()
    clock.advance(START)  # StorageRouter status is read against this clock
    node = build_node(config, reactor, clock, store=store)
    await bootstrap(node.repository, config)
    node.mark_ready()
    pool = HTTPConnectionPool(reactor, persistent=True)
    api = await serve_api(node, pool)
    status, body, _ = await api.request("POST", "/api/oauth2/token/", data={
        "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD})
    assert status == 200, body
    yield ListNode(api, node.repository, body["access_token"])
    await node.api.stopService()
    await pool.closeCachedConnections()


# --- worlds --------------------------------------------------------------------------------------------
names = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["vd", "VD", "Vd", "disk", "a", "", "é"]),
    st.sampled_from(["", "0", "1", "2", "9", "10", "010", "100"]),
    st.sampled_from(["", "b", "-x", "B", " 2"]),
)
ages = st.none() | st.sampled_from([0.0, 10.0, 20.0, 30.0, 45.0])


def _guid(draw: st.DrawFn, taken: set[str]) -> str:
    guid = str(draw(st.uuids().filter(lambda u: str(u) not in taken)))
    taken.add(guid)
    return guid


@st.composite
def worlds(draw: st.DrawFn) -> World:
    taken: set[str] = set()
    world = World(now=START)
    # a few words per world, each object taking one in some case: ties and case-only differences abound
    vocabulary = draw(st.lists(names, min_size=1, max_size=5))
    word = st.sampled_from(vocabulary).flatmap(lambda w: st.sampled_from([w, w.upper(), w.capitalize()]))
    maybe_word = st.none() | word
    pmachine = _guid(draw, taken)
    world.objects["pmachine"] = {pmachine: {"name": "pm1", "ip": "10.0.0.1", "hvtype": "KVM"}}
    vpools = world.objects.setdefault("vpool", {})
    for name in draw(st.lists(word, min_size=1, max_size=3, unique=True)):
        vpools[_guid(draw, taken)] = {
            "name": name, "type": "LOCAL", "description": draw(maybe_word),
            "size": draw(st.none() | st.sampled_from(SIZES)), "password": draw(st.none() | st.just("pool-secret")),
            "metadata": draw(st.sampled_from([{}, {"k": 1}, {"k": 2}])),
        }
    vpool_guids = sorted(vpools)
    vmachines = world.objects.setdefault("vmachine", {})
    for _ in range(draw(st.integers(0, 4))):
        vmachines[_guid(draw, taken)] = {
            "name": draw(word), "description": draw(maybe_word), "is_vtemplate": draw(st.booleans()),
            "status": draw(st.sampled_from(["OK", "NOK", "SYNC"])),
            "vpool_guid": draw(st.none() | st.sampled_from(vpool_guids)),
            "pmachine_guid": draw(st.sampled_from([None, pmachine])),
        }
    vdisks = world.objects.setdefault("vdisk", {})
    for _ in range(draw(st.sampled_from([0, 1, 4, 10, 11, 19, 24]))):
        bases = sorted(g for g, d in vdisks.items() if d["parent_vdisk_guid"] is None)
        pool, name = draw(st.sampled_from(vpool_guids)), draw(maybe_word)
        if any(d["vpool_guid"] == pool and d["name"] == name for d in vdisks.values()):
            name = None  # a name is unique within its vPool (ties stay: across vPools, in case)
        vdisks[_guid(draw, taken)] = {
            "name": name, "description": draw(maybe_word), "size": draw(st.sampled_from(SIZES)),
            "vpool_guid": pool,
            "vmachine_guid": draw(st.none() | st.sampled_from(sorted(vmachines))) if vmachines else None,
            "parent_vdisk_guid": draw(st.none() | st.sampled_from(bases)) if bases else None,
        }
    routers = world.objects.setdefault("storagerouter", {})
    for i in range(draw(st.integers(0, 4))):
        beats = {part: START - age for part in ("process", "celery") if (age := draw(ages)) is not None}
        routers[_guid(draw, taken)] = {"name": draw(word), "machine_id": f"mid-{i}", "ip": f"10.0.1.{i}",
                                       "heartbeats": beats, "pmachine_guid": pmachine}
    return world


# --- requests ------------------------------------------------------------------------------------------
SORT_WORDS = {
    "vdisks": ["name", "description", "size", "vpool.name", "vpool.size", "vmachine.name", "vmachine.vpool.name",
               "parent_vdisk.name", "vpool_guid", "vpool", "guid", "storagerouter_guid", "volume_id"],
    "vmachines": ["name", "description", "status", "is_vtemplate", "vpool.name", "vpool_guid", "pmachine.name",
                  "vpools_guids", "guid"],
    "storagerouters": ["name", "heartbeats[process]", "heartbeats[celery]", "status", "ip", "description",
                       "pmachine.name", "heartbeats"],
    "vpools": ["name", "size", "description", "metadata[k]", "login", "guid", "type"],
}
BAD_SORT_WORDS = ["nosuch", "vdisks", "child_vdisks", "password", "vpool.password", "name[", "vpool..name", "a b"]
CONTENTS_WORDS = {
    "vdisks": ["vpool", "vpool_guid", "-vpool", "child_vdisks", "-child_vdisks_guids", "info", "-snapshots"],
    "vmachines": ["vdisks", "vpools_guids", "-vpools_guids", "pmachine"],
    "storagerouters": ["status", "-status", "storagedrivers", "pmachine", "-heartbeats"],
    "vpools": ["vdisks", "-vmachines", "status", "-size"],
}
COMMON_CONTENTS = ["_dynamics", "_relations", "name", "-name", "-description", "password", "nosuch"]
QUERY_FIELDS = {
    "vdisks": ["name", "description", "size", "vpool.name", "vpool_guid", "vmachine.name", "parent_vdisk.name",
               "vmachine.status", "guid", "info"],
    "vmachines": ["name", "status", "is_vtemplate", "vpools_guids", "vpool.name", "description"],
    "storagerouters": ["name", "status", "heartbeats", "ip"],
    "vpools": ["name", "size", "metadata", "description"],
}
PAGES = ["-1", "0", "1", "2", "3", "99", "abc", "", "+2", " 2", "1.5"]
PAGE_SIZES = ["10", "25", "50", "100", "7", "x", "0", "025"]


def scalars(world: World) -> st.SearchStrategy[Any]:
    guids = sorted(g for objects in world.objects.values() for g in objects)
    return (names | st.sampled_from(SIZES) | st.sampled_from([None, True, False, "OK", "ok", "SYNC", "", {}])
            | st.sampled_from(guids) | st.sampled_from(["vd", "1", "D"]))


def _twin(value: Any) -> Any:
    """A value Python's == confuses with the given one although JSON tells them apart (or another case)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return {0: False, 1: True}.get(value, float(value))
    return value.upper() if isinstance(value, str) else value


@st.composite
def conditions(draw: st.DrawFn, resource: str, world: World) -> list[Any]:
    """[field, op, value(, ignore_case)], the value mostly one the world holds for that field (so it matches)."""
    kind = RESOURCES[resource]
    field = draw(st.sampled_from(QUERY_FIELDS[resource]))
    path = check_path(kind, field)
    held = [value_of(world, kind, guid, path) for guid in sorted(world.of(kind))]
    value = (st.sampled_from(held) | st.sampled_from(held).map(_twin) | scalars(world)) if held else scalars(world)
    op = draw(st.sampled_from(OPERATORS))
    item = [field, op, draw(st.lists(value, max_size=3) if op == "IN" else value)]
    if op == "CONTAINS" and isinstance(item[2], str) and draw(st.booleans()):
        item[2] = item[2][1:3]  # a part of the text
    return item + draw(st.sampled_from([[], [True], [False]]))


def queries(resource: str, world: World) -> st.SearchStrategy[Any]:
    def tree(items: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.builds(lambda kind, found: {"type": kind, "items": found}, st.sampled_from(["AND", "OR"]),
                         st.lists(items, max_size=3))

    condition = conditions(resource, world)
    return st.recursive(tree(condition), lambda inner: tree(inner | condition), max_leaves=4)


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, int, dict[str, str]]:
    resource = draw(st.sampled_from(sorted(RESOURCES)))
    params: dict[str, str] = {}
    if draw(st.booleans()):
        words = st.sampled_from(SORT_WORDS[resource] * 8 + BAD_SORT_WORDS)  # now and then a refused one
        keys = draw(st.lists(st.tuples(st.sampled_from(["", "-"]), words), min_size=1, max_size=3))
        params["sort"] = ",".join(sign + word for sign, word in keys)
    if draw(st.booleans()):
        params["page"] = draw(st.sampled_from(PAGES))
    if draw(st.booleans()):
        params["page_size"] = draw(st.sampled_from(PAGE_SIZES))
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(COMMON_CONTENTS + CONTENTS_WORDS[resource]), max_size=4))
        params["contents"] = ",".join(chosen)
    if draw(st.integers(0, 2)) == 0:
        params["query"] = json.dumps(draw(queries(resource, world)))
    if resource in ("vdisks", "vmachines") and draw(st.integers(0, 3)) == 0:
        candidates = [*sorted(world.of("vpool")), str(uuid.UUID(int=1))]
        params["vpoolguid"] = draw(st.sampled_from(candidates))
    if resource == "vdisks" and draw(st.integers(0, 3)) == 0:
        params["vmachineguid"] = draw(st.sampled_from([*sorted(world.of("vmachine")), str(uuid.UUID(int=2))]))
    return resource, draw(st.sampled_from([1, 2])), params


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, list[tuple[str, int, dict[str, str]]]]:
    world = draw(worlds())
    return world, draw(st.lists(requests(world), min_size=1, max_size=4))


def _same(actual: tuple[int, Any], expected: tuple[int, Any]) -> bool:
    status, body = actual
    if expected[0] != 200:
        return status == expected[0] and isinstance(body, dict) and body.get("error") == expected[1]
    return actual == expected


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario=scenarios())
@pytest_twisted.ensureDeferred
async def test_lists_answer_what_the_contract_says(
    list_node: ListNode, scenario: tuple[World, list[tuple[str, int, dict[str, str]]]],
) -> None:
    world, calls = scenario
    await list_node.replace_world(world)
    for resource, version, params in calls:
        got = await list_node.get(resource, version, params)
        want = answer(world, resource, version, params)
        assert _same(got, want), f"GET /api/{resource}/ v{version} {params}\n got: {got}\nwant: {want}"



def _guids(count: int) -> list[str]:
    return [str(uuid.UUID(int=(7 << 64) + n)) for n in range(count)]  # in GUID order


def _world(**kinds: dict[str, dict[str, Any]]) -> World:
    pm, vp = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
    world = World(now=START, objects={"pmachine": {pm: {"name": "pm1", "ip": "10.0.0.1", "hvtype": "KVM"}},
                                      "vpool": {vp: {"name": "pool", "type": "LOCAL"}}})
    for kind, objects in kinds.items():
        world.objects[kind] = {g: {"pmachine_guid": pm, "vpool_guid": vp, **d} for g, d in objects.items()}
        for data in world.objects[kind].values():  # each kind keeps only its own relations
            data.pop("vpool_guid" if kind == "storagerouter" else "pmachine_guid")
    return world


@pytest_twisted.ensureDeferred
async def test_dict_keys_sort_null_first_and_ties_keep_guid_order(list_node: ListNode) -> None:
    g = _guids(5)
    beats = [{"process": 5.0, "celery": 1.0}, {}, {"process": 5.0}, {"process": 3.0}, {"process": 5.0}]
    routers = {g[i]: {"name": name, "machine_id": f"m{i}", "ip": f"10.0.1.{i}", "heartbeats": beats[i]}
               for i, name in enumerate(["A", "b", "a", "c", "a"])}
    world = _world(storagerouter=routers)
    await list_node.replace_world(world)
    expected = {
        "heartbeats[process]": [g[1], g[3], g[0], g[2], g[4]],  # null first, then 3, then the 5s in GUID order
        "-heartbeats[process]": [g[0], g[2], g[4], g[3], g[1]],  # the 5s still in GUID order, null last
        "heartbeats[celery],-name": [g[3], g[1], g[2], g[4], g[0]],
        "name": [g[0], g[2], g[4], g[1], g[3]],  # "A" before "a": case only breaks the tie
    }
    for sort, guids in expected.items():
        status, body = await list_node.get("storagerouters", 2, {"sort": sort})
        assert status == 200 and body["data"] == guids and body["_sorting"] == sort.split(","), (sort, body)
        assert await list_node.get("storagerouters", 1, {"sort": sort}) == (200, guids)


@pytest_twisted.ensureDeferred
async def test_natural_order_puts_digit_runs_in_number_order_and_null_first(list_node: ListNode) -> None:
    g = _guids(6)
    names = ["vd10", "vd2", None, "VD3", "vd1", "vd02"]
    world = _world(vdisk={g[i]: {"name": name, "size": 1} for i, name in enumerate(names)})
    await list_node.replace_world(world)
    ascending = [g[2], g[4], g[5], g[1], g[3], g[0]]  # null, vd1, vd02, vd2, VD3, vd10
    assert await list_node.get("vdisks", 1, {"sort": "name"}) == (200, ascending)
    assert await list_node.get("vdisks", 1, {"sort": "-name"}) == (200, ascending[::-1])
    assert await list_node.get("vdisks", 1, {"sort": "size"}) == (200, g)  # all equal: GUID order


TINY = _world(vdisk={g: {"name": f"vd{i}", "size": i} for i, g in enumerate(_guids(3))})


@pytest_twisted.ensureDeferred
async def test_query_values_compare_as_json_values(list_node: ListNode) -> None:
    await list_node.replace_world(TINY)
    for value in (False, True, 0, 1, 1.0, [1], None):
        for op in ("EQUALS", "NOT_EQUALS", "LT", "GT", "IN", "CONTAINS"):
            params = {"query": json.dumps({"type": "AND", "items": [["size", op, [value] if op == "IN" else value]]}),
                      "sort": "size"}
            got = await list_node.get("vdisks", 2, params)
            assert got == answer(TINY, "vdisks", 2, params), (params, got)
    # true is not 1: a disk of size 1 is no match for true, nor for [true]
    query = {"type": "OR", "items": [["size", "EQUALS", True], ["size", "IN", [True, False]], ["size", "LT", True]]}
    status, body = await list_node.get("vdisks", 2, {"query": json.dumps(query)})
    assert (status, body["data"]) == (200, [])


REFUSED_ITEMS = [
    '["name", "LIKE", "x"]', '["name", "IN", "x"]', '["name", "EQUALS"]', '["name", "EQUALS", "x", "yes"]',
    '[1, "EQUALS", "x"]', '["nosuch", "EQUALS", "x"]', '["vpool.password", "EQUALS", "x"]', '["size.x", "GT", 1]',
    '["child_vdisks", "EQUALS", []]', '["vpool..name", "GT", 1]', '["name[x]", "GT", 1]', '"name"',
]
REFUSED_QUERIES = [
    "not json", "[" * 5000, '{"type": "XOR", "items": []}', '{"type": "AND"}', '{"items": []}', "null", "[]",
    '{"type": "AND", "items": [], "extra": 1}', '{"type": "AND", "items": {}}',
    '{"type": "AND", "items": [' * 12 + "]}" * 12,  # nested deeper than 10
    *(f'{{"type": "OR", "items": [["name", "EQUALS", "vd1"], {item}]}}' for item in REFUSED_ITEMS),
]


@pytest_twisted.ensureDeferred
async def test_refused_queries_and_sorts_are_400_invalid_data(list_node: ListNode) -> None:
    await list_node.replace_world(TINY)
    for query in REFUSED_QUERIES:
        status, body = await list_node.get("vdisks", 2, {"query": query})
        assert (status, body["error"]) == (400, "invalid_data"), (query, body)
        # version 1 has no query for vDisks (the seed era's had none): the parameter is not read at all
        assert await list_node.get("vdisks", 1, {"query": query}) == (200, sorted(TINY.of("vdisk"))), query
        # vMachines took a query in version 1 already: refused there too
        status, body = await list_node.get("vmachines", 1, {"query": query})
        assert (status, body["error"]) == (400, "invalid_data"), (query, body)
    for sort in ("nosuch", "password", "vdisks", "vpool.password", "name,,x[", "vpool.vdisks.name"):
        for version in (1, 2):
            status, body = await list_node.get("vpools", version, {"sort": sort})
            assert (status, body["error"]) == (400, "invalid_data"), (sort, body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["AND", "OR", "name", "size", "vpool.name",
                                                                     "EQUALS", "IN", "LT", "CONTAINS", "vd1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "items", "x"]), inner,
                                                                max_size=3),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=json_values.map(json.dumps) | st.text(max_size=30))
@pytest_twisted.ensureDeferred
async def test_any_query_text_is_answered_as_the_model_says(list_node: ListNode, query: str) -> None:
    await list_node.replace_world(TINY)
    params = {"query": query, "sort": "name"}
    got, want = await list_node.get("vdisks", 2, params), answer(TINY, "vdisks", 2, params)
    assert _same(got, want), (query, got, want)
