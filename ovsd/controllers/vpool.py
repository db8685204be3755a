"""vPools: add a vPool to a node (or extend one), shrink it, remove StorageDrivers, the status lifecycle.

``add_vpool`` runs on the node that gets the StorageDriver (a task routed there): it checks that node has
the QEMU programs, creates or extends the vPool (status INSTALLING / EXTENDING), the StorageDriver
(``storagedriver_id = <vpool name><machine_id>`` as the original), its directories, starts its
qemu-storage-daemon through the agent and waits until it is RUNNING (every vDisk replayed), then the
vPool is RUNNING. On any failure what it made is undone (driver, directories, a new vPool) and the vPool
change is announced as FAILURE with the reason. Each status change is an EVENT ``vpool_status_changed``.

Backends: LOCAL (images in ``mountpoint_bfs`` on that node) and DISTRIBUTED (images in a directory every
StorageRouter of the vPool sees at the same path, so any of its drivers can open a vDisk without a copy).
The S3 types have no block backend here: the view refuses them.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from twisted.internet import threads
from twisted.logger import Logger

from ovsd.context import NodeContext
from ovsd.dal.repository import DataObject, Repository
from ovsd.messages import publish_event
from ovsd.storage.node import BLOCK_TYPES
from ovsd.tasks import FAILURE, Route, TaskContext, task

log = Logger()

#: the seed's add_vpool call_parameters, in its order (mountpoint_readcache2 may be left out: '')
CALL_PARAMETERS = (
    "vpool_name", "type", "connection_host", "connection_port", "connection_timeout", "connection_username",
    "connection_password", "mountpoint_temp", "mountpoint_bfs", "mountpoint_md", "mountpoint_readcache1",
    "mountpoint_readcache2", "mountpoint_writecache", "mountpoint_foc", "storage_ip", "vrouter_port",
)
MOUNTPOINTS = ("mountpoint_temp", "mountpoint_bfs", "mountpoint_md", "mountpoint_readcache1",
               "mountpoint_readcache2", "mountpoint_writecache", "mountpoint_foc")
VPOOL_NAME = re.compile(r"[0-9a-zA-Z]+(-+[0-9a-zA-Z]+)*")
S3_TYPES = ("CEPH_S3", "AMAZON_S3", "SWIFT_S3")
#: how long add_vpool waits for the new daemon to serve (it replays nothing yet, so this is its start)
START_TIMEOUT = 30.0


class ParameterError(ValueError):
    """A call_parameters field that is missing or wrong: the API answers 406 naming it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Invalid data passed: {field} {problem}")
        self.field = field


def check_parameters(given: Mapping[str, Any]) -> dict[str, Any]:
    """add_vpool's call_parameters, checked field by field (ParameterError names the first bad one)."""
    out: dict[str, Any] = {}
    unknown = sorted(set(given) - set(CALL_PARAMETERS))
    if unknown:
        raise ParameterError(unknown[0], "is not an add_vpool parameter")
    for name in CALL_PARAMETERS:
        if name not in given or given[name] is None:
            if name == "mountpoint_readcache2":
                out[name] = ""
                continue
            raise ParameterError(name, "is missing")
        out[name] = given[name]
    for name in ("connection_port", "connection_timeout", "vrouter_port"):
        value = out[name]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ParameterError(name, "must be a whole number")
        out[name] = value
    if not 0 < out["vrouter_port"] < 65536:
        raise ParameterError("vrouter_port", "must be between 1 and 65535")
    if out["connection_port"] > 65535:
        raise ParameterError("connection_port", "must be between 0 and 65535")
    for name in ("vpool_name", "type", "connection_host", "connection_username", "connection_password",
                 "storage_ip", *MOUNTPOINTS):
        if not isinstance(out[name], str):
            raise ParameterError(name, "must be a string")
    if not VPOOL_NAME.fullmatch(out["vpool_name"]) or len(out["vpool_name"]) > 64:
        raise ParameterError("vpool_name", "must be letters and digits, words joined by dashes (at most 64)")
    if out["type"] in S3_TYPES:
        raise ParameterError("type", f"{out['type']} has no block backend on this cluster: use LOCAL or DISTRIBUTED")
    if out["type"] not in BLOCK_TYPES:
        raise ParameterError("type", "must be one of LOCAL, DISTRIBUTED")
    try:
        ipaddress.ip_address(out["storage_ip"])
    except ValueError:
        raise ParameterError("storage_ip", "must be an ip address") from None
    for name in MOUNTPOINTS:
        path = out[name]
        if name == "mountpoint_readcache2" and path == "":
            continue
        if not path.startswith("/") or "\0" in path or any(part == ".." for part in path.split("/")):
            raise ParameterError(name, "must be an absolute path without '..'")
        out[name] = os.path.normpath(path)
    return out


