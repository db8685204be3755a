"""Test support for the resource views: an in-process HTTPS node serving every declared view.

The node has the real store, repository, bearer authenticator and bootstrap (roles, groups, branding,
admin), so a test calls the API exactly as a client does. Helpers mint tokens through the token endpoint,
create the cluster's objects through the repository, take a snapshot of the whole store, and start a TLS
server that a management center registration can reach.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest_twisted
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers

from ovsd import tls
from ovsd.api.declare import Endpoint
from ovsd.auth.accounts import create_client, ensure_password_client
from ovsd.auth.passwords import hash_password
from ovsd.controllers.bootstrap import bootstrap
from ovsd.dal.repository import DataObject, Repository
from ovsd.service import build_node, prepare_data_dir
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.auth_support import basic
from tests.conftest import ApiHarness, node_config, serve_api

#: the role sets the matrix walks, by a readable name (each one a token's exact roles)
ROLE_SETS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "read": frozenset({"read"}),
    "read+write": frozenset({"read", "write"}),
    "read+write+manage": frozenset({"read", "write", "manage"}),
}
#: scope strings that narrow a client holding every role to each role set; an unknown code is ignored
#: by the token endpoint, so a scope of only unknown codes yields a token without any role
SCOPES = {"none": "no-such-role", "read": "read", "read+write": "read write", "read+write+manage": None}

MGMTCENTER_PASSWORD = "mgmt-Plaintext-5e0b1f"
VPOOL_PASSWORD = "vpool-Plaintext-93ad7c"
PMACHINE_PASSWORD = "pmachine-Plaintext-04c2aa"
MISSING: Any = object()


@dataclass
class Reply:
    """One answer as a client sees it."""

    status: int
    body: Any
    raw: bytes
    response: Any = field(repr=False)

    def header(self, name: str) -> str | None:
        values = self.response.headers.getRawHeaders(name)
        return str(values[0]) if values else None

    @property
    def error(self) -> tuple[int, str | None]:
        code = self.body.get("error") if isinstance(self.body, dict) else None
        return self.status, code


@dataclass
class ViewsNode:
    """One bootstrapped node serving the real views, and a client of it."""

    api: ApiHarness
    repository: Repository
    pool: HTTPConnectionPool = field(repr=False)
    _admin_client: tuple[str, str] | None = None

    @property
    def store(self) -> Store:
        return self.api.context.store

    @property
    def tls_dir(self) -> Path:
        return self.api.context.config.tls_dir

    async def call(
        self, method: str, path: str, token: str | None = None, *, body: Any = MISSING, raw: bytes | None = None,
        form: dict[str, str] | None = None, content_type: str | None = None, version: str | None = "1",
        authorization: str | None = None, headers: dict[str, str] | None = None,
    ) -> Reply:
        """A call with ``Accept: application/json; version=<version>`` and the bearer token, if given.

        ``body`` is sent as JSON, ``raw`` as given (with ``content_type``), ``form`` form-encoded.
        """
        all_headers: dict[str, str] = {}
        if version is not None:
            all_headers["Accept"] = f"application/json; version={version}"
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            all_headers["Authorization"] = authorization
        kwargs: dict[str, Any] = {}
        if body is not MISSING:
            raw = json.dumps(body).encode()
            content_type = content_type or "application/json"
        if form is not None:
            kwargs["data"] = form
        elif raw is not None:
            kwargs["data"] = raw
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        response = await self.api.client.request(
            method, self.api.url(path), headers=Headers({k: [v] for k, v in all_headers.items()}), timeout=30, **kwargs,
        )
        content = await response.content()
        try:
            parsed: Any = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return Reply(response.code, parsed, content, response)

    # --- tokens ----------------------------------------------------------------------------------------
    async def token_reply(self, form: dict[str, str], authorization: str | None = None) -> Reply:
        return await self.call("POST", "/api/oauth2/token/", form=form, version=None, authorization=authorization)

    async def password_token(self, username: str, password: str, scope: str | None = None) -> str:
        form = {"grant_type": "password", "username": username, "password": password}
        if scope is not None:
            form["scope"] = scope
        reply = await self.token_reply(form)
        assert reply.status == 200, reply.body
        return str(reply.body["access_token"])

    async def client_token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        reply = await self.client_token_reply(client_id, secret, scope)
        assert reply.status == 200, reply.body
        return str(reply.body["access_token"])

    async def client_token_reply(self, client_id: str, secret: str, scope: str | None = None) -> Reply:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        return await self.token_reply(form, basic(client_id, secret))

    async def admin_token(self, roles: str = "read+write+manage") -> str:
        """A token of user admin carrying exactly the named role set (no password hashing involved)."""
        if self._admin_client is None:
            admin = await self.user("admin")
            client, secret = await create_client(self.repository, admin.guid, "tests")
            self._admin_client = (client.guid, secret)
        client_id, secret = self._admin_client
        return await self.client_token(client_id, secret, SCOPES[roles])

    # --- lookups ---------------------------------------------------------------------------------------
    async def user(self, username: str) -> DataObject:
        found = await self.repository.find("user", "username", username)
        assert found is not None, username
        return found

    async def group(self, name: str) -> DataObject:
        found = await self.repository.find("group", "name", name)
        assert found is not None, name
        return found

    async def role(self, code: str) -> DataObject:
        found = await self.repository.find("role", "code", code)
        assert found is not None, code
        return found


@pytest_twisted.async_yield_fixture
async def views_node(store: Store, tmp_path: Path) -> AsyncIterator[ViewsNode]:
    """A bootstrapped node on the test store serving every view of ovsd/api/views."""
    data_dir = tmp_path / "node" / "data"
    data_dir.parent.mkdir(parents=True)
    config = node_config(data_dir)
    prepare_data_dir(config)
    node = build_node(config, reactor, store=store)
    await bootstrap(node.repository, config)
    node.mark_ready()
    # the views of tasks and messages need the node's task engine and message bus (no worker, no agent)
    node.engine.startService()
    node.bus.startService()
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 20
    harness = await serve_api(node, pool)
    yield ViewsNode(harness, node.repository, pool)
    await pool.closeCachedConnections()
    await node.api.stopService()
    await node.bus.stopService()
    await node.engine.stopService()


# --- paths -----------------------------------------------------------------------------------------------
MADE_UP = {"guid": "6f1c2d3e-4b5a-4c6d-8e7f-8091a2b3c4d5", "int": "1234567890", "str": "no-such-id"}


def has_key(endpoint: Endpoint) -> bool:
    """Whether the endpoint's path names one object of its resource."""
    resource = endpoint.resource
    return resource is not None and "{" + resource.key + "}" in endpoint.path


