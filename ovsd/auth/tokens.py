"""Access tokens and client secrets: random, shown once, stored only as their SHA-256.

A leaked store then holds nothing that authenticates: the token or secret a client presents is hashed and
the hash looked up (tokens) or compared in constant time (secrets).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from twisted.logger import Logger

from ovsd.dal.repository import DataObject, Guard, ObjectNotFound, Repository

log = Logger()

#: bytes of randomness in an access token or a client secret (256 bits; 43 URL-safe characters)
SECRET_BYTES = 32


def new_secret(nbytes: int = SECRET_BYTES) -> str:
    """A fresh random token, client secret or password, URL-safe (no quoting needed in a header or a form).

    Never one that starts with "-": an operator pastes it after an option (``ovsctl token --client-secret``),
    and a command line would take it for an option of its own (1 in 64 did).
    """
    while True:
        secret = secrets.token_urlsafe(nbytes)
        if not secret.startswith("-"):
            return secret


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a token or secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_digest: str | None) -> bool:
    """Whether a presented client secret matches the stored digest, in constant time."""
    if not stored_digest:
        return False
    return hmac.compare_digest(digest(secret), stored_digest)


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the only moment its plaintext exists."""

    access_token: str
    expires_in: int
    guid: str
    role_guids: tuple[str, ...]


async def issue_token(
    repository: Repository, client_guid: str, role_guids: Iterable[str], lifetime: int, guards: Sequence[Guard] = (),
) -> IssuedToken:
    """Issue a token for a client carrying these roles, valid for lifetime seconds.

    With guards, only if they still hold when it is stored (VersionConflict otherwise): what the grant
    checked, so that a password change or a revocation that landed meanwhile is not outlived.
    """
    now = repository.now()
    # tokens nobody presents again are never met by the expiry check: clear this client's dead ones here,
    # so what a client leaves behind stays bounded by how many tokens it holds at once
    await purge_expired_tokens(repository, client_guid, now)
    token = new_secret()
    roles = tuple(dict.fromkeys(role_guids))
    planned = repository.planned_create("bearertoken", {
        "access_token": digest(token),
        "expiration": float(now + lifetime),
        "client_guid": client_guid,
        "roles_guids": list(roles),
    })
    created = (await repository.apply([planned], guards))[0]
    assert created is not None
    return IssuedToken(access_token=token, expires_in=int(lifetime), guid=created.guid, role_guids=roles)


async def find_token(repository: Repository, token: str) -> DataObject | None:
    """The stored token object for a presented token, or None (expired ones included)."""
    return await repository.find("bearertoken", "access_token", digest(token))


def is_expired(token: DataObject, now: float) -> bool:
    return float(token.data.get("expiration") or 0.0) <= now


async def remove_token(repository: Repository, guid: str) -> None:
    """Remove one token; one removed concurrently (another call, another node) is just as gone."""
    try:
        await repository.delete("bearertoken", guid)
    except ObjectNotFound:
        pass


async def purge_expired_tokens(repository: Repository, client_guid: str, now: float | None = None) -> int:
    """Remove the expired tokens of one client; returns how many went."""
    now = repository.now() if now is None else now
    guids = await repository.reverse_guids("client", client_guid, "tokens")
    expired = [t.guid for t in await repository.get_many("bearertoken", guids) if is_expired(t, now)]
    for guid in expired:
        await remove_token(repository, guid)
    return len(expired)


async def sweep_expired_tokens(repository: Repository, now: float | None = None) -> int:
    """Remove every expired token of the cluster (tokens nobody presents again would stay forever)."""
    now = repository.now() if now is None else now
    expired = [t.guid for t in await repository.load_all("bearertoken") if is_expired(t, now)]
    for guid in expired:
        await remove_token(repository, guid)
    return len(expired)
