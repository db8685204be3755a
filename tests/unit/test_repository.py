"""The repository against a real store: validation, atomic index upkeep, concurrency, deletes."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from ovsd.dal.repository import (
    InUse,
    InvalidValue,
    ObjectNotFound,
    Repository,
    UniqueConflict,
    VersionConflict,
)
from ovsd.store import keys
from ovsd.store.connection import Store


@pytest.fixture
def repo(store: Store, data_dir) -> Repository:  # type: ignore[no-untyped-def]
    return Repository(store, reactor=reactor)


async def _group(repo: Repository, name: str = "administrators") -> str:
    role = await repo.create("role", {"name": "Read", "code": "read", "description": "Can read objects"})
    group = await repo.create("group", {"name": name})
    await repo.create("rolegroup", {"role_guid": role.guid, "group_guid": group.guid})
    return group.guid


@pytest_twisted.ensureDeferred
async def test_create_applies_defaults_and_indexes(repo: Repository, store: Store) -> None:
    group = await _group(repo)
    user = await repo.create("user", {"username": "alice", "password": "h", "group_guid": group})
    assert user.data["is_active"] is True and user.data["language"] == "en-US"
    assert user.version == 1
    loaded = await repo.get("user", user.guid)
    assert loaded.data == user.data
    assert await repo.guids("user") == [user.guid]
    assert await repo.reverse_guids("group", group, "users") == [user.guid]
    assert (await repo.find("user", "username", "alice")).guid == user.guid  # type: ignore[union-attr]
    stored = json.loads(await store.execute("GET", keys.obj("user", user.guid)))
    assert stored["_version"] == 1


@pytest_twisted.ensureDeferred
async def test_invalid_values_are_refused_and_change_nothing(repo: Repository, store: Store) -> None:
    group = await _group(repo)
    cases = [
        {"username": "bob", "password": "h", "group_guid": group, "language": "fr-FR"},
        {"username": "bob", "password": "h", "group_guid": group, "is_active": "yes"},
        {"username": "bob", "password": "h"},
        {"username": "bob", "password": "h", "group_guid": "not-a-guid"},
        {"username": "bob", "password": "h", "group_guid": group, "shoe_size": 44},
    ]
    for values in cases:
        with pytest.raises(InvalidValue):
            await repo.create("user", values)
    with pytest.raises(InvalidValue, match="does not exist"):
        await repo.create("user", {"username": "bob", "password": "h",
                                   "group_guid": "00000000-0000-4000-8000-000000000000"})
    assert await repo.guids("user") == []
    assert await store.execute("KEYS", keys.unique("user", "username", "*")) == []


@pytest_twisted.ensureDeferred
async def test_unique_fields(repo: Repository) -> None:
    group = await _group(repo)
    first = await repo.create("user", {"username": "carol", "password": "h", "group_guid": group})
    with pytest.raises(UniqueConflict):
        await repo.create("user", {"username": "carol", "password": "h", "group_guid": group})
    # renaming frees the old name and takes the new one
    await repo.update("user", first.guid, {"username": "caroline"})
    assert await repo.find("user", "username", "carol") is None
    again = await repo.create("user", {"username": "carol", "password": "h", "group_guid": group})
    with pytest.raises(UniqueConflict):
        await repo.update("user", again.guid, {"username": "caroline"})


@pytest_twisted.ensureDeferred
async def test_concurrent_creates_of_one_username_yield_one_user(repo: Repository) -> None:
    group = await _group(repo)
    attempts = [
        defer.ensureDeferred(repo.create("user", {"username": "dave", "password": "h", "group_guid": group}))
        for _ in range(20)
    ]
    results = await defer.DeferredList(attempts, consumeErrors=True)
    ok = [r for success, r in results if success]
    failed = [r for success, r in results if not success]
    assert len(ok) == 1
    assert all(f.check(UniqueConflict) for f in failed)
    assert len(await repo.guids("user")) == 1


@pytest_twisted.ensureDeferred
async def test_fifty_concurrent_updates_of_different_fields_all_survive(repo: Repository) -> None:
    drv = await repo.create("pmachine", {"name": "pm", "ip": "10.0.0.1", "hvtype": "KVM"})
    # 50 writers each set their own key of the same object through distinct fields
    fields = ["name", "description", "username", "ip", "hypervisor_id"]
    updates = [
        defer.ensureDeferred(repo.update("pmachine", drv.guid, {fields[i % 5]: f"{fields[i % 5]}-{i}"}))
        for i in range(50)
    ]
    await defer.gatherResults(updates)
    final = await repo.get("pmachine", drv.guid)
    assert final.version == 51
    for f in fields:
        # the last writer of each field wins, and every field was written
        assert final.data[f].startswith(f + "-")


@pytest_twisted.ensureDeferred
async def test_expected_version_detects_concurrent_modification(repo: Repository) -> None:
    pm = await repo.create("pmachine", {"name": "pm", "ip": "10.0.0.1", "hvtype": "KVM"})
    await repo.update("pmachine", pm.guid, {"name": "a"}, expected_version=1)
    with pytest.raises(VersionConflict):
        await repo.update("pmachine", pm.guid, {"name": "b"}, expected_version=1)
    assert (await repo.get("pmachine", pm.guid)).data["name"] == "a"


@pytest_twisted.ensureDeferred
async def test_relation_changes_move_reverse_indexes(repo: Repository) -> None:
    pm = await repo.create("pmachine", {"name": "pm", "ip": "10.0.0.1", "hvtype": "KVM"})
    vp1 = await repo.create("vpool", {"name": "vp1", "type": "LOCAL"})
    vp2 = await repo.create("vpool", {"name": "vp2", "type": "LOCAL"})
    vm = await repo.create("vmachine", {"name": "vm", "pmachine_guid": pm.guid, "vpool_guid": vp1.guid})
    assert await repo.reverse_guids("vpool", vp1.guid, "vmachines") == [vm.guid]
    await repo.update("vmachine", vm.guid, {"vpool_guid": vp2.guid})
    assert await repo.reverse_guids("vpool", vp1.guid, "vmachines") == []
    assert await repo.reverse_guids("vpool", vp2.guid, "vmachines") == [vm.guid]
    await repo.update("vmachine", vm.guid, {"vpool_guid": None})
    assert await repo.reverse_guids("vpool", vp2.guid, "vmachines") == []


@pytest_twisted.ensureDeferred
async def test_delete_refuses_while_referenced_then_cleans_every_index(repo: Repository, store: Store) -> None:
    group = await _group(repo)
    user = await repo.create("user", {"username": "erin", "password": "h", "group_guid": group})
    with pytest.raises(InUse):
        await repo.delete("group", group)
    await repo.delete("user", user.guid)
    with pytest.raises(ObjectNotFound):
        await repo.get("user", user.guid)
    assert await repo.guids("user") == []
    assert await repo.reverse_guids("group", group, "users") == []
    assert await repo.find("user", "username", "erin") is None
    with pytest.raises(ObjectNotFound):
        await repo.delete("user", user.guid)


@pytest_twisted.ensureDeferred
async def test_malformed_guid_is_not_found(repo: Repository) -> None:
    with pytest.raises(ObjectNotFound):
        await repo.get("user", "../../etc")


@pytest_twisted.ensureDeferred
async def test_dynamics_are_cached_with_their_timeout(repo: Repository, store: Store) -> None:
    group = await _group(repo)
    user = await repo.create("user", {"username": "f", "password": "h", "group_guid": group})
    client = await repo.create("client", {"name": "c", "grant_type": "PASSWORD", "ovs_type": "INTERNAL",
                                          "user_guid": user.guid})
    [values] = await repo.dynamics([client], ["client_id"])
    assert values == {"client_id": client.guid}
    assert repo.counters["dynamic_miss"] == 1
    ttl = await store.execute("TTL", keys.dynamic("client", client.guid, "client_id"))
    assert 0 < int(ttl) <= 86400
    await repo.dynamics([client], ["client_id"])
    assert repo.counters["dynamic_hit"] == 1


@pytest_twisted.ensureDeferred
async def test_modify_merges_concurrent_changes_inside_a_dict(repo: Repository) -> None:
    pm = await repo.create("pmachine", {"name": "pm", "ip": "10.0.0.1", "hvtype": "KVM"})
    sr = await repo.create("storagerouter", {"name": "sr", "machine_id": "m1", "ip": "10.0.0.1",
                                             "pmachine_guid": pm.guid})

    def beat(component: str, at: int):  # type: ignore[no-untyped-def]
        return lambda data: {"heartbeats": {**data["heartbeats"], component: at}}

    await defer.gatherResults([
        defer.ensureDeferred(repo.modify("storagerouter", sr.guid, beat(c, i)))
        for i in range(10) for c in ("process", "celery")
    ])
    final = await repo.get("storagerouter", sr.guid)
    assert set(final.data["heartbeats"]) == {"process", "celery"}
    assert final.version == 21