def fill_path(endpoint: Endpoint, key: str | None = None) -> str:
    """The endpoint's path with its object key (a made-up one of the right type when None) and any other
    placeholder filled in (made up: such paths name things this file does not create)."""
    path = endpoint.path
    resource = endpoint.resource
    if resource is not None and has_key(endpoint):
        path = path.replace("{" + resource.key + "}", key if key is not None else MADE_UP[resource.key_type])
    for name, _, type_name in endpoint.path_params:
        path = path.replace("{" + name + "}", MADE_UP[type_name])
    return path


# --- objects ----------------------------------------------------------------------------------------------
_SHARED_HASH: list[str] = []


async def cheap_user(repository: Repository, username: str, group_guid: str) -> DataObject:
    """A user with its password client, whose password is "shared-password" (hashed once per session)."""
    if not _SHARED_HASH:
        _SHARED_HASH.append(await hash_password("shared-password"))
    user = await repository.create("user", {"username": username, "password": _SHARED_HASH[0],
                                            "group_guid": group_guid, "is_active": True})
    await ensure_password_client(repository, user.guid)
    return user


@dataclass
class Cluster:
    """One object of each kind of the cluster model, linked as a real cluster links them."""

    mgmtcenter: str
    pmachine: str
    storagerouter: str
    vpool: str
    storagedriver: str
    vmachine: str
    vdisk: str

    def guid_of(self, kind: str) -> str | None:
        value = getattr(self, kind, None)
        return value if isinstance(value, str) else None


