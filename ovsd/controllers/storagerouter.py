"""StorageRouters: the actions only the node itself can answer, run as tasks on the StorageRouter they name.

A view asks :func:`run_on_storagerouter`; the task is queued on that node's stream and run by its worker,
so the mountpoints, addresses, files and versions in a result are those of that node. A node that is
down refuses at once (``NodeUnavailable``, API 503 node_unavailable) instead of leaving the task waiting.
File and /proc work runs in the reactor's thread pool; nothing here blocks the reactor.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import os
import platform
import re
from pathlib import Path
from typing import Any

from twisted.internet import threads
from twisted.logger import Logger

from ovsd.context import NodeContext
from ovsd.controllers.s3probe import s3_reachable
from ovsd.dal.repository import Repository
from ovsd.tasks import Route, TaskContext, task

log = Logger()

#: where a bare name given to check_mtpt lives (the original checked /mnt/<name>)
MOUNT_ROOT = Path("/mnt")
#: mounts of the kernel's own filesystems and the root: never a place for a vPool
PSEUDO_MOUNT_ROOTS = ("/proc", "/sys", "/dev", "/run")
#: the packages whose versions get_version_info reports (distribution names)
PACKAGES = ("ovsd", "twisted", "klein", "hiredis", "treq", "cryptography")
#: how long a check_s3 request may take (connect, answer and body)
S3_TIMEOUT = 10.0

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


# --- what the views call -------------------------------------------------------------------------------------
async def available_actions(repo: Repository, guid: str) -> list[str]:
    """The actions a StorageRouter offers now: MOVE_AWAY when another StorageRouter could take its vDisks."""
    await repo.get("storagerouter", guid)  # ObjectNotFound for an unknown one
    others = [g for g in await repo.guids("storagerouter") if g != guid]
    return ["MOVE_AWAY"] if others else []


async def run_on_storagerouter(context: NodeContext, guid: str, name: str, kwargs: dict[str, Any]) -> str:
    """Queue the task ``name`` on the node of StorageRouter ``guid``; its task id.

    ObjectNotFound for an unknown StorageRouter, NodeUnavailable when its node is down.
    """
    router = await context.repository.get("storagerouter", guid)
    return await context.tasks.enqueue(name, {**kwargs, "storagerouter_guid": guid},
                                       node=str(router.data["machine_id"]))


# --- the node's own facts (run in a thread) ------------------------------------------------------------------
def mount_table(path: Path = Path("/proc/self/mounts")) -> list[str]:
    """Every mountpoint of this process's mount namespace, in mount order (a path mounted twice once)."""
    seen: dict[str, None] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            # the kernel writes a space in a path as \040 (and tab, newline, backslash likewise)
            seen[_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[1])] = None
    return list(seen)


def vpool_mountpoints(mounts: list[str]) -> list[str]:
    """The mountpoints a vPool could use: not the root, not the kernel's own (/proc, /sys, /dev, /run)."""
    return [m for m in mounts if m != "/" and not any(m == p or m.startswith(p + "/") for p in PSEUDO_MOUNT_ROOTS)]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []  # no IPv6 (or no IPv4) in this kernel: no addresses of that family


def _ipv4_addresses(fib_trie: Path) -> list[str]:
    """The local IPv4 addresses in the kernel's routing trie: each ``|-- a.b.c.d`` followed by ``/32 host LOCAL``."""
    found: list[str] = []
    candidate = None
    for line in _lines(fib_trie):
        text = line.strip()
        if text.startswith("|-- "):
            candidate = text[4:]
        elif text.startswith("/32 host LOCAL") and candidate is not None:
            if not candidate.startswith("127.") and candidate not in found:
                found.append(candidate)
    return sorted(found, key=lambda a: tuple(int(p) for p in a.split(".")))


def _ipv6_addresses(if_inet6: Path) -> list[str]:
    """The global IPv6 addresses of the interfaces (rows: address in hex, index, prefix, scope, flags, name)."""
    found: list[str] = []
    for row in _lines(if_inet6):
        fields = row.split()
        if len(fields) < 6 or fields[3] != "00":  # scope 00 is global (20 link, 10 host)
            continue
        address = str(ipaddress.IPv6Address(":".join(fields[0][i:i + 4] for i in range(0, 32, 4))))
        if address not in found:
            found.append(address)
    return found


