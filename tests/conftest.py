"""Fixtures shared by all tests: a real Valkey (the embedded launcher) and an in-process HTTPS API."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from ovsd import tls
from ovsd.api.service import ApiService
from ovsd.config import Config, load
from ovsd.context import NodeContext
from ovsd.service import Node, build_node, prepare_data_dir
from ovsd.store.connection import Store
from ovsd.store.embedded import EmbeddedStoreServer
from tests.storage_support import Daemon, cleanup, daemon_in, short_dir
from tests.support import node_sections, write_config


@pytest.fixture(scope="session")
def store_server() -> Iterator[EmbeddedStoreServer]:
    """One private valkey-server for the session, started by the daemon's own launcher."""
    directory = Path(tempfile.mkdtemp(prefix="ovsd-test-store-"))
    server = EmbeddedStoreServer(directory, reactor)
    server.startService()
    yield server
    pytest_twisted.blockon(server.stopService())
    shutil.rmtree(directory, ignore_errors=True)


@pytest_twisted.async_yield_fixture
async def store(store_server: EmbeddedStoreServer) -> AsyncIterator[Store]:
    s = Store("embedded", store_server.store_dir, reactor)
    s.startService()
    await s.wait_until_available(interval=0.05)
    await s.execute("FLUSHALL")
    yield s
    await s.stopService()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class ApiHarness:
    """An in-process node API on an ephemeral TLS port, and a treq client that trusts its CA."""

    def __init__(self, context: NodeContext, service: ApiService, client: HTTPClient, port: int) -> None:
        self.context = context
        self.service = service
        self.client = client
        self.port = port

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any,
    ) -> tuple[int, Any, Any]:
        response = await self.client.request(method, self.url(path), headers=headers, **kwargs)
        raw = await response.content()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return response.code, body, response


def node_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    path = write_config(data_dir.parent / "ovsd.toml", node_sections(data_dir, 0, **sections))
    return load(path, environ={})


async def serve_api(node: Node, pool: HTTPConnectionPool) -> ApiHarness:
    """Start the node's API alone (build_node starts nothing) and a client of it that trusts the node's CA."""
    node.api.startService()
    port = await node.api.when_listening()
    agent = Agent(reactor, contextFactory=tls.client_policy((node.config.tls_dir / "ca.pem").read_bytes()), pool=pool)
    return ApiHarness(node.context, node.api, HTTPClient(agent), port.getHost().port)


@pytest_twisted.async_yield_fixture
async def api(store: Store, data_dir: Path) -> AsyncIterator[ApiHarness]:
    """The API of a node on the test store, serving at once (nothing that needs a bootstrapped store)."""
    config = node_config(data_dir)
    prepare_data_dir(config)
    node = build_node(config, reactor, store=store)
    node.mark_ready()
    pool = HTTPConnectionPool(reactor, persistent=False)
    harness = await serve_api(node, pool)
    yield harness
    await node.api.stopService()
    await pool.closeCachedConnections()


@pytest_twisted.async_yield_fixture
async def daemon() -> AsyncIterator[Daemon]:
    """A running qemu-storage-daemon in a directory of its own, removed afterwards (the storage layer's tests).

    The cluster tests import their own ``daemon`` (a twistd node starter) from tests/cluster_support.py, which
    takes precedence in their modules."""
    directory = short_dir()
    try:
        async for d in daemon_in(directory):
            yield d
    finally:
        cleanup(directory)
