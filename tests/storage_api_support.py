"""Test support for the storage data plane through the API: nodes wired as ``ovsd/service.py`` wires one.

Each node has the real store, repository, bootstrap, task engine and worker running the controllers' own
task functions, the message bus, the agent with its supervisor, and the node's storage registry whose
launcher runs a real qemu-storage-daemon per StorageDriver of a LOCAL or DISTRIBUTED vPool. Data dirs are
short (a QMP socket path must fit a unix socket). Helpers add a vPool and wait for tasks as a client does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.web.client import Agent, HTTPConnectionPool

from ovsd import tls
from ovsd.agent.launcher import Launchers
from ovsd.agent.service import NodeAgent
from ovsd.agent.supervisor import DriverSupervisor
from ovsd.api.service import ApiService
from ovsd.auth.authenticator import BearerAuthenticator
from ovsd.context import NodeContext
from ovsd.controllers import load_controllers
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.repository import Repository
from ovsd.messages import MessageBus, publish_event, publish_task_complete
from ovsd.service import prepare_data_dir
from ovsd.storage.node import BLOCK_TYPES, NodeStorage, driver_run_dir
from ovsd.store.connection import Store
from ovsd.tasks import DEFAULT_REGISTRY, TaskEngine, TaskWorker
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
        assert self.context.tasks is not None
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
    context = NodeContext(config=config, store=store, reactor=reactor, started_at=reactor.seconds())
    repository = Repository(context.store, clock=reactor.seconds, reactor=reactor, thresholds=context.config.agent)
    context.repository = repository
    context.authenticator = BearerAuthenticator(repository)
    await bootstrap(repository, config)

    async def publish_completion(task_id: str, record: Mapping[str, Any]) -> None:
        await publish_task_complete(store, task_id)

    async def announce(event_type: str, metadata: Mapping[str, Any]) -> None:
        await publish_event(store, event_type, metadata)

    machine_id = config.node.machine_id
    storage = NodeStorage(reactor, repository, driver_run_dir(str(data_dir)), tool_search=tool_search)
    context.storage = storage
    launchers = Launchers(config.storagedriver)
    for vpool_type in BLOCK_TYPES:
        launchers.register(vpool_type, storage.launcher)
    supervisor = DriverSupervisor(reactor, config.storagedriver)
    agent = NodeAgent(context, repository, supervisor, launchers, announce)
    supervisor.on_change = agent.driver_changed
    context.agent = agent
    engine = TaskEngine(store, DEFAULT_REGISTRY, machine_id, reactor, on_complete=publish_completion)
    context.tasks = engine
    worker = TaskWorker(context, machine_id, 4, DEFAULT_REGISTRY, reactor, on_complete=publish_completion,
                        on_heartbeat=agent.worker_heartbeat, heartbeat_interval=config.agent.heartbeat_interval)
    context.worker = worker
    bus = MessageBus(store, reactor)
    context.messages = bus
    api = ApiService(context)
    services: list[Any] = [supervisor, engine, worker, agent, api, bus]
    for service in services:
        service.startService()
    port = await api.when_listening()
    await agent.when_registered()
    await until(lambda: bus.position is not None)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 20
    client = Agent(reactor, contextFactory=tls.client_policy((config.tls_dir / "ca.pem").read_bytes()), pool=pool)
    harness = ApiHarness(context, api, HTTPClient(client), port.getHost().port)
    node = StorageNode(ViewsNode(harness, repository, pool), context, storage, agent, supervisor, services, directory)
    node.token = await node.node.admin_token()
    return node


async def stop_storage_node(node: StorageNode) -> None:
    await node.node.pool.closeCachedConnections()
    for service in reversed(node.services):
        if service.running:
            await defer.maybeDeferred(service.stopService)
    shutil.rmtree(node.directory, ignore_errors=True)
