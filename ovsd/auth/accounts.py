"""Users and their OAuth 2 clients: creation (hashed passwords, hashed secrets), secrets, removal.

A user always comes with its INTERNAL/PASSWORD client (what the GUI's password grant uses); a USER client
is an API client with a secret that is shown once. Removing either removes its tokens first, so no token
outlives what it stood for.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.logger import Logger

from ovsd.auth.passwords import hash_password
from ovsd.auth.tokens import digest, new_secret, revoke_client_tokens, revoke_user_tokens
from ovsd.dal import grants
from ovsd.dal.repository import DataObject, InUse, InvalidValue, ObjectNotFound, Repository, UniqueConflict

log = Logger()

#: the name the original gave every user's password-grant client
INTERNAL_CLIENT_NAME = "ovs-internal"


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise InvalidValue("password", "must not be empty")


async def create_user(
    repository: Repository, username: str, password: str, group_guid: str, is_active: bool = True,
    language: str = "en-US",
) -> DataObject:
    """Create a user (password stored as argon2id) and its INTERNAL/PASSWORD client with its group's roles.

    UniqueConflict when the username is taken; ObjectNotFound for an unknown group. A failure while
    creating the client removes the user again, so there is never a user without its client.
    """
    _check_password(password)
    group = await repository.get("group", group_guid)
    if await repository.find("user", "username", username) is not None:
        # refused before hashing: tens of ms of CPU are not spent on a name that is taken (the save
        # below still refuses a name taken meanwhile)
        raise UniqueConflict("user", "username")
    hashed = await hash_password(password)
    user = await repository.create("user", {
        "username": username, "password": hashed, "group_guid": group.guid, "is_active": is_active,
        "language": language,
    })
    try:
        await _password_client(repository, user.guid, group.guid)
    except Exception:
        try:
            await delete_user(repository, user.guid)
        except Exception:
            log.failure("user {username} ({guid}) is left without its password client", username=username,
                        guid=user.guid)
        raise
    log.info("user {username} created ({guid})", username=username, guid=user.guid)
    return user


async def ensure_password_client(repository: Repository, user_guid: str) -> DataObject:
    """The user's INTERNAL/PASSWORD client, created (with the group's roles) when it is missing."""
    user = await repository.get("user", user_guid)
    for client in await repository.get_many("client", await repository.reverse_guids("user", user_guid, "clients")):
        if client.data.get("ovs_type") == "INTERNAL" and client.data.get("grant_type") == "PASSWORD":
            return client
    return await _password_client(repository, user_guid, str(user.data["group_guid"]))


async def _password_client(repository: Repository, user_guid: str, group_guid: str) -> DataObject:
    client = await repository.create("client", {
        "name": INTERNAL_CLIENT_NAME, "grant_type": "PASSWORD", "ovs_type": "INTERNAL", "user_guid": user_guid,
    })
    await _grant_or_remove(repository, client, await grants.role_guids_of(repository, "group", group_guid))
    return client


async def _grant_or_remove(repository: Repository, client: DataObject, role_guids: list[str]) -> None:
    """Grant a new client its roles; a client that could not get them all is removed again (no client with
    half its roles stays behind)."""
    try:
        await grants.set_roles(repository, "client", client.guid, role_guids)
    except Exception:
        try:
            await delete_client(repository, client.guid)
        except Exception:
            log.failure("client {client} is left with part of its roles", client=client.guid)
        raise


async def create_client(
    repository: Repository, user_guid: str, name: str, role_guids: Iterable[str] | None = None,
) -> tuple[DataObject, str]:
    """Create a USER (client_credentials) client; returns it and its secret, which is not kept anywhere.

    Its roles are the requested ones that the user's group holds (all of the group's when None).
    """
    user = await repository.get("user", user_guid)
    held = await grants.role_guids_of(repository, "group", str(user.data["group_guid"]))
    roles = held if role_guids is None else [g for g in dict.fromkeys(role_guids) if g in held]
    secret = new_secret()
    client = await repository.create("client", {
        "name": name, "client_secret": digest(secret), "grant_type": "CLIENT_CREDENTIALS", "ovs_type": "USER",
        "user_guid": user_guid,
    })
    await _grant_or_remove(repository, client, roles)
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
    """Store a new password for a user and revoke every token of that user."""
    _check_password(password)
    await repository.get("user", user_guid)
    hashed = await hash_password(password)
    user = await repository.update("user", user_guid, {"password": hashed})
    await revoke_user_tokens(repository, user_guid)
    return user


async def follow_group(repository: Repository, user_guid: str) -> None:
    """Bring a user's clients in line with its (changed) group and revoke the user's tokens.

    The password client gets exactly the group's roles; an API client keeps only those of its roles the
    group holds. Tokens carry the roles of their issue, so every token of the user goes: a user moved
    out of administrators must not keep manage until its tokens expire.
    """
    user = await repository.get("user", user_guid)
    group = await repository.get("group", str(user.data["group_guid"]))
    held = await grants.role_guids_of(repository, "group", group.guid)
    for client in await repository.get_many("client", await repository.reverse_guids("user", user_guid, "clients")):
        current = await grants.role_guids_of(repository, "client", client.guid)
        if client.data.get("ovs_type") == "INTERNAL" and client.data.get("grant_type") == "PASSWORD":
            roles = held
        else:
            roles = [r for r in current if r in held]
        if sorted(roles) != current:
            await grants.set_roles(repository, "client", client.guid, roles)
    revoked = await revoke_user_tokens(repository, user_guid)
    log.info("user {guid} moved to group {group}; {count} token(s) revoked", guid=user_guid,
             group=group.data.get("name"), count=revoked)


async def delete_client(repository: Repository, client_guid: str) -> None:
    """Remove a client, its role grants and its tokens."""
    for _ in range(3):
        await revoke_client_tokens(repository, client_guid)
        await grants.revoke_all(repository, "client", client_guid)
        try:
            await repository.delete("client", client_guid)
            return
        except InUse:
            continue  # a token was issued (or a role granted) in between: revoke that one too
    await revoke_client_tokens(repository, client_guid)
    await grants.revoke_all(repository, "client", client_guid)
    await repository.delete("client", client_guid)


async def delete_user(repository: Repository, user_guid: str) -> None:
    """Remove a user, its clients and their tokens."""
    for client_guid in await repository.reverse_guids("user", user_guid, "clients"):
        try:
            await delete_client(repository, client_guid)
        except ObjectNotFound:
            pass
    await repository.delete("user", user_guid)
