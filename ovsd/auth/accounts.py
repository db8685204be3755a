"""Users and their OAuth 2 clients: creation (hashed passwords, hashed secrets), secrets, removal.

A user always comes with its INTERNAL/PASSWORD client (what the GUI's password grant uses); a USER client
is an API client with a secret that is shown once. Every write here that spans objects is one change set
(``Repository.apply``): a user lands with its client and the client's role grants; a new password lands
with the revocation of every token of the user; a group change with its clients' new grants and that
revocation; a removal with the tokens and grants of what it removes. Each is planned from one read and
guarded by what it read (a token issued, a client created meanwhile makes it read and plan again), so none
stops halfway, whatever happens to the process or the store link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from twisted.logger import Logger

from ovsd.auth.passwords import hash_password
from ovsd.auth.tokens import digest, new_secret
from ovsd.dal import grants
from ovsd.dal.repository import (
    MAX_UPDATE_ATTEMPTS,
    DataObject,
    Delete,
    Guard,
    InvalidValue,
    Members,
    Operation,
    Repository,
    Unchanged,
    UniqueConflict,
    VersionConflict,
)

log = Logger()

#: the name the original gave every user's password-grant client
INTERNAL_CLIENT_NAME = "ovs-internal"


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise InvalidValue("password", "must not be empty")


def _is_password_client(client: DataObject) -> bool:
    return client.data.get("ovs_type") == "INTERNAL" and client.data.get("grant_type") == "PASSWORD"


@dataclass(frozen=True)
class _Holdings:
    """Clients as read with their tokens and role grants, and the guards that the set planned from them needs."""

    clients: list[DataObject]
    tokens: list[DataObject]
    grants: dict[str, list[DataObject]]  # client guid -> its RoleClient junctions
    guards: list[Guard]

    def removal(self) -> list[Operation]:
        """Deleting the clients with everything that points at them."""
        junctions = [j for js in self.grants.values() for j in js]
        return [*map(Delete, self.tokens), *map(Delete, junctions), *map(Delete, self.clients)]


async def _holdings(repository: Repository, clients: list[DataObject]) -> _Holdings:
    sides = await repository.sides("client", clients, ("tokens", "roles"), ())
    token_guids = [g for side in sides.reverse for g in side["tokens"]]
    junction_guids = [g for side in sides.reverse for g in side["roles"]]
    tokens = await repository.get_many("bearertoken", token_guids)
    junctions = await repository.get_many("roleclient", junction_guids)
    guards: list[Guard] = []
    held: dict[str, list[DataObject]] = {}
    for client, side in zip(clients, sides.reverse, strict=True):
        guards.append(Members("client", client.guid, "tokens", tuple(side["tokens"])))
        guards.append(Members("client", client.guid, "roles", tuple(side["roles"])))
        held[client.guid] = [j for j in junctions if j.data.get("client_guid") == client.guid]
    return _Holdings(clients, tokens, held, guards)


async def _user_holdings(repository: Repository, user_guid: str) -> tuple[DataObject, _Holdings]:
    """A user and its clients (with their tokens and grants), guarded against a client added or removed."""
    user, sides = await repository.get_with("user", user_guid, ("clients",))
    client_guids = sides.reverse[0]["clients"]
    held = await _holdings(repository, await repository.get_many("client", client_guids))
    held.guards.append(Members("user", user_guid, "clients", tuple(client_guids)))
    return user, held


async def _group_roles(repository: Repository, group_guid: str) -> tuple[list[str], Guard]:
    """The role guids a group holds (sorted), and the guard that they still are when the set lands."""
    junctions = await repository.reverse_guids("group", group_guid, "roles")
    roles = sorted({str(j.data["role_guid"]) for j in await repository.get_many("rolegroup", junctions)})
    return roles, Members("group", group_guid, "roles", tuple(junctions))


def _new_client(
    repository: Repository, values: Mapping[str, object], role_guids: Iterable[str],
) -> list[Operation]:
    """A client's creation and its role grants (the client first)."""
    client = repository.planned_create("client", values)
    return [client, *grants.planned_roles(repository, "client", client.guid, [], role_guids)]


Plan = Callable[[], Awaitable[tuple[list[Operation], list[Guard]]]]


