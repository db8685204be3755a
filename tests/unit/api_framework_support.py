"""A test-only API declared with the framework (one resource per shape), served over real HTTPS.

The handlers echo what the framework handed them (version, key, identity, params) so the tests can see
each step of a call. The authenticator maps a bearer word to an identity: the seam until real tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IRequest

from ovsd.api.app import Response
from ovsd.api.call import Call
from ovsd.api.declare import GUID, RW, RWM, R, Registry
from ovsd.api.errors import object_not_found
from ovsd.api.params import Param
from ovsd.auth.errors import NotAuthenticated
from ovsd.auth.identity import Identity
from ovsd.service import build_node, prepare_data_dir
from ovsd.store.connection import Store
from tests.conftest import ApiHarness, node_config, serve_api

WIDGET = "0a8c5a8e-1b2f-4c3d-9e4f-5a6b7c8d9e0f"
VPOOL = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516"
TEMPLATE = "2c3d4e5f-6071-4829-8b1c-d2e3f4051627"
CORS_ORIGIN = "https://gui.example.com"

TOKENS = {
    "reader": frozenset({"read"}),
    "writer": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "manage"}),
}


class WordAuthenticator:
    """``Authorization: Bearer <reader|writer|admin>``; any other word is an invalid token."""

    async def authenticate(self, request: IRequest) -> Identity | None:
        header = request.getHeader(b"authorization")
        if header is None:
            return None
        scheme, _, word = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            raise NotAuthenticated("invalid_authorization_type", "Bearer tokens only")
        if word not in TOKENS:
            raise NotAuthenticated("invalid_token", "Unknown token")
        return Identity(f"user-{word}", word, f"client-{word}", f"token-{word}", TOKENS[word])


def echo(call: Call, **extra: Any) -> dict[str, Any]:
    return {
        "version": call.version, "key": call.key, "params": call.params, "path_args": call.path_args,
        "user": call.identity.username if call.identity else None, **extra,
    }


def build_registry() -> Registry:
    api = Registry()
    api.resource("widgets", "widget", default_sort=("name",), summary="Test widgets")
    api.resource("vpools", "vpool")
    api.resource("subscribers", "subscriber", key="sid", key_type="int")
    api.resource("brandings", "branding")

    @api.endpoint(resource="widgets", method="GET", kind="list", roles=R, returns="list",
                  params=[Param("contents", str, where="query"), Param("page", int, where="query")])
    async def list_widgets(call: Call) -> Any:
        """List the widgets."""
        return [WIDGET, TEMPLATE] if call.version == 1 else echo(call)

    @api.endpoint(resource="widgets", method="POST", roles=RW, params=[
        Param("name", str, True), Param("size", int), Param("ratio", float), Param("enabled", bool),
        Param("tags", list), Param("meta", dict), Param("vpool_guid", GUID), Param("note", str, nullable=True),
    ])
    async def create_widget(call: Call) -> Any:
        return echo(call, guid=WIDGET)

    @api.endpoint(resource="widgets", method="GET", kind="fetch", roles=R)
    async def fetch_widget(call: Call) -> Any:
        if call.key == TEMPLATE:
            raise RuntimeError("the internals of the widget store")
        if call.key != WIDGET:
            raise object_not_found("widget")
        return {"guid": call.guid, "name": "<script>alert(1)</script>", "vpool_guid": VPOOL,
                "parent_widget_guid": TEMPLATE, "child_widgets_guids": [TEMPLATE],
                "snapshots": [{"guid": VPOOL}], **echo(call)}

    @api.endpoint(resource="widgets", method="PATCH", roles=RWM, params=[Param("name", str)], fields=["description"])
    async def patch_widget(call: Call) -> Any:
        return echo(call, body=call.body)

    @api.endpoint(resource="widgets", method="DELETE", roles=RW, returns="none")
    async def delete_widget(call: Call) -> None:
        return None

    @api.endpoint(resource="widgets", method="POST", action="resize", roles=RW, returns="task",
                  params=[Param("size", int, True), Param("force", bool, default=False)])
    async def resize(call: Call) -> Any:
        return echo(call)

    @api.endpoint(resource="widgets", method="GET", link="children", roles=R, versions=(1, 1), returns="list")
    async def children(call: Call) -> Any:
        return echo(call)

    @api.endpoint(resource="widgets", method="POST", action="archive", roles=R, returns="task")
    async def archive(call: Call) -> Any:
        return Response("task-1", 202)

    @api.endpoint(resource="subscribers", method="POST", action="subscribe", roles=R, returns="list")
    async def subscribe(call: Call) -> Any:
        return echo(call, body=call.body)

    @api.endpoint(resource="brandings", method="GET", kind="list", roles=R, token=False, returns="list")
    async def brandings(call: Call) -> Any:
        return echo(call)

    @api.endpoint(method="POST", path="/api/echo/{word}/{count:int}/", roles=(), token=False,
                  authenticates=False, versioned=False, returns="value")
    async def echo_words(call: Call) -> Any:
        """Say a word a few times."""
        return echo(call, words=[call.path_args["word"]] * call.path_args["count"])

    return api


REGISTRY = build_registry()


@asynccontextmanager
async def serving(store: Store, data_dir: Path, registry: Registry = REGISTRY) -> AsyncIterator[ApiHarness]:
    """The test API on an ephemeral TLS port with the word authenticator and one configured CORS origin."""
    config = node_config(data_dir, api={"cors_origins": [CORS_ORIGIN]})
    prepare_data_dir(config)
    node = build_node(config, reactor, store=store, authenticator=WordAuthenticator(), endpoints=registry)
    node.mark_ready()  # the test endpoints need no bootstrapped store
    pool = HTTPConnectionPool(reactor, persistent=False)
    harness = await serve_api(node, pool)
    try:
        yield harness
    finally:
        await node.api.stopService()
        await pool.closeCachedConnections()


def headers(version: str | None = "2", token: str | None = "admin", **extra: str) -> dict[str, str]:  # noqa: S107
    found = dict(extra)
    if version is not None:
        found["Accept"] = f"application/json; version={version}"
    if token is not None:
        found["Authorization"] = f"Bearer {token}"
    return found
