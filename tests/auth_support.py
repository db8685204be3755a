"""Test support for identity: an in-process HTTPS node with the real authenticator, a bootstrapped store
and a controllable clock for token expiry and the brute-force windows."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import HTTPConnectionPool

from ovsd.api.call import Call
from ovsd.api.declare import Registry
from ovsd.api.service import ApiService
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.repository import Repository
from ovsd.service import build_node, prepare_data_dir
from ovsd.store.connection import Store
from tests.conftest import ApiHarness, node_config, serve_api

ADMIN_PASSWORD = "admin-secret-pw"  # what tests.support.node_sections configures
START = 1_700_000_000.0


def basic(client_id: str, secret: str, scheme: str = "Basic") -> str:
    return f"{scheme} " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def whoami_registry() -> Registry:
    """A registry with one endpoint that needs a token with role read (what any real view needs)."""
    registry = Registry()

    @registry.endpoint(method="GET", path="/api/whoami", roles=("read",), versioned=False, returns="value")
    async def whoami(call: Call) -> Any:
        assert call.identity is not None
        return {"username": call.identity.username, "roles": sorted(call.identity.roles)}

    return registry


@dataclass
class AuthNode:
    """One node: its HTTPS API, repository and the clock the repository (so the authenticator too) reads."""

    api: ApiHarness
    repository: Repository
    clock: Clock
    pool: HTTPConnectionPool = field(repr=False)

    @property
    def store(self) -> Store:
        return self.api.context.store

    async def token(
        self, form: dict[str, str], headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        return await self.api.request("POST", "/api/oauth2/token/", data=form, headers=headers)

    async def client_credentials(
        self, client_id: str, secret: str, scope: str | None = None, scheme: str = "Basic",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        return await self.token(form, {"Authorization": basic(client_id, secret, scheme), **(headers or {})})

    async def password(
        self, username: str = "admin", password: str = ADMIN_PASSWORD, scope: str | None = None,
    ) -> tuple[int, Any, Any]:
        form = {"grant_type": "password", "username": username, "password": password}
        if scope is not None:
            form["scope"] = scope
        return await self.token(form)

    async def metadata(self, authorization: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": authorization} if authorization is not None else None
        status, body, _ = await self.api.request("GET", "/api", headers=headers)
        assert status == 200, body
        return dict(body)

    async def whoami(self, authorization: str | None = None) -> tuple[int, Any, Any]:
        headers = {"Authorization": authorization} if authorization is not None else None
        return await self.api.request("GET", "/api/whoami", headers=headers)


NodeFactory = Callable[..., Awaitable[AuthNode]]


@pytest_twisted.async_yield_fixture
async def auth_nodes(store: Store, tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start bootstrapped nodes on the test store: ``await auth_nodes(auth={...}, api={...})``."""
    started: list[tuple[ApiService, HTTPConnectionPool]] = []

    async def start(**sections: dict[str, Any]) -> AuthNode:
        data_dir = tmp_path / f"node{len(started)}" / "data"
        data_dir.parent.mkdir(parents=True)
        config = node_config(data_dir, **sections)
        prepare_data_dir(config)
        clock = Clock()
        clock.advance(START)
        # the clock is the object model's time: token expiry and the brute-force windows
        node = build_node(config, reactor, clock, store=store, endpoints=whoami_registry())
        await bootstrap(node.repository, config)
        node.mark_ready()
        pool = HTTPConnectionPool(reactor, persistent=False)
        harness = await serve_api(node, pool)
        started.append((node.api, pool))
        return AuthNode(harness, node.repository, clock, pool)

    yield start
    for service, pool in started:
        await service.stopService()
        await pool.closeCachedConnections()


@pytest_twisted.async_yield_fixture
async def node(auth_nodes: NodeFactory) -> AsyncIterator[AuthNode]:
    """One bootstrapped node with the default configuration."""
    yield await auth_nodes()


async def store_dump(store: Store) -> str:
    """Every key and every value in the store, as one text (to prove what is not in it)."""
    parts: list[str] = []
    for key in await store.execute("KEYS", "*"):
        parts.append(key)
        kind = await store.execute("TYPE", key)
        if kind == "string":
            parts.append(str(await store.execute("GET", key)))
        elif kind == "set":
            parts.extend(await store.execute("SMEMBERS", key))
        elif kind == "zset":
            parts.extend(await store.execute("ZRANGE", key, 0, -1))
        elif kind == "hash":
            reply = await store.execute("HGETALL", key)
            pairs = reply.items() if isinstance(reply, dict) else [reply]
            parts.extend(str(item) for item in pairs)
        elif kind == "list":
            parts.extend(await store.execute("LRANGE", key, 0, -1))
        else:
            parts.append(str(await store.execute("DUMP", key)))
    return "\n".join(parts)
