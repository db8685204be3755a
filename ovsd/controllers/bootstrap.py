"""First start of a cluster: the roles, groups, Default branding and the admin user with its client.

Idempotent and safe when several nodes start at once on one store: a lock key (SET NX with expiry)
serialises the nodes, and each step only creates what is missing, so a second run (or a run after a
crash half-way) completes the set without duplicating anything.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from ovsd.auth.accounts import create_client, create_user, ensure_password_client, regenerate_secret
from ovsd.auth.tokens import new_secret
from ovsd.config import Config
from ovsd.dal import grants
from ovsd.dal.migrations import upgrade
from ovsd.dal.repository import DataObject, Repository, UniqueConflict
from ovsd.store import keys
from ovsd.store.scripts import load_lua

__all__ = ["bootstrap", "create_client", "create_user", "regenerate_secret"]

log = Logger()

ROLES = (
    ("read", "Read", "Can read objects"),
    ("write", "Write", "Can write objects"),
    ("manage", "Manage", "Can manage the system"),
)
GROUPS = (
    ("administrators", "Administrators", ("read", "write", "manage")),
    ("viewers", "Viewers", ("read",)),
)
DEFAULT_BRANDING = {
    "name": "Default",
    "productname": "Open vStorage",
    "css": "bootstrap-default.min.css",
    "description": "Default bootstrap theme",
    "is_default": True,
}
ADMIN_USERNAME = "admin"
ADMIN_GROUP = "administrators"
PASSWORD_FILE = "admin-password"  # noqa: S105 - a file name, not a password

#: how long a node may hold the bootstrap lock: far more than bootstrap takes, and a node that died
#: holding it delays the others by at most this
LOCK_SECONDS = 30
LOCK_POLL = 0.05

# delete the lock only if it is still ours (it may have expired and been taken by another node)
_RELEASE = load_lua("lock_release")


async def bootstrap(repository: Repository, config: Config) -> None:
    """Migrate the store to this ovsd's schema, then create whatever of the initial model is missing (nothing
    when everything exists). SchemaTooNew when the store was written by a newer ovsd."""
    await upgrade(repository)
    store = repository.store
    owner = uuid.uuid4().hex
    while await store.execute("SET", keys.bootstrap_lock(), owner, "NX", "EX", LOCK_SECONDS) is None:
        # another node is bootstrapping: wait for it, then find its work done and skip it
        await deferLater(repository.reactor, LOCK_POLL, lambda: None)
    try:
        roles = {code: await _ensure_role(repository, code, name, description) for code, name, description in ROLES}
        groups = {
            name: await _ensure_group(repository, name, description, [roles[c].guid for c in codes])
            for name, description, codes in GROUPS
        }
        await _ensure_branding(repository)
        await _ensure_admin(repository, config, groups[ADMIN_GROUP])
    finally:
        await store.script(_RELEASE, [keys.bootstrap_lock()], [owner])


async def _ensure_role(repository: Repository, code: str, name: str, description: str) -> DataObject:
    existing = await repository.find("role", "code", code)
    if existing is not None:
        return existing
    try:
        role = await repository.create("role", {"code": code, "name": name, "description": description})
    except UniqueConflict:
        # created by a node that ran without the lock (it expired under it): theirs is as good as ours
        found = await repository.find("role", "code", code)
        assert found is not None
        return found
    log.info("role {code} created", code=code)
    return role


async def _ensure_group(repository: Repository, name: str, description: str, role_guids: list[str]) -> DataObject:
    group = await repository.find("group", "name", name)
    if group is None:
        try:
            group = await repository.create("group", {"name": name, "description": description})
            log.info("group {name} created", name=name)
        except UniqueConflict:
            group = await repository.find("group", "name", name)
            assert group is not None
    # a start that stopped between the group and its grants left some out: grant whatever is missing
    # (granting a role the group holds changes nothing)
    for role_guid in role_guids:
        await grants.grant(repository, "group", group.guid, role_guid)
    return group


async def _ensure_branding(repository: Repository) -> None:
    if any(b.data.get("name") == DEFAULT_BRANDING["name"] for b in await repository.load_all("branding")):
        return
    await repository.create("branding", dict(DEFAULT_BRANDING))
    log.info("branding {name} created", name=DEFAULT_BRANDING["name"])


async def _ensure_admin(repository: Repository, config: Config, group: DataObject) -> None:
    existing = await repository.find("user", "username", ADMIN_USERNAME)
    if existing is not None:
        await ensure_password_client(repository, existing.guid)
        return
    password = config.auth.admin_password
    if not password:
        path = config.node.data_dir / PASSWORD_FILE
        password, created = await deferToThread(_password_file, path)
        # the path, never the password: log lines end up in journals and log collectors
        if created:
            log.info("generated the admin password; it is in {path} (mode 0600)", path=str(path))
        else:
            log.info("admin password taken from {path}", path=str(path))
    try:
        await create_user(repository, ADMIN_USERNAME, password, group.guid)
    except UniqueConflict:
        pass  # another node created admin meanwhile


def _password_file(path: Path) -> tuple[str, bool]:
    """(password, created): a new random password written to path (0600), or the one an earlier start wrote.

    O_EXCL makes creation and the mode one step: the file never exists with looser permissions, and two
    processes can never both think they wrote it.
    """
    password = new_secret(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # an earlier start generated it but stopped before the admin user was stored: keep its promise
        existing = path.read_text().strip()
        if existing:
            os.chmod(path, 0o600)  # whoever left it there, it holds a password
            return existing, False
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, True