async def populate(repository: Repository, suffix: str = "1") -> Cluster:
    """Create a management center, pMachine, StorageRouter, vPool, StorageDriver, vMachine and vDisk."""
    create = repository.create
    mgmt = await create("mgmtcenter", {"name": f"vc{suffix}", "username": "vcadmin", "password": MGMTCENTER_PASSWORD,
                                       "ip": f"10.9.0.{suffix}", "port": 443, "type": "VCENTER"})
    pm = await create("pmachine", {"name": f"pm{suffix}", "ip": f"10.0.0.{suffix}", "hvtype": "KVM",
                                   "username": "root", "password": PMACHINE_PASSWORD, "mgmtcenter_guid": mgmt.guid})
    sr = await create("storagerouter", {"name": f"sr{suffix}", "machine_id": f"machine-{suffix}",
                                        "ip": f"10.0.0.{suffix}", "pmachine_guid": pm.guid})
    vpool = await create("vpool", {"name": f"vpool{suffix}", "type": "LOCAL", "login": "backend",
                                   "password": VPOOL_PASSWORD, "connection": "10.0.1.1:80"})
    sd = await create("storagedriver", {"name": f"sd{suffix}", "storagedriver_id": f"vpool{suffix}-sr{suffix}",
                                        "vpool_guid": vpool.guid, "storagerouter_guid": sr.guid, "port": 26200})
    vm = await create("vmachine", {"name": f"vm{suffix}", "pmachine_guid": pm.guid, "vpool_guid": vpool.guid})
    vd = await create("vdisk", {"name": f"vd{suffix}", "size": 1 << 30, "vpool_guid": vpool.guid,
                                "vmachine_guid": vm.guid, "devicename": f"vd{suffix}.raw"})
    return Cluster(mgmt.guid, pm.guid, sr.guid, vpool.guid, sd.guid, vm.guid, vd.guid)


# --- the outside world ------------------------------------------------------------------------------------
@dataclass
class TlsServer:
    """A TLS server on 127.0.0.1 (a stand-in for a management center's API)."""

    listening: IListeningPort
    port: int = 0

    def __post_init__(self) -> None:
        self.port = int(cast(Any, self.listening.getHost()).port)

    async def stop(self) -> None:
        await defer.maybeDeferred(self.listening.stopListening)


async def tls_server(tls_dir: Path) -> TlsServer:
    """Start a TLS server presenting the node's certificate; it completes handshakes and says nothing."""
    endpoint = SSL4ServerEndpoint(reactor, 0, tls.server_options(tls_dir), interface="127.0.0.1")
    return TlsServer(await endpoint.listen(protocol.Factory.forProtocol(protocol.Protocol)))


# --- the store as a whole ---------------------------------------------------------------------------------
_READERS = {
    "string": lambda k: ("GET", k),
    "set": lambda k: ("SMEMBERS", k),
    "zset": lambda k: ("ZRANGE", k, 0, -1, "WITHSCORES"),
    "hash": lambda k: ("HGETALL", k),
    "list": lambda k: ("LRANGE", k, 0, -1),
    "stream": lambda k: ("XRANGE", k, "-", "+"),
}


def _normal(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    if isinstance(value, dict):
        return sorted((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


async def store_snapshot(store: Store, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """Every key and its value (in three round trips), leaving out keys that start with one of ``ignore``."""
    skipped = tuple(ignore)
    names = sorted(k for k in await store.execute("KEYS", "*") if not k.startswith(skipped))
    kinds = await store.pipeline([("TYPE", k) for k in names])
    values = await store.pipeline([_READERS[str(kind)](k) for k, kind in zip(names, kinds, strict=True)])
    return {k: _normal(v) for k, v in zip(names, values, strict=True)}


#: keys that change around requests that change nothing: tokens being issued and the token endpoint's
#: rate-limit counters
VOLATILE = (
    keys.auth_calls(""), keys.auth_failures(""), keys.auth_lockout(""), keys.obj("bearertoken", ""),
    keys.index("bearertoken"), keys.unique("bearertoken", "access_token", ""),
    keys.reverse("bearertoken", "client", ""), keys.reverse("bearertoken", "roles", ""),
)
