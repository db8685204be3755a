"""Test support for the storage data plane through the API: nodes wired as ``ovsd/service.py`` wires one.

Each node has the real store, repository, bootstrap, task engine and worker running the controllers' own
task functions, the message bus, the agent with its supervisor, and the node's storage registry whose
launcher runs a real qemu-storage-daemon per StorageDriver of a LOCAL or DISTRIBUTED vPool. Data dirs are
short (a QMP socket path must fit a unix socket). Helpers add a vPool and wait for tasks as a client does.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from ovsd import tls
from ovsd.agent.service import NodeAgent
from ovsd.agent.supervisor import DriverSupervisor
from ovsd.context import NodeContext
from ovsd.controllers import load_controllers
from ovsd.dal.repository import Repository
from ovsd.service import Node, build_node, prepare_data_dir
from ovsd.storage.node import NodeStorage
from ovsd.store.connection import Store
from tests.conftest import ApiHarness, node_config
from tests.storage_support import short_dir
from tests.support import free_port
from tests.views_support import Reply, ViewsNode
from tests.work_support import until

MiB = 1024 * 1024
FAST_AGENT = {"heartbeat_interval": 0.5, "warning_after": 1.5, "failure_after": 3.0}


@dataclass
class StorageNode:
    node: ViewsNode
    context: NodeContext
    storage: NodeStorage
    agent: NodeAgent
    supervisor: DriverSupervisor
    services: list[Any]
    directory: str
    built: Node
    token: str = ""

    @property
    def repo(self) -> Repository:
        return self.node.repository

    @property
    def machine_id(self) -> str:
        return self.context.config.node.machine_id

    @property
    def router_guid(self) -> str:
        guid = self.agent.storagerouter_guid
        assert guid is not None
        return guid

    async def call(self, method: str, path: str, body: Any = None, version: str = "1") -> Reply:
        if body is None:
            return await self.node.call(method, path, self.token, version=version)
        return await self.node.call(method, path, self.token, body=body, version=version)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        reply = await self.call(method, path, body)
        assert 200 <= reply.status < 300, (method, path, reply.status, reply.body)
        return reply.body

    async def task(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        """The finished task's record (as GET /api/tasks/<id>/ shows it)."""
        await self.context.tasks.wait(task_id, timeout)
        return dict(await self.ok("GET", f"/api/tasks/{task_id}/"))

    async def result(self, task_id: str, timeout: float = 60) -> Any:
        record = await self.task(task_id, timeout)
        assert record["status"] == "SUCCESS", record
        return record["result"]

    async def error(self, task_id: str, timeout: float = 60) -> str:
        record = await self.task(task_id, timeout)
        assert record["status"] == "FAILURE", record
        return str(record["result"])

    async def create_vdisk(self, name: str, vpool_guid: str, size: int) -> dict[str, Any]:
        """A vDisk created on this node through the API (202 and its task), as GET /api/vdisks/<guid>/ shows it."""
        reply = await self.call("POST", "/api/vdisks/", {"name": name, "size": size, "vpool_guid": vpool_guid,
                                                         "storagerouter_guid": self.router_guid})
        assert reply.status == 202, reply.body
        return dict(await self.ok("GET", f"/api/vdisks/{await self.result(reply.body)}/"))

    async def add_vpool(self, name: str, images: str, vpool_type: str = "LOCAL", port: int | None = None,
                        **changes: Any) -> dict[str, Any]:
        """add_vpool through the API and its task's result ({vpool_guid, storagedriver_guid})."""
        params = vpool_parameters(name, images, self.directory, vpool_type, port or free_port(), **changes)
        task_id = await self.ok("POST", f"/api/storagerouters/{self.router_guid}/add_vpool/",
                                {"call_parameters": params})
        return dict(await self.result(task_id))


def vpool_parameters(name: str, images: str, directory: str, vpool_type: str, port: int,
                     **changes: Any) -> dict[str, Any]:
    base = os.path.join(directory, "mnt", name)
    params: dict[str, Any] = {
        "vpool_name": name, "type": vpool_type, "connection_host": "", "connection_port": 0,
        "connection_timeout": 0, "connection_username": "", "connection_password": "",
        "mountpoint_temp": f"{base}/temp", "mountpoint_bfs": images, "mountpoint_md": f"{base}/md",
        "mountpoint_readcache1": f"{base}/read1", "mountpoint_readcache2": "",
        "mountpoint_writecache": f"{base}/write", "mountpoint_foc": f"{base}/foc",
        "storage_ip": "127.0.0.1", "vrouter_port": port,
    }
    params.update(changes)
    return params


async def start_storage_node(store: Store, name: str, tool_search: str | None = None) -> StorageNode:
    """A node named ``name`` (machine_id ``mid-<name>``) with its storage registry and the real tasks."""
    load_controllers()
    directory = short_dir()
    data_dir = Path(directory) / "d"
    config = node_config(data_dir, node={"name": name, "machine_id": f"mid-{name}"}, agent=FAST_AGENT,
                         storagedriver={"command": ["sleep", "infinity"], "stop_grace": 2.0, "max_restarts": 3})
    prepare_data_dir(config)
    # the daemon's own wiring (ovsd.service.build_node) on the test store
    built = build_node(config, reactor, store=store, concurrency=4, tool_search=tool_search)
    built.top.startService()
    await built.when_ready()
    port = await built.api.when_listening()
    await until(lambda: built.bus.position is not None)
    context, storage, agent, supervisor = built.context, built.storage, built.agent, built.supervisor
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 20
    client = Agent(reactor, contextFactory=tls.client_policy((config.tls_dir / "ca.pem").read_bytes()), pool=pool)
    harness = ApiHarness(context, built.api, HTTPClient(client), port.getHost().port)
    node = StorageNode(ViewsNode(harness, built.repository, pool), context, storage, agent, supervisor,
                       built.services, directory, built)
    node.token = await node.node.admin_token()
    return node


async def start_pool_node(store: Store, name: str) -> StorageNode:
    """A storage node (``start_storage_node``) serving one LOCAL vPool "pool", its add_vpool result as ``vpool``."""
    node = await start_storage_node(store, name)
    node.vpool = await node.add_vpool("pool", os.path.join(node.directory, "images"))  # type: ignore[attr-defined]
    return node


async def stop_storage_node(node: StorageNode) -> None:
    await node.node.pool.closeCachedConnections()
    await node.built.top.stopService()  # the node's services in reverse start order, as the daemon stops
    shutil.rmtree(node.directory, ignore_errors=True)
