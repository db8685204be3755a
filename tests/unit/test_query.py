"""Sort, page, query and contents rules on real stored objects."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.dal.listing import list_objects
from ovsd.dal.query import InvalidQuery, ListSpec, natural_key, page_of, parse_query, parse_sort
from ovsd.dal.repository import Repository
from ovsd.dal.serializer import Contents
from ovsd.store.connection import Store


@pytest.fixture
def repo(store: Store, data_dir) -> Repository:  # type: ignore[no-untyped-def]
    return Repository(store, reactor=reactor)


def test_natural_order() -> None:
    names = ["vd10", "vd2", None, "vd1", "VD3", "a"]
    assert sorted(names, key=natural_key) == [None, "a", "vd1", "vd2", "VD3", "vd10"]


def test_paging_clamps_pages() -> None:
    items = list(range(25))
    assert page_of(items, ListSpec(page=0))[0] == list(range(10))
    assert page_of(items, ListSpec(page=99))[0] == [20, 21, 22, 23, 24]
    _, paging = page_of(items, ListSpec(page=2, page_size=10))
    assert paging.as_dict() == {"total_items": 25, "current_page": 2, "max_page": 3, "start_number": 11,
                                "end_number": 20, "page_size": 10}
    assert page_of([], ListSpec(page=1))[1].max_page == 1
    assert page_of(items, ListSpec(page="x"))[0] == items


def test_bad_sort_and_query_are_refused() -> None:
    with pytest.raises(InvalidQuery):
        parse_sort("name,,-")
    for bad in ('{"type": "XOR", "items": []}', "[", '{"type": "AND", "items": [["a", "LIKE", 1]]}',
                '{"type": "AND", "items": [["a", "IN", 1]]}', '{"type": "AND"}'):
        with pytest.raises(InvalidQuery):
            parse_query(bad)


async def _vdisks(repo: Repository) -> tuple[str, str]:
    vp1 = await repo.create("vpool", {"name": "pool-b", "type": "LOCAL"})
    vp2 = await repo.create("vpool", {"name": "pool-a", "type": "LOCAL"})
    for i, vp in enumerate([vp1, vp2, vp1, vp2, vp1]):
        await repo.create("vdisk", {"name": f"vd{10 - i * 2}", "size": i * 100, "vpool_guid": vp.guid})
    return vp1.guid, vp2.guid


@pytest_twisted.ensureDeferred
async def test_multi_key_sort_through_relations(repo: Repository) -> None:
    await _vdisks(repo)
    spec = ListSpec(sort=tuple(parse_sort("vpool.name,-name")))
    items, _, _ = await list_objects(repo, "vdisk", spec, Contents.parse(""))
    assert [i["name"] for i in items] == ["vd8", "vd4", "vd10", "vd6", "vd2"]
    assert all("vpool_guid" not in i for i in items)  # relations only with _relations


@pytest_twisted.ensureDeferred
async def test_query_and_contents(repo: Repository) -> None:
    vp1, _ = await _vdisks(repo)
    query = parse_query({"type": "AND", "items": [["vpool.name", "EQUALS", "POOL-B", True], ["size", "GT", 0]]})
    items, paging, _ = await list_objects(repo, "vdisk", ListSpec(sort=tuple(parse_sort("name")), query=query),
                                          Contents.parse("_relations,-description"))
    assert [i["name"] for i in items] == ["vd2", "vd6"]
    assert all(i["vpool_guid"] == vp1 and "child_vdisks_guids" in i and "description" not in i for i in items)
    assert paging.total_items == 2


@pytest_twisted.ensureDeferred
async def test_unknown_or_secret_fields_cannot_be_sorted(repo: Repository) -> None:
    for text in ("nosuchfield", "password", "vpool.nosuch"):
        with pytest.raises(InvalidQuery):
            await list_objects(repo, "vmachine" if "vpool" in text else "user",
                               ListSpec(sort=tuple(parse_sort(text))), None)
