"""Writes that span objects land whole or not at all (issue 11, "writes finish"): a change set is one store
script that checks everything before it writes anything.

A password change with the revocation of the user's tokens, a group change with the clients' grants and that
revocation, a user or client removal with what hangs on it: each reaches the store as one write, a token
issued while it was planned is revoked too, and a store link cut at any point leaves either the old state
or the new one, never a mix.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.auth.accounts import (
    change_user,
    create_client,
    delete_client,
    delete_user,
    ensure_password_client,
    set_password,
)
from ovsd.auth.tokens import IssuedToken, find_token, issue_token
from ovsd.dal.grants import grant_guid, role_guids_of
from ovsd.dal.repository import (
    Delete,
    InUse,
    InvalidValue,
    Members,
    ObjectNotFound,
    Repository,
    Unchanged,
    UniqueConflict,
    VersionConflict,
)
from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.store.errors import StoreError
from ovsd.store.scripts import LUA_DIR, load_lua
from tests.support import connected_store, free_port, valkey_server
from tests.views_support import ViewsNode, cheap_user, store_snapshot, views_node
from tests.work_support import until

__all__ = ["views_node"]  # fixtures

PASSWORD = "Bob-password-1"
#: the script every write of the object model goes through (every other command these flows send is a read)
WRITING_SCRIPTS = {"dal_apply"}
READS = {"GET", "MGET", "SMEMBERS", "SCARD", "EXISTS", "PING"}


async def record_writes(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The writes sent to the real store from now on, in order: a plain command by its name, a script by
    its file name (reads are left out)."""
    names = {}
    for path in LUA_DIR.glob("*.lua"):
        source = load_lua(path.stem)
        # loaded now: a script the server does not know yet would be sent twice (EVALSHA, then EVAL)
        names[await store.execute("SCRIPT", "LOAD", source)] = path.stem
    writes: list[str] = []
    execute, pipeline = store.execute, store.pipeline

    def note(command: tuple[Any, ...]) -> None:
        name = str(command[0]).upper()
        if name == "EVALSHA":
            script = names.get(str(command[1]), "?")
            if script in WRITING_SCRIPTS or script == "?":
                writes.append(script)
        elif name not in READS:
            writes.append(name)

    async def noted(*args: Any) -> Any:
        note(args)
        return await execute(*args)

    async def noted_pipeline(commands: Any) -> list[Any]:
        for command in commands:
            note(tuple(command))
        return await pipeline(commands)

    monkeypatch.setattr(store, "execute", noted)
    monkeypatch.setattr(store, "pipeline", noted_pipeline)
    return writes


async def bob(node: ViewsNode, group: str = "administrators") -> tuple[str, list[str], str]:
    """User bob with a password token, an API client and a token of it: (guid, [tokens], API client guid)."""
    admin = await node.admin_token()
    reply = await node.call("POST", "/api/users/", admin, body={
        "username": "bob", "password": PASSWORD, "is_active": True, "group_guid": (await node.group(group)).guid,
    })
    assert reply.status == 201, reply.body
    client, secret = await create_client(node.repository, reply.body["guid"], "bob's app")
    tokens = [await node.password_token("bob", PASSWORD), await node.client_token(client.guid, secret)]
    return reply.body["guid"], tokens, client.guid


async def token_works(node: ViewsNode, token: str) -> bool:
    return bool((await node.call("GET", "/api/", token)).body["authenticated"])


# --- one write -------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_a_password_change_reaches_the_store_as_one_write(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, tokens, _ = await bob(node)
    admin = await node.admin_token()
    writes = await record_writes(node.store, monkeypatch)
    reply = await node.call("POST", f"/api/users/{guid}/set_password/", admin, body={"new_password": "New-pw-22"})
    assert reply.status == 202, reply.body
    assert writes == ["dal_apply"]
    assert not [t for t in tokens if await token_works(node, t)]
    await node.password_token("bob", "New-pw-22")


