"""The store's schema version, and the migrations that bring a store written by an earlier ovsd up to it.

They run at start, before bootstrap, on whichever node gets the schema lock first; the other nodes wait for
it and then find nothing to do. Each step is safe to run again after a crash half-way (the version moves
only once a step is complete), and a store whose version is higher than this ovsd knows is refused: an
older ovsd would misread it, and perhaps write it back wrong.

Schema versions:

- 0: role grants are lists of role guids on the client, group (``roles_guids``) with reverse indexes
  ``rel:client:roles:<role>`` and ``rel:group:roles:<role>``.
- 1: role grants are junction objects (RoleClient, RoleGroup) as in the original (contract §6).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

from twisted.internet.task import deferLater
from twisted.logger import Logger

from ovsd.dal import grants
from ovsd.dal.repository import InvalidValue, Repository
from ovsd.store import keys
from ovsd.store.scripts import load_lua

log = Logger()

#: the schema this ovsd reads and writes
SCHEMA_VERSION = 1
#: how long the migrating node holds the lock without renewing it (it renews after each object); a node
#: that died holding it delays the others by at most this
LOCK_MS = 30_000
LOCK_POLL = 0.05

_RELEASE = load_lua("lock_release")
_RENEW = load_lua("lock_renew")
# replace a stored document only if it is still the one read (compare-and-set on the whole text)
_SWAP = load_lua("swap")
# the schema version moves only from the version the step started at
_ADVANCE = load_lua("schema_advance")


class SchemaTooNew(Exception):
    """The store was written by a newer ovsd: refusing to read (and perhaps damage) what it wrote."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the store has schema version {found}, written by a newer ovsd; this ovsd knows schema versions up "
            f"to {SCHEMA_VERSION} and will not use it (upgrade this node's ovsd)")
        self.found = found


async def schema_version(repository: Repository) -> int:
    raw = await repository.store.execute("GET", keys.SCHEMA_VERSION)
    return 0 if raw is None else int(raw)


async def upgrade(repository: Repository) -> None:
    """Bring the store to SCHEMA_VERSION (once, whatever number of nodes start together); SchemaTooNew for a
    store from a newer ovsd."""
    version = await schema_version(repository)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(version)
    if version == SCHEMA_VERSION:
        return
    store = repository.store
    owner = uuid.uuid4().hex
    while await store.execute("SET", keys.SCHEMA_LOCK, owner, "NX", "PX", LOCK_MS) is None:
        await deferLater(repository.reactor, LOCK_POLL, lambda: None)
        if await schema_version(repository) >= SCHEMA_VERSION:
            return await upgrade(repository)  # another node migrated it (or a newer one wrote it): check again

    async def keep() -> None:
        await store.script(_RENEW, [keys.SCHEMA_LOCK], [owner, LOCK_MS])

    try:
        version = await schema_version(repository)  # under the lock: what the last holder left
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(version)
        while version < SCHEMA_VERSION:
            log.info("migrating the store from schema {old} to {new}", old=version, new=version + 1)
            await STEPS[version](repository, keep)
            reached = int(await store.script(_ADVANCE, [keys.SCHEMA_VERSION], [version, version + 1]))
            if reached != version + 1:
                raise RuntimeError(f"the store's schema version moved to {reached} during a migration")
            log.info("the store is at schema {version}", version=reached)
            version = reached
    finally:
        await store.script(_RELEASE, [keys.SCHEMA_LOCK], [owner])


async def _role_grants_as_junctions(repository: Repository, keep: Callable[[], Awaitable[None]]) -> None:
    """0 -> 1: every role a group or client lists becomes a junction; the list and its index go."""
    store = repository.store
    moved = 0
    for kind in ("group", "client"):
        for guid in await repository.guids(kind):
            moved += await _move_grants(repository, kind, guid)
            await keep()
    role_guids = await repository.guids("role")
    old_indexes = [keys.reverse(kind, "roles", role) for kind in ("group", "client") for role in role_guids]
    if old_indexes:
        await store.execute("DEL", *old_indexes)
    log.info("{count} role grant(s) of groups and clients are junction objects now", count=moved)


async def _move_grants(repository: Repository, kind: str, guid: str) -> int:
    """One group's or client's role list turned into junctions, then taken off its document."""
    store = repository.store
    key = keys.obj(kind, guid)
    while True:
        raw = await store.execute("GET", key)
        if raw is None:
            return 0  # deleted meanwhile
        document = json.loads(raw)
        if "roles_guids" not in document:
            return 0  # moved by an earlier run
        granted = 0
        for role_guid in document["roles_guids"] or []:
            try:
                await grants.grant(repository, kind, guid, str(role_guid))
                granted += 1
            except InvalidValue:
                # the list named a role that no longer exists: there is nothing to grant
                log.warn("{kind} {guid} listed role {role}, which does not exist; dropped", kind=kind, guid=guid,
                         role=role_guid)
        del document["roles_guids"]
        document["_version"] = int(document.get("_version", 0)) + 1
        if await store.script(_SWAP, [key], [raw, json.dumps(document, separators=(",", ":"))]):
            return granted
        # the document changed while its grants were made: do it again on the new text (grants are idempotent)


STEPS: dict[int, Callable[[Repository, Callable[[], Awaitable[None]]], Awaitable[None]]] = {
    0: _role_grants_as_junctions,
}