async def _apply_fresh(repository: Repository, what: str, plan: Plan) -> list[DataObject | None]:
    """Read and plan (``plan``), then apply, until the set lands on what was read."""
    for _ in range(MAX_UPDATE_ATTEMPTS):
        operations, guards = await plan()
        if not operations:
            return []
        try:
            return await repository.apply(operations, guards)
        except VersionConflict:
            continue  # something the plan was read from changed: read and plan again
    raise VersionConflict(f"{what} kept changing; gave up after {MAX_UPDATE_ATTEMPTS} attempts")


async def create_user(
    repository: Repository, username: str, password: str, group_guid: str, is_active: bool = True,
    language: str = "en-US",
) -> DataObject:
    """Create a user (password stored as argon2id) and its INTERNAL/PASSWORD client with its group's roles.

    UniqueConflict when the username is taken; ObjectNotFound for an unknown group. The user, its client
    and the client's grants are stored together or not at all.
    """
    _check_password(password)
    group = await repository.get("group", group_guid)
    if await repository.find("user", "username", username) is not None:
        # refused before hashing: tens of ms of CPU are not spent on a name that is taken (the change set
        # below still refuses a name taken meanwhile)
        raise UniqueConflict("user", "username")
    hashed = await hash_password(password)

    async def plan() -> tuple[list[Operation], list[Guard]]:
        roles, guard = await _group_roles(repository, group.guid)
        user = repository.planned_create("user", {
            "username": username, "password": hashed, "group_guid": group.guid, "is_active": is_active,
            "language": language,
        })
        client = _new_client(repository, _password_client_values(user.guid), roles)
        return [user, *client], [guard]

    user = (await _apply_fresh(repository, f"group {group.guid}", plan))[0]
    assert user is not None
    log.info("user {username} created ({guid})", username=username, guid=user.guid)
    return user


def _password_client_values(user_guid: str) -> dict[str, object]:
    return {"name": INTERNAL_CLIENT_NAME, "grant_type": "PASSWORD", "ovs_type": "INTERNAL", "user_guid": user_guid}


async def ensure_password_client(repository: Repository, user_guid: str) -> DataObject:
    """The user's INTERNAL/PASSWORD client, created (with the group's roles) when it is missing."""
    for _ in range(MAX_UPDATE_ATTEMPTS):
        user, sides = await repository.get_with("user", user_guid, ("clients",))
        client_guids = sides.reverse[0]["clients"]
        for client in await repository.get_many("client", client_guids):
            if _is_password_client(client):
                return client
        roles, guard = await _group_roles(repository, str(user.data["group_guid"]))
        try:
            # guarded by the user's clients: two nodes ensuring it at once create one password client, not two
            created = await repository.apply(
                _new_client(repository, _password_client_values(user_guid), roles),
                [guard, Unchanged(user), Members("user", user_guid, "clients", tuple(client_guids))],
            )
        except VersionConflict:
            continue
        assert created[0] is not None
        return created[0]
    raise VersionConflict(f"user {user_guid} kept changing; gave up ensuring its password client")


async def create_client(
    repository: Repository, user_guid: str, name: str, role_guids: Iterable[str] | None = None,
) -> tuple[DataObject, str]:
    """Create a USER (client_credentials) client; returns it and its secret, which is not kept anywhere.

    Its roles are the requested ones that the user's group holds (all of the group's when None); the client
    and its grants are stored together.
    """
    requested = None if role_guids is None else list(dict.fromkeys(role_guids))
    secret = new_secret()

    async def plan() -> tuple[list[Operation], list[Guard]]:
        user = await repository.get("user", user_guid)
        held, guard = await _group_roles(repository, str(user.data["group_guid"]))
        roles = held if requested is None else [g for g in requested if g in held]
        values = {"name": name, "client_secret": digest(secret), "grant_type": "CLIENT_CREDENTIALS",
                  "ovs_type": "USER", "user_guid": user_guid}
        return _new_client(repository, values, roles), [guard, Unchanged(user)]

    client = (await _apply_fresh(repository, f"user {user_guid}", plan))[0]
    assert client is not None
    log.info("client {client} created for user {user}", client=client.guid, user=user_guid)
    return client, secret