# --- the lifecycle ---------------------------------------------------------------------------------------
async def set_status(node: NodeContext, vpool_guid: str, status: str, reason: str = "") -> None:
    """Store the vPool's status and announce the change (an EVENT in the message log)."""
    vpool = await node.repository.update("vpool", vpool_guid, {"lifecycle": {"status": status, "reason": reason}})
    await announce(node, vpool.guid, str(vpool.data["name"]), status, reason)


async def announce(node: NodeContext, vpool_guid: str, name: str, status: str, reason: str = "") -> None:
    metadata = {"vpool_guid": vpool_guid, "vpool_name": name, "status": status}
    if reason:
        metadata["reason"] = reason
    await publish_event(node.store, "vpool_status_changed", metadata)


def _in_thread(ctx: TaskContext, function: Any, *args: Any) -> Any:
    reactor = ctx.node.reactor
    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)


def _make_dirs(paths: list[str]) -> list[str]:
    """Create the directories that are missing; the ones created (to undo them), deepest first."""
    made: list[str] = []
    for path in paths:
        missing = []
        current = path
        while current and not os.path.exists(current):
            missing.append(current)
            current = os.path.dirname(current)
        try:
            os.makedirs(path, 0o750, exist_ok=True)
        except OSError as e:
            _remove_empty_dirs(made)
            raise RuntimeError(f"cannot create {path}: {e.strerror}") from None
        made = missing + made
    return made


def _remove_empty_dirs(paths: list[str]) -> None:
    for path in paths:
        try:
            os.rmdir(path)
        except OSError:
            continue  # not empty (it holds something ovsd did not put there) or already gone


def _port_free(host: str, port: int) -> str | None:
    """None when the NBD server can listen on host:port, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use"
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


async def drivers_of(repo: Repository, vpool_guid: str) -> list[DataObject]:
    return list(await repo.get_many("storagedriver", await repo.reverse_guids("vpool", vpool_guid, "storagedrivers")))


async def _sync_agent(ctx: TaskContext) -> None:
    """Have the agent start (or stop) this node's drivers now rather than at its next heartbeat."""
    await ctx.node.agent.sync_drivers()