def local_addresses(fib_trie: Path = Path("/proc/net/fib_trie"), if_inet6: Path = Path("/proc/net/if_inet6"),
                    ) -> list[str]:
    """This node's addresses on its interfaces: IPv4 then global IPv6, without loopback or link-local ones."""
    return _ipv4_addresses(fib_trie) + _ipv6_addresses(if_inet6)


def files_exist(files: list[str]) -> dict[str, bool]:
    return {f: os.path.exists(f) for f in files}


def mountpoint_path(name: str) -> Path:
    """The path check_mtpt looks at: an absolute path as given, a bare name under /mnt."""
    path = Path(name)
    return path if path.is_absolute() else MOUNT_ROOT / path


def free_mountpoint(path: Path, mounts: list[str]) -> bool:
    """True when a vPool may mount at ``path``: nothing is there yet, or an empty directory that is mounted."""
    if not os.path.lexists(path):
        return True
    mounted = str(path) in mounts or str(path.resolve()) in mounts
    if not mounted or not path.is_dir():
        return False
    return not any(path.iterdir())


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def server_version(info: str) -> dict[str, str]:
    """The store server's name and version from its INFO text (Valkey also reports a redis_version)."""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line and not line.startswith("#"))
    for name in ("valkey", "redis"):
        version = fields.get(f"{name}_version")
        if version:
            return {f"{name}-server": version.strip()}
    return {}


# --- the tasks -----------------------------------------------------------------------------------------------
def _in_thread(ctx: TaskContext, function: Any, *args: Any) -> Any:
    reactor = ctx.node.reactor
    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)


def _this_node(ctx: TaskContext) -> dict[str, Any]:
    """Who ran the task: this node's name and machine_id (a caller can tell which node answered)."""
    node = ctx.node.config.node
    return {"name": node.name, "machine_id": node.machine_id}


@task(name="storagerouter.get_physical_metadata", route=Route.STORAGEROUTER, idempotent=True, timeout=60)
async def get_physical_metadata(ctx: TaskContext, storagerouter_guid: str, files: list[str] | None = None,
                                ) -> dict[str, Any]:
    """Mountpoints, addresses and file existence on this node.

    ``allow_vpool`` says whether this StorageRouter may serve (another) vPool. Nothing on a node forbids
    it until the data plane brings its own limits, so it is true.
    """
    mounts = await _in_thread(ctx, mount_table)
    addresses = await _in_thread(ctx, local_addresses)
    existing = await _in_thread(ctx, files_exist, list(files or []))
    return {"storagerouter_guid": storagerouter_guid, **_this_node(ctx), "mountpoints": vpool_mountpoints(mounts),
            "ipaddresses": addresses, "files": existing, "allow_vpool": True}


@task(name="storagerouter.get_version_info", route=Route.STORAGEROUTER, idempotent=True, timeout=30)
async def get_version_info(ctx: TaskContext, storagerouter_guid: str) -> dict[str, Any]:
    """Versions of ovsd, its key dependencies and the store server, as installed on this node."""
    versions = await _in_thread(ctx, package_versions)
    versions.update(server_version(str(await ctx.node.store.execute("INFO", "server"))))
    return {"storagerouter_guid": storagerouter_guid, **_this_node(ctx), "versions": versions}


@task(name="storagerouter.check_mtpt", route=Route.STORAGEROUTER, idempotent=True, timeout=30)
async def check_mtpt(ctx: TaskContext, storagerouter_guid: str, name: str) -> bool:
    """Whether a vPool may mount at ``name`` on this node (missing, or an empty mounted directory)."""
    path = mountpoint_path(name)
    mounts = await _in_thread(ctx, mount_table)
    return bool(await _in_thread(ctx, free_mountpoint, path, mounts))


@task(name="storagerouter.check_s3", route=Route.STORAGEROUTER, idempotent=True, timeout=30)
async def check_s3(ctx: TaskContext, storagerouter_guid: str, host: str, port: int, accesskey: str,
                   secretkey: str) -> bool:
    """Whether this node reaches an S3 endpoint and it accepts the keys (a signed ListBuckets answers 2xx)."""
    return await s3_reachable(ctx.node.reactor, host, port, accesskey, secretkey, timeout=S3_TIMEOUT)