async def regenerate_secret(repository: Repository, client_guid: str) -> str:
    """Give a client a new secret and return it (the old one stops working at once)."""
    await repository.get("client", client_guid)
    secret = new_secret()
    await repository.update("client", client_guid, {"client_secret": digest(secret)})
    log.info("secret of client {client} regenerated", client=client_guid)
    return secret


async def set_password(repository: Repository, user_guid: str, password: str) -> DataObject:
    """Store a new password for a user and revoke every token of that user, in one change set.

    Never the new password with an old token left: a token issued while this was planned makes it plan again.
    """
    _check_password(password)
    await repository.get("user", user_guid)
    hashed = await hash_password(password)
    revoked: list[int] = []

    async def plan() -> tuple[list[Operation], list[Guard]]:
        user, held = await _user_holdings(repository, user_guid)
        revoked[:] = [len(held.tokens)]
        return [repository.planned_change(user, {"password": hashed}), *map(Delete, held.tokens)], held.guards

    user = (await _apply_fresh(repository, f"user {user_guid}", plan))[0]
    assert user is not None
    log.info("password of user {guid} set; {count} token(s) revoked", guid=user_guid, count=revoked[0])
    return user


def _follow(repository: Repository, held: _Holdings, group_roles: list[str]) -> list[Operation]:
    """Bring clients in line with a group's roles and revoke their tokens.

    The password client gets exactly the group's roles; an API client keeps only those of its roles the
    group holds. Tokens carry the roles of their issue, so every token goes: a user moved out of
    administrators must not keep manage until its tokens expire.
    """
    ops: list[Operation] = []
    for client in held.clients:
        current = held.grants[client.guid]
        if _is_password_client(client):
            roles = group_roles
        else:
            roles = [str(j.data["role_guid"]) for j in current if j.data["role_guid"] in group_roles]
        ops.extend(grants.planned_roles(repository, "client", client.guid, current, roles))
    ops.extend(map(Delete, held.tokens))
    return ops


async def change_user(repository: Repository, user_guid: str, changes: Mapping[str, object]) -> DataObject:
    """Apply a user PATCH that moves it to another group: the user, its clients' grants brought in line with
    the new group and the revocation of its tokens, in one change set. Errors are those of an update."""
    revoked: list[int] = []

    async def plan() -> tuple[list[Operation], list[Guard]]:
        user, held = await _user_holdings(repository, user_guid)
        save = repository.planned_change(user, changes)
        group_roles, guard = await _group_roles(repository, str(save.data["group_guid"]))
        revoked[:] = [len(held.tokens)]
        return [save, *_follow(repository, held, group_roles)], [*held.guards, guard]

    user = (await _apply_fresh(repository, f"user {user_guid}", plan))[0]
    assert user is not None
    log.info("user {guid} moved to group {group}; {count} token(s) revoked", guid=user_guid,
             group=user.data.get("group_guid"), count=revoked[0])
    return user


async def follow_group(repository: Repository, user_guid: str) -> None:
    """Bring a user's clients in line with its group and revoke the user's tokens, in one change set."""

    async def plan() -> tuple[list[Operation], list[Guard]]:
        user, held = await _user_holdings(repository, user_guid)
        group_roles, guard = await _group_roles(repository, str(user.data["group_guid"]))
        return _follow(repository, held, group_roles), [*held.guards, guard, Unchanged(user)]

    await _apply_fresh(repository, f"user {user_guid}", plan)


async def delete_client(repository: Repository, client_guid: str) -> None:
    """Remove a client with its role grants and its tokens, in one change set."""

    async def plan() -> tuple[list[Operation], list[Guard]]:
        client = await repository.get("client", client_guid)
        held = await _holdings(repository, [client])
        return held.removal(), held.guards

    await _apply_fresh(repository, f"client {client_guid}", plan)
    log.debug("client {client} deleted", client=client_guid)


async def delete_user(repository: Repository, user_guid: str) -> None:
    """Remove a user with its clients, their grants and their tokens, in one change set."""

    async def plan() -> tuple[list[Operation], list[Guard]]:
        user, held = await _user_holdings(repository, user_guid)
        return [*held.removal(), Delete(user)], held.guards

    await _apply_fresh(repository, f"user {user_guid}", plan)
    log.info("user {guid} deleted", guid=user_guid)