# --- add_vpool -----------------------------------------------------------------------------------------------
@task(name="storagerouter.add_vpool", route=Route.STORAGEROUTER, timeout=300)
async def add_vpool(ctx: TaskContext, storagerouter_guid: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Create or extend a vPool with a StorageDriver on this node and start it (see the module)."""
    node = ctx.node
    repo = node.repository
    storage = ctx.node.storage
    p = check_parameters(parameters)
    name = p["vpool_name"]
    storage.check_tools()  # MissingTool names the Debian package: the task fails with that sentence
    router = await repo.get("storagerouter", storagerouter_guid)
    if str(router.data["machine_id"]) != node.config.node.machine_id:
        raise RuntimeError(f"add_vpool for StorageRouter {router.data['name']} ran on another node")
    vpool = await repo.find("vpool", "name", name)
    created_vpool = vpool is None
    if vpool is not None:
        drivers = await drivers_of(repo, vpool.guid)
        mine = [d for d in drivers if d.data.get("storagerouter_guid") == storagerouter_guid]
        if mine:
            # a repeat of an add that went through: make sure it runs, change nothing
            await _sync_agent(ctx)
            await storage.daemon(mine[0].guid, START_TIMEOUT)
            return {"vpool_guid": vpool.guid, "storagedriver_guid": mine[0].guid}
        if vpool.data["type"] != p["type"]:
            raise RuntimeError(f"vPool {name} is {vpool.data['type']}, not {p['type']}")
        if vpool.data["type"] == "LOCAL" and drivers:
            raise RuntimeError(f"A local vPool with name {name} already exists")
        shared = (vpool.data.get("metadata") or {}).get("local_connection_path")
        if shared and os.path.normpath(str(shared)) != p["mountpoint_bfs"]:
            raise RuntimeError(f"vPool {name} keeps its images in {shared}: mountpoint_bfs must be that directory "
                               "(a DISTRIBUTED vPool's nodes see one directory at one path)")
        status = (vpool.data.get("lifecycle") or {}).get("status")
        if status not in (None, "RUNNING", "FAILURE"):
            raise RuntimeError(f"vPool {name} is {status}: it can be extended once it is RUNNING")
        await set_status(node, vpool.guid, "EXTENDING")
    else:
        connection = f"{p['connection_host']}:{p['connection_port']}" if p["connection_host"] else None
        vpool = await repo.create("vpool", {
            "name": name, "type": p["type"], "description": f"{p['type']} {name}",
            "login": p["connection_username"] or None, "password": p["connection_password"] or None,
            "connection": connection, "lifecycle": {"status": "INSTALLING", "reason": ""},
            "metadata": {"backend_type": "LOCAL", "local_connection_path": p["mountpoint_bfs"]},
        })
        await announce(node, vpool.guid, name, "INSTALLING")
    await ctx.progress(10)
    made_dirs: list[str] = []
    driver: DataObject | None = None
    try:
        taken = [d for d in await repo.load_all("storagedriver")
                 if d.data.get("storagerouter_guid") == storagerouter_guid and d.data.get("port") == p["vrouter_port"]]
        if taken:
            raise RuntimeError(f"port {p['vrouter_port']} is the port of StorageDriver {taken[0].data['name']} "
                               "on this StorageRouter")
        busy = await _in_thread(ctx, _port_free, p["storage_ip"], p["vrouter_port"])
        if busy:
            raise RuntimeError(busy)
        directories = [p[m] for m in MOUNTPOINTS if p[m]]
        made_dirs = await _in_thread(ctx, _make_dirs, directories)
        storagedriver_id = f"{name}{node.config.node.machine_id}"
        driver = await repo.create("storagedriver", {
            "name": storagedriver_id, "description": storagedriver_id, "storagedriver_id": storagedriver_id,
            "storage_ip": p["storage_ip"], "cluster_ip": router.data.get("ip"), "port": p["vrouter_port"],
            "mountpoint": f"/mnt/{name}", **{m: p[m] for m in MOUNTPOINTS},
            "vpool_guid": vpool.guid, "storagerouter_guid": storagerouter_guid,
        })
        await ctx.progress(30)
        await _sync_agent(ctx)
        await storage.daemon(driver.guid, START_TIMEOUT)
        await ctx.progress(90)
        size = await _in_thread(ctx, _filesystem_size, p["mountpoint_bfs"])
        await repo.update("vpool", vpool.guid, {"size": size})
        await set_status(node, vpool.guid, "RUNNING")
    except Exception as e:
        reason = str(e) or type(e).__name__
        why = _driver_failure(node, driver.guid) if driver is not None else None
        if why:
            reason = f"{reason} ({why})"
        await _undo_add(ctx, vpool, driver, made_dirs, created_vpool, reason)
        raise RuntimeError(reason) from None
    return {"vpool_guid": vpool.guid, "storagedriver_guid": driver.guid}


def _filesystem_size(path: str) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


def _driver_failure(node: NodeContext, guid: str) -> str | None:
    state = node.agent.supervisor.state(guid)
    if state is not None and state.last_exit is not None:
        return f"the storagedriver process ended: {state.last_exit}"
    return None


async def _undo_add(ctx: TaskContext, vpool: DataObject, driver: DataObject | None, made_dirs: list[str],
                    created_vpool: bool, reason: str) -> None:
    """Leave nothing half-made: the driver (and its process), the directories made, a vPool made now."""
    node = ctx.node
    repo = node.repository
    if driver is not None:
        await repo.delete("storagedriver", driver.guid)
        await _sync_agent(ctx)
        ctx.node.storage.forget(driver.guid)
    await _in_thread(ctx, _remove_empty_dirs, made_dirs)
    await announce(node, vpool.guid, str(vpool.data["name"]), FAILURE, reason)
    if created_vpool:
        await repo.delete("vpool", vpool.guid)
    else:
        # the vPool still runs on its other nodes; the failure is in the event and the task's error
        await repo.update("vpool", vpool.guid, {"lifecycle": {"status": "RUNNING", "reason": reason}})


# --- remove a StorageDriver (shrink) -------------------------------------------------------------------------
async def removal_refusal(repo: Repository, driver: DataObject) -> str | None:
    """Why a StorageDriver may not be removed now (None: it may)."""
    served = await repo.reverse_guids("storagedriver", driver.guid, "vdisks")
    if served:
        return f"There are still vDisks served from the given Storage Driver ({len(served)})"
    return None


@task(name="storagerouter.remove_storagedriver", route=Route.STORAGEROUTER, timeout=120)
async def remove_storagedriver(ctx: TaskContext, storagerouter_guid: str, storagedriver_guid: str) -> bool:
    """Stop and remove a StorageDriver of this node; the last one of its vPool removes the vPool."""
    node = ctx.node
    repo = node.repository
    driver = await repo.get("storagedriver", storagedriver_guid)
    refusal = await removal_refusal(repo, driver)
    if refusal:
        raise RuntimeError(refusal)
    vpool = await repo.get("vpool", str(driver.data["vpool_guid"]))
    others = [d for d in await drivers_of(repo, vpool.guid) if d.guid != driver.guid]
    await set_status(node, vpool.guid, "SHRINKING" if others else "DELETING")
    try:
        await repo.delete("storagedriver", driver.guid)
        await _sync_agent(ctx)
        ctx.node.storage.forget(driver.guid)
        keep = {str(d.data.get(m)) for d in others for m in MOUNTPOINTS}
        dirs = [str(driver.data[m]) for m in MOUNTPOINTS if driver.data.get(m) and str(driver.data[m]) not in keep]
        await _in_thread(ctx, _remove_empty_dirs, sorted(dirs, key=len, reverse=True))
    except Exception as e:
        await set_status(node, vpool.guid, "FAILURE", str(e))
        raise
    if others:
        await set_status(node, vpool.guid, "RUNNING")
    else:
        await repo.delete("vpool", vpool.guid)
        await announce(node, vpool.guid, str(vpool.data["name"]), "DELETED")
    return True


@task(name="vpool.update_storagedrivers", route=Route.ANY, timeout=600)
async def update_storagedrivers(ctx: TaskContext, vpool_guid: str, storagedriver_guid: str,
                                storagerouter_guids: list[str], storagedriver_guids: list[str]) -> bool:
    """Add the vPool to the routers (settings of the template StorageDriver), then remove the drivers.

    As the original: each step's failure only makes the result false; the others still run.
    """
    node = ctx.node
    repo = node.repository
    vpool = await repo.get("vpool", vpool_guid)
    template = await repo.get("storagedriver", storagedriver_guid)
    host, _, port = str(vpool.data.get("connection") or "").partition(":")
    parameters = {
        "vpool_name": vpool.data["name"], "type": vpool.data["type"], "connection_host": host,
        "connection_port": int(port) if port.isdigit() else 0, "connection_timeout": 0,
        "connection_username": vpool.data.get("login") or "", "connection_password": vpool.data.get("password") or "",
        **{m: template.data.get(m) or "" for m in MOUNTPOINTS},
        "storage_ip": template.data.get("storage_ip"), "vrouter_port": template.data.get("port"),
    }
    success = True
    steps: list[tuple[str, str, dict[str, Any]]] = []
    for router_guid in storagerouter_guids:
        steps.append((router_guid, "storagerouter.add_vpool", {"parameters": parameters}))
    for guid in storagedriver_guids:
        driver = await repo.get("storagedriver", guid)
        steps.append((str(driver.data["storagerouter_guid"]), "storagerouter.remove_storagedriver",
                      {"storagedriver_guid": guid}))
    for index, (router_guid, name, kwargs) in enumerate(steps):
        try:
            router = await repo.get("storagerouter", router_guid)
            task_id = await node.tasks.enqueue(name, {**kwargs, "storagerouter_guid": router_guid},
                                               node=str(router.data["machine_id"]))
            record = await node.tasks.wait(task_id, 600)
            if record is None or record.get("status") != "SUCCESS":
                success = False
                log.warn("update_storagedrivers: {name} on {router} ended {status}: {error}", name=name,
                         router=router_guid, status=record and record.get("status"),
                         error=record and record.get("error"))
        except Exception as e:
            success = False
            log.warn("update_storagedrivers: {name} on {router} failed: {error}", name=name, router=router_guid,
                     error=str(e))
        await ctx.progress(100 * (index + 1) / max(1, len(steps)))
    return success
