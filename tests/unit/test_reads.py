"""Reads in one round trip: a fetch, the sides of a few objects, every object of a kind, lists of many objects."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.api.app import encode_json
from ovsd.dal.listing import list_objects
from ovsd.dal.query import ListSpec, parse_sort
from ovsd.dal.repository import ObjectNotFound, Repository
from ovsd.dal.serializer import Contents, fetch, serialize, serialize_one
from ovsd.store.connection import Store
from tests.views_support import populate


def answered(item: dict[str, Any]) -> Any:
    """An object as a client reads it from the answer's bytes (a fetch splices cached dynamics' JSON text)."""
    return json.loads(encode_json(item))


@pytest.fixture
def repo(store: Store, data_dir) -> Repository:  # type: ignore[no-untyped-def]
    return Repository(store, reactor=reactor)


def count_commands(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The commands sent to the real store from now on (each is one round trip)."""
    sent: list[Any] = []
    execute, pipeline = store.execute, store.pipeline

    async def counted(*args: Any) -> Any:
        sent.append(args[0])
        return await execute(*args)

    async def counted_pipeline(commands: Any) -> list[Any]:
        sent.append("pipeline")
        return await pipeline(commands)

    monkeypatch.setattr(store, "execute", counted)
    monkeypatch.setattr(store, "pipeline", counted_pipeline)
    return sent


@pytest_twisted.ensureDeferred
async def test_a_fetch_shows_relations_reverse_relations_and_dynamics_read_in_one_round_trip(
    repo: Repository, store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = await populate(repo)
    first = answered(await fetch(repo, "storagerouter", cluster.storagerouter, None))
    assert first["pmachine_guid"] == cluster.pmachine
    assert first["storagedrivers_guids"] == [cluster.storagedriver]
    assert first["vpools_guids"] == [cluster.vpool]  # computed, then cached
    assert first["status"] == "UNKNOWN" and first["statistics"]["data_read_ps"] == 0  # nothing measured yet
    sent = count_commands(store, monkeypatch)
    again = answered(await fetch(repo, "storagerouter", cluster.storagerouter, None))
    assert sent == ["EVALSHA"]
    assert again == first


@pytest_twisted.ensureDeferred
async def test_a_fetch_answers_exactly_what_serializing_the_loaded_object_does(repo: Repository) -> None:
    cluster = await populate(repo)
    clone = await repo.create("vdisk", {"name": "clone", "size": 1, "vpool_guid": cluster.vpool,
                                        "parent_vdisk_guid": cluster.vdisk})
    objects = {"storagerouter": cluster.storagerouter, "storagedriver": cluster.storagedriver, "vpool": cluster.vpool,
               "vmachine": cluster.vmachine, "vdisk": cluster.vdisk, "pmachine": cluster.pmachine}
    for contents in (None, "", "_relations", "_dynamics", "_relations,-name", "vdisks,child_vdisks,status"):
        parsed = Contents.parse(contents)
        for kind, guid in objects.items():
            answer = answered(await fetch(repo, kind, guid, parsed))
            assert answer == await serialize_one(repo, await repo.get(kind, guid), parsed), (kind, contents)
            assert "password" not in answer
    vdisk = answered(await fetch(repo, "vdisk", cluster.vdisk, Contents.parse("_relations")))
    assert vdisk["child_vdisks_guids"] == [clone.guid] and vdisk["vmachine_guid"] == cluster.vmachine
    with pytest.raises(ObjectNotFound):
        await fetch(repo, "vdisk", "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5", None)
    with pytest.raises(ObjectNotFound):
        await fetch(repo, "vdisk", "../etc", None)


@pytest_twisted.ensureDeferred
async def test_load_all_reads_every_object_of_a_kind_in_guid_order(repo: Repository) -> None:
    assert await repo.load_all("vpool") == []
    created = [await repo.create("vpool", {"name": f"pool{n}", "type": "LOCAL"}) for n in range(5)]
    await repo.delete("vpool", created[2].guid)
    loaded = await repo.load_all("vpool")
    assert [o.guid for o in loaded] == sorted(o.guid for o in created if o is not created[2])
    assert {o.data["name"] for o in loaded} == {"pool0", "pool1", "pool3", "pool4"}
    assert all(o.version == 1 for o in loaded)


@pytest_twisted.ensureDeferred
async def test_a_list_of_many_objects_shows_the_same_relations_as_each_fetch(repo: Repository) -> None:
    cluster = await populate(repo)
    # enough vDisks for the bulk path, some of them clones of others
    disks = [await repo.create("vdisk", {"name": f"vd{n:03d}", "size": 1, "vpool_guid": cluster.vpool})
             for n in range(210)]
    for n in range(0, 30, 3):
        await repo.create("vdisk", {"name": f"clone{n}", "size": 1, "vpool_guid": cluster.vpool,
                                    "parent_vdisk_guid": disks[n].guid})
    contents = Contents.parse("_relations")
    items, paging, _ = await list_objects(repo, "vdisk", ListSpec(tuple(parse_sort("name")), version=1), contents)
    assert paging.total_items == len(items) == 221
    names = [i["name"] for i in items]
    assert names[:3] == ["clone0", "clone3", "clone6"] and names[-2:] == ["vd208", "vd209"]
    by_guid: dict[str, Any] = {i["guid"]: i for i in items}
    for guid in (disks[0].guid, disks[1].guid, disks[27].guid, cluster.vdisk):
        assert by_guid[guid] == answered(await fetch(repo, "vdisk", guid, contents))
    assert len(by_guid[disks[27].guid]["child_vdisks_guids"]) == 1
    few = await serialize(repo, [o for o in await repo.get_many("vdisk", list(by_guid)[:5])], contents)
    assert few == [by_guid[item["guid"]] for item in few]
