"""First start: roles, groups, Default branding, the admin user and its password client; idempotent."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

from ovsd.auth.accounts import delete_client
from ovsd.auth.passwords import verify_password
from ovsd.config import Config
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.grants import grants_of, revoke_all, role_guids_of
from ovsd.dal.repository import Repository
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.conftest import node_config

#: the configuration each test repository's node has (bootstrap reads the admin password and names from it)
CONFIGS: dict[int, Config] = {}


def _repository(store: Store, data_dir: Path, **sections: dict[str, Any]) -> Repository:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = node_config(data_dir, **sections)
    repo = Repository(store, reactor=reactor, thresholds=config.agent)
    CONFIGS[id(repo)] = config
    return repo


async def _model(repo: Repository) -> dict[str, Any]:
    """What bootstrap made, in a comparable shape (no guids)."""
    roles = {r.guid: r.data for r in await repo.load_all("role")}

    async def codes(kind: str, guid: str) -> list[str]:
        return sorted(roles[x]["code"] for x in await role_guids_of(repo, kind, guid))

    groups = [(g.data["name"], g.data["description"], await codes("group", g.guid))
              for g in await repo.load_all("group")]
    clients = [(c.data["name"], c.data["ovs_type"], c.data["grant_type"], await codes("client", c.guid))
               for c in await repo.load_all("client")]
    return {
        "roles": sorted((r["code"], r["name"], r["description"]) for r in roles.values()),
        "groups": sorted(groups),
        "brandings": [{k: v for k, v in b.data.items()} for b in await repo.load_all("branding")],
        "users": sorted((u.data["username"], u.data["is_active"]) for u in await repo.load_all("user")),
        "clients": sorted(clients),
    }


EXPECTED = {
    "roles": [("manage", "Manage", "Can manage the system"), ("read", "Read", "Can read objects"),
              ("write", "Write", "Can write objects")],
    "groups": [("administrators", "Administrators", ["manage", "read", "write"]), ("viewers", "Viewers", ["read"])],
    "brandings": [{"name": "Default", "productname": "Open vStorage", "css": "bootstrap-default.min.css",
                   "description": "Default bootstrap theme", "is_default": True}],
    "users": [("admin", True)],
    "clients": [("ovs-internal", "INTERNAL", "PASSWORD", ["manage", "read", "write"])],
}


@pytest_twisted.ensureDeferred
async def test_bootstrap_creates_the_initial_model_with_the_configured_password(store: Store, tmp_path: Path) -> None:
    repo = _repository(store, tmp_path / "data")
    await bootstrap(repo, CONFIGS[id(repo)])
    assert await _model(repo) == EXPECTED
    admin = await repo.find("user", "username", "admin")
    assert admin is not None
    assert await verify_password(admin.data["password"], "admin-secret-pw")
    admins = await repo.find("group", "name", "administrators")
    assert admins is not None and admin.data["group_guid"] == admins.guid
    assert not (tmp_path / "data" / "admin-password").exists()
    assert await store.execute("EXISTS", keys.bootstrap_lock()) == 0


@pytest_twisted.ensureDeferred
async def test_bootstrap_twice_and_concurrently_changes_nothing(store: Store, tmp_path: Path) -> None:
    one = _repository(store, tmp_path / "one" / "data")
    two = _repository(store, tmp_path / "two" / "data")
    await defer.gatherResults([
        defer.ensureDeferred(bootstrap(one, CONFIGS[id(one)])),
        defer.ensureDeferred(bootstrap(two, CONFIGS[id(two)])),
    ])
    assert await _model(one) == EXPECTED
    guids = {kind: await one.guids(kind) for kind in ("role", "group", "branding", "user", "client")}
    await bootstrap(one, CONFIGS[id(one)])
    assert {kind: await one.guids(kind) for kind in guids} == guids


@pytest_twisted.ensureDeferred
async def test_bootstrap_completes_a_half_done_model(store: Store, tmp_path: Path) -> None:
    repo = _repository(store, tmp_path / "data")
    await bootstrap(repo, CONFIGS[id(repo)])
    admin = await repo.find("user", "username", "admin")
    assert admin is not None
    for guid in await repo.reverse_guids("user", admin.guid, "clients"):
        await delete_client(repo, guid)
    viewers = await repo.find("group", "name", "viewers")
    assert viewers is not None
    await revoke_all(repo, "group", viewers.guid)
    await repo.delete("group", viewers.guid)
    # and a start that stopped after making a group but before granting all its roles
    admins = await repo.find("group", "name", "administrators")
    assert admins is not None
    [grant, *_] = await grants_of(repo, "group", admins.guid)
    await repo.delete("rolegroup", grant.guid)
    await bootstrap(repo, CONFIGS[id(repo)])
    assert await _model(repo) == EXPECTED


@pytest_twisted.ensureDeferred
async def test_a_generated_admin_password_is_written_0600_and_only_its_path_is_logged(
    store: Store, tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    repo = _repository(store, data_dir, auth={"admin_password": ""})
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        await bootstrap(repo, CONFIGS[id(repo)])
    finally:
        globalLogPublisher.removeObserver(events.append)
    path = data_dir / "admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 16
    admin = await repo.find("user", "username", "admin")
    assert admin is not None and await verify_password(admin.data["password"], password)

    texts = [formatEvent(e) for e in events]
    assert any(str(path) in t for t in texts)
    assert not any(password in t or password in repr(e) for t, e in zip(texts, events, strict=True))

    # a second start neither regenerates nor rewrites it
    await bootstrap(repo, CONFIGS[id(repo)])
    assert path.read_text().strip() == password


@pytest_twisted.ensureDeferred
async def test_a_password_file_left_by_an_interrupted_start_is_honoured(store: Store, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "admin-password").write_text("left-over-password\n")
    repo = _repository(store, data_dir, auth={"admin_password": ""})
    await bootstrap(repo, CONFIGS[id(repo)])
    admin = await repo.find("user", "username", "admin")
    assert admin is not None and await verify_password(admin.data["password"], "left-over-password")
    assert stat.S_IMODE((data_dir / "admin-password").stat().st_mode) == 0o600


@pytest_twisted.ensureDeferred
async def test_a_node_waits_for_the_bootstrap_lock(store: Store, tmp_path: Path) -> None:
    repo = _repository(store, tmp_path / "data")
    await store.execute("SET", keys.bootstrap_lock(), "another-node", "EX", 30)
    running = defer.ensureDeferred(bootstrap(repo, CONFIGS[id(repo)]))
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(0.2, d.callback, None)
    await d
    assert not running.called
    assert await repo.guids("role") == []
    await store.execute("DEL", keys.bootstrap_lock())
    await running
    assert await _model(repo) == EXPECTED
