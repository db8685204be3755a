"""What the store keeps of passwords, client secrets and tokens: argon2id and SHA-256, never the plaintext."""

from __future__ import annotations

import hashlib

import pytest
import pytest_twisted

from ovsd.auth.accounts import create_client, create_user
from ovsd.auth.passwords import hash_password, verify_password
from ovsd.auth.tokens import new_secret, secret_matches
from ovsd.dal.grants import role_guids_of
from ovsd.dal.repository import InvalidValue, UniqueConflict
from tests.auth_support import ADMIN_PASSWORD, AuthNode, auth_nodes, node, store_dump

__all__ = ["auth_nodes", "node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_no_plaintext_secret_is_anywhere_in_the_store(node: AuthNode) -> None:
    repo = node.repository
    viewers = await repo.find("group", "name", "viewers")
    assert viewers is not None
    user = await create_user(repo, "pat", "pat-secret-password", viewers.guid)
    client, secret = await create_client(repo, user.guid, "pat's client")
    status, cc, _ = await node.client_credentials(client.guid, secret)
    assert status == 200, cc
    status, pw, _ = await node.password("pat", "pat-secret-password")
    assert status == 200, pw
    status, admin_token, _ = await node.password()
    assert status == 200, admin_token

    dump = await store_dump(node.store)
    for plaintext in (ADMIN_PASSWORD, "pat-secret-password", secret, cc["access_token"], pw["access_token"],
                      admin_token["access_token"]):
        assert plaintext not in dump

    stored_user = await repo.get("user", user.guid)
    assert stored_user.data["password"].startswith("$argon2id$")
    assert (await repo.get("client", client.guid)).data["client_secret"] == hashlib.sha256(secret.encode()).hexdigest()
    digests = {t.data["access_token"] for t in await repo.load_all("bearertoken")}
    assert hashlib.sha256(cc["access_token"].encode()).hexdigest() in digests
    assert hashlib.sha256(pw["access_token"].encode()).hexdigest() in digests


@pytest_twisted.ensureDeferred
async def test_argon2id_hashes_are_salted_and_verify() -> None:
    first, second = await hash_password("same password"), await hash_password("same password")
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second
    assert await verify_password(first, "same password") is True
    assert await verify_password(first, "other password") is False
    assert await verify_password(None, "same password") is False
    assert await verify_password("not a hash", "same password") is False


def test_secret_comparison() -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    assert secret_matches("s3cret", digest)
    assert not secret_matches("s3cret!", digest)
    assert not secret_matches("s3cret", None)


@pytest_twisted.ensureDeferred
async def test_create_user_leaves_no_half_user(node: AuthNode) -> None:
    repo = node.repository
    viewers = await repo.find("group", "name", "viewers")
    assert viewers is not None
    before = sorted(await repo.guids("user")), sorted(await repo.guids("client"))
    with pytest.raises(UniqueConflict):
        await create_user(repo, "admin", "whatever-pw", viewers.guid)
    with pytest.raises(InvalidValue):
        await create_user(repo, "newbie", "", viewers.guid)
    with pytest.raises(InvalidValue):
        await create_user(repo, "newbie", "pw-newbie-1", viewers.guid, language="fr-FR")
    assert (sorted(await repo.guids("user")), sorted(await repo.guids("client"))) == before

    user = await create_user(repo, "newbie", "pw-newbie-1", viewers.guid, language="nl-NL")
    clients = await repo.get_many("client", await repo.reverse_guids("user", user.guid, "clients"))
    assert [(c.data["ovs_type"], c.data["grant_type"], await role_guids_of(repo, "client", c.guid))
            for c in clients] == [("INTERNAL", "PASSWORD", await role_guids_of(repo, "group", viewers.guid))]


def test_no_secret_or_generated_password_starts_with_a_dash() -> None:
    # pasted after an option (`ovsctl token --client-secret …`), a leading "-" is read as an option
    made = [new_secret() for _ in range(3000)] + [new_secret(18) for _ in range(3000)]
    assert not [s for s in made if s.startswith("-")]
    assert len(set(made)) == len(made) and all(len(s) >= 24 for s in made)