@pytest_twisted.ensureDeferred
async def test_a_group_change_reaches_the_store_as_one_write_with_the_grants_and_the_revocation(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, tokens, client = await bob(node)
    viewers = await node.group("viewers")
    admin = await node.admin_token()
    writes = await record_writes(node.store, monkeypatch)
    reply = await node.call("PATCH", f"/api/users/{guid}/", admin, body={"group_guid": viewers.guid,
                                                                          "language": "nl-NL"})
    assert reply.status == 202, reply.body
    assert writes == ["dal_apply"]
    assert reply.body["group_guid"] == viewers.guid and reply.body["language"] == "nl-NL"
    assert not [t for t in tokens if await token_works(node, t)]
    held = await role_guids_of(node.repository, "group", viewers.guid)
    password_client = await ensure_password_client(node.repository, guid)
    assert await role_guids_of(node.repository, "client", password_client.guid) == held
    assert set(await role_guids_of(node.repository, "client", client)) <= set(held)


@pytest_twisted.ensureDeferred
async def test_a_refused_group_change_changes_nothing(views_node: ViewsNode) -> None:
    node = views_node
    guid, tokens, _ = await bob(node)
    admin = await node.admin_token()
    before = await store_snapshot(node.store)
    missing = "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"
    reply = await node.call("PATCH", f"/api/users/{guid}/", admin, body={"group_guid": missing})
    assert reply.status == 400, reply.body
    assert reply.body["error"] == "invalid_data" and "group_guid" in reply.body["error_description"]
    taken = await node.call("PATCH", f"/api/users/{guid}/", admin, body={
        "group_guid": (await node.group("viewers")).guid, "username": "admin"})
    assert taken.status == 409, taken.body
    # the admin token's own use is not a change: compare the store as it was, token bookkeeping included
    assert await store_snapshot(node.store) == before
    assert all([await token_works(node, t) for t in tokens])


# --- a token or client appearing meanwhile -----------------------------------------------------------------
def issue_before_first_apply(
    store: Store, monkeypatch: pytest.MonkeyPatch, issue: Any,
) -> list[Any]:
    """Run ``issue()`` (a coroutine function) right before the first change set reaches the store: after
    the write was planned from its reads. Answers the list that receives what it returned."""
    apply_source = load_lua("dal_apply")
    script = store.script
    issued: list[Any] = []
    started: list[bool] = []

    async def late(source: str, keys: Any, args: Any) -> Any:
        if source == apply_source and not started:
            started.append(True)  # what issue() applies itself goes straight through
            issued.append(await issue())
        return await script(source, keys, args)

    monkeypatch.setattr(store, "script", late)
    return issued


@pytest_twisted.ensureDeferred
async def test_a_token_issued_while_the_password_change_was_planned_is_revoked_too(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, tokens, client = await bob(node)
    issued = issue_before_first_apply(
        node.store, monkeypatch, lambda: issue_token(node.repository, client, [], 3600))
    await set_password(node.repository, guid, "New-pw-22")
    assert len(issued) == 1
    late: IssuedToken = issued[0]
    assert await find_token(node.repository, late.access_token) is None, "a token survived the new password"
    assert not await token_works(node, late.access_token)
    assert not [t for t in tokens if await token_works(node, t)]


@pytest_twisted.ensureDeferred
async def test_a_client_created_while_the_group_change_was_planned_is_brought_in_line_too(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, _, _ = await bob(node)
    viewers = await node.group("viewers")
    admin = await node.admin_token()
    issued = issue_before_first_apply(node.store, monkeypatch, lambda: create_client(node.repository, guid, "late"))
    reply = await node.call("PATCH", f"/api/users/{guid}/", admin, body={"group_guid": viewers.guid})
    assert reply.status == 202, reply.body
    late_client, secret = issued[0]
    assert await role_guids_of(node.repository, "client", late_client.guid) == [(await node.role("read")).guid]
    refused = await node.client_token_reply(late_client.guid, secret, "write")
    assert refused.status == 400 and refused.body["error"] == "invalid_scope", refused.body


@pytest_twisted.ensureDeferred
async def test_a_password_grant_checked_before_a_password_change_landed_issues_no_token(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, _, _ = await bob(node)
    changed = issue_before_first_apply(
        node.store, monkeypatch, lambda: set_password(node.repository, guid, "New-pw-22"))
    reply = await node.token_reply({"grant_type": "password", "username": "bob", "password": PASSWORD})
    assert len(changed) == 1, "the password change did not run between the check and the issue"
    assert reply.status == 400 and reply.body["error"] == "invalid_client", reply.body
    password_client = await ensure_password_client(node.repository, guid)
    assert await node.repository.reverse_guids("client", password_client.guid, "tokens") == []
    await node.password_token("bob", "New-pw-22")


@pytest_twisted.ensureDeferred
async def test_a_client_grant_checked_before_a_group_change_landed_carries_the_new_group_s_roles(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    guid, _, _ = await bob(node)
    client, secret = await create_client(node.repository, guid, "another app")
    viewers = (await node.group("viewers")).guid
    moved = issue_before_first_apply(
        node.store, monkeypatch, lambda: change_user(node.repository, guid, {"group_guid": viewers}))
    token = await node.client_token(client.guid, secret)
    assert len(moved) == 1, "the group change did not run between the check and the issue"
    stored = await find_token(node.repository, token)
    assert stored is not None
    assert stored.data["roles_guids"] == [(await node.role("read")).guid]


# --- all or nothing -----------------------------------------------------------------------------------------
async def three_objects(repo: Repository) -> tuple[str, str, str]:
    """A role, a group holding it and a user in it with its password client: (role, group, user) guids."""
    role = await repo.create("role", {"name": "Read", "code": "read", "description": "Can read"})
    group = await repo.create("group", {"name": "viewers"})
    await repo.create("rolegroup", {"role_guid": role.guid, "group_guid": group.guid}, guid=grant_guid(
        "group", group.guid, role.guid))
    user = await cheap_user(repo, "bob", group.guid)
    return role.guid, group.guid, user.guid


@pytest.fixture
def repo(store: Store) -> Repository:
    return Repository(store, reactor=reactor)


@pytest_twisted.ensureDeferred
async def test_a_change_set_whose_last_operation_fails_its_check_writes_nothing(
    repo: Repository, store: Store,
) -> None:
    role, group, guid = await three_objects(repo)
    client = await ensure_password_client(repo, guid)
    token = await issue_token(repo, client.guid, [role], 60)
    user = await repo.get("user", guid)
    stored_token = await repo.get("bearertoken", token.guid)
    stale_group = await repo.get("group", group)
    first = [repo.planned_change(user, {"language": "nl-NL", "username": "robert"}), Delete(stored_token),
             repo.planned_create("client", {"name": "x", "grant_type": "PASSWORD", "ovs_type": "USER",
                                            "user_guid": guid})]
    missing = "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5"
    refusals: list[tuple[Any, type[Exception], str]] = [
        (repo.planned_create("user", {"username": "robert", "password": "h", "group_guid": group}),
         UniqueConflict, "username"),  # claimed by the set's own first save
        (repo.planned_create("roleclient", {"role_guid": missing, "client_guid": client.guid}),
         InvalidValue, "role_guid"),
        (Delete(await repo.get("role", role)), InUse, "referenced"),  # still granted: the set keeps the grants
        (Delete(client), InUse, "roles"),  # its token goes in the set, its grant stays
        (repo.planned_change(stale_group, {"name": "other"}), VersionConflict, "group"),
    ]
    await repo.update("group", group, {"name": "renamed"})  # the group read above is stale now
    before = await store_snapshot(store)
    for last, error, field in refusals:
        with pytest.raises(error, match=field):
            await repo.apply([*first, last])
        assert await store_snapshot(store) == before, error
    with pytest.raises(VersionConflict):
        await repo.apply(first, [Members("client", client.guid, "tokens", ())])  # it has one token
    with pytest.raises(VersionConflict):
        await repo.apply(first, [Unchanged(user), Unchanged(stale_group)])
    await repo.update("user", guid, {"language": "en-US"})
    with pytest.raises(VersionConflict):
        await repo.apply(first)  # the user changed since it was read
    assert (await repo.get("user", guid)).data["username"] == "bob"
    assert await repo.get("bearertoken", token.guid)


@pytest_twisted.ensureDeferred
async def test_a_change_set_sees_what_it_creates_and_removes_itself(repo: Repository, store: Store) -> None:
    role, _, guid = await three_objects(repo)
    client = repo.planned_create("client", {"name": "app", "grant_type": "CLIENT_CREDENTIALS", "ovs_type": "USER",
                                            "user_guid": guid})
    grant = repo.planned_create("roleclient", {"role_guid": role, "client_guid": client.guid},
                                guid=grant_guid("client", client.guid, role))
    saved = await repo.apply([grant, client])  # a grant of a client created in the same set
    assert [s.guid for s in saved if s is not None] == [grant.guid, client.guid]
    assert await repo.reverse_guids("client", client.guid, "roles") == [grant.guid]
    token = await issue_token(repo, client.guid, [role], 60)
    stored = [await repo.get(k, g) for k, g in (("bearertoken", token.guid), ("roleclient", grant.guid),
                                                  ("client", client.guid))]
    with pytest.raises(InvalidValue, match="client_guid"):  # a grant of a client the same set removes
        await repo.apply([*map(Delete, stored), repo.planned_create(
            "roleclient", {"role_guid": role, "client_guid": client.guid})])
    await repo.apply([Delete(stored[2]), Delete(stored[1]), Delete(stored[0])])  # the client with what pointed at it
    for kind, g in (("bearertoken", token.guid), ("roleclient", grant.guid), ("client", client.guid)):
        with pytest.raises(ObjectNotFound):
            await repo.get(kind, g)
    assert await find_token(repo, token.access_token) is None
    password_client = await ensure_password_client(repo, guid)
    assert await repo.reverse_guids("role", role, "clients") == [grant_guid("client", password_client.guid, role)]
    user = await repo.get("user", guid)
    with pytest.raises(ValueError, match="twice"):
        await repo.apply([repo.planned_change(user, {"language": "nl-NL"}), Delete(user)])


@pytest_twisted.ensureDeferred
async def test_deleting_a_user_or_a_client_is_one_write(
    repo: Repository, store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    role, _, guid = await three_objects(repo)
    password_client = await ensure_password_client(repo, guid)
    client, _ = await create_client(repo, guid, "app")
    for holder in (password_client.guid, client.guid, client.guid):
        await issue_token(repo, holder, [role], 60)
    writes = await record_writes(store, monkeypatch)
    await delete_client(repo, client.guid)
    assert writes == ["dal_apply"]
    await delete_user(repo, guid)
    assert writes == ["dal_apply", "dal_apply"]
    monkeypatch.undo()
    for kind in ("user", "client", "roleclient", "bearertoken"):
        assert await repo.guids(kind) == [], kind
    assert await repo.reverse_guids("role", role, "tokens") == []
    assert await repo.reverse_guids("role", role, "clients") == []


# --- a store link cut anywhere -------------------------------------------------------------------------------
class CuttingLink:
    """A TCP proxy to a server that drops every connection (RST) once it forwarded ``budget`` more bytes
    toward the server: a store link lost at a chosen point of a conversation. Plain threads and sockets."""

    def __init__(self, port: int) -> None:
        self.port_to = port
        self.budget: int | None = None
        self.forwarded = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, budget: int | None) -> None:
        with self._lock:
            self.budget = budget

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.port_to), timeout=2)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _drop_all(self) -> None:
        """Reset every open connection (the lock is held)."""
        for sock in self._open:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass
        self._open = []
        self.budget = None

    def _pump(self, source: socket.socket, sink: socket.socket, toward_server: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if toward_server:
                        self.forwarded += len(data)
                    if toward_server and self.budget is not None:
                        allowed = min(len(data), self.budget)
                        self.budget -= allowed
                        sink.sendall(data[:allowed])
                        if self.budget == 0:
                            self._drop_all()
                            return
                    else:
                        sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            self._drop_all()


@pytest.fixture
def tcp_store_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    server = valkey_server(port, tmp_path / "valkey")
    yield port
    server.kill()
    server.wait()


@pytest_twisted.async_yield_fixture
async def linked(tcp_store_port: int, tmp_path: Path) -> AsyncIterator[tuple[CuttingLink, Store]]:
    """(the link, a store client straight to the server)."""
    link = CuttingLink(tcp_store_port)
    direct = await connected_store(f"redis://127.0.0.1:{tcp_store_port}/0", tmp_path / "direct")
    yield link, direct
    await direct.stopService()
    link.close()


async def through(link: CuttingLink, directory: Path) -> Store:
    """A store client of one connection through the link, connected (its handshake is not part of a cut:
    a fresh client connects at once, where one that lost its link waits a randomized back-off)."""
    store = Store(f"redis://127.0.0.1:{link.port}/0", directory, reactor, poolsize=1)
    store.startService()
    await until(lambda: store.available, timeout=5, interval=0.002)
    return store


@pytest_twisted.ensureDeferred
async def test_a_store_link_cut_anywhere_in_a_password_change_leaves_the_old_password_and_tokens_or_the_new_alone(
    linked: tuple[CuttingLink, Store], tmp_path: Path,
) -> None:
    link, direct = linked
    checker = Repository(direct, reactor=reactor)
    role, _, guid = await three_objects(checker)
    holders = [(await ensure_password_client(checker, guid)).guid, (await create_client(checker, guid, "app"))[0].guid]

    async def fresh_tokens() -> list[IssuedToken]:
        return [await issue_token(checker, h, [role], 3600) for h in holders]

    # how many bytes a whole password change sends, to spread the cuts over it
    tokens = await fresh_tokens()
    writer = await through(link, tmp_path)
    start = link.forwarded
    await set_password(Repository(writer, reactor=reactor), guid, "password-0")
    total = link.forwarded - start
    await writer.stopService()
    assert all([await find_token(checker, t.access_token) is None for t in tokens])
    tokens = await fresh_tokens()
    outcomes = []
    cuts = sorted({total * n // 16 for n in range(1, 16)} | {total - 1, total})
    for n, cut in enumerate(cuts, start=1):
        writer = await through(link, tmp_path)
        before = (await checker.get("user", guid)).data["password"]
        link.cut_after(cut)
        try:
            await set_password(Repository(writer, reactor=reactor), guid, f"password-{n}")
        except StoreError:
            pass
        link.cut_after(None)
        await writer.stopService()
        changed = (await checker.get("user", guid)).data["password"] != before
        alive = [await find_token(checker, t.access_token) is not None for t in tokens]
        if changed:
            assert not any(alive), f"cut after {cut} of {total} bytes: the new password with an old token"
            tokens = await fresh_tokens()
        else:
            assert all(alive), f"cut after {cut} of {total} bytes: tokens revoked, the password kept"
        outcomes.append(changed)
    # the cuts fell before the write (nothing changed) and after it (all changed, though the reply was lost)
    assert False in outcomes and True in outcomes, outcomes


@pytest_twisted.ensureDeferred
async def test_an_object_an_earlier_release_stored_with_a_lone_surrogate_can_be_changed_and_deleted(
    repo: Repository, store: Store,
) -> None:
    _, group, _ = await three_objects(repo)
    user = await repo.create("user", {"username": "carol", "password": "h", "group_guid": group})
    raw = await store.execute("GET", keys.obj("user", user.guid))
    # what an earlier release could store: a lone-surrogate escape, which the store's JSON decoder refuses
    await store.execute("SET", keys.obj("user", user.guid), raw.replace('"h"', '"\\ud800"'))
    assert (await repo.get("user", user.guid)).data["password"] == "\ud800"
    changed = await repo.update("user", user.guid, {"password": "repaired"})
    assert changed.version == user.version + 1
    await store.execute("SET", keys.obj("user", user.guid), raw.replace('"h"', '"\\ud800"').replace(
        f'"_version":{user.version}', f'"_version":{changed.version}'))
    await repo.delete("user", user.guid)
    assert await repo.find("user", "username", "carol") is None
    assert user.guid not in await repo.guids("user")
