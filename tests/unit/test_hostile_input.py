"""Hostile strings stop at the edge: text that is not valid Unicode (lone surrogates), or that holds a NUL or a
control character where the field is one line, is refused with a 400 naming the field, nothing is stored,
and the API keeps working. An object an earlier release stored with a lone surrogate stays readable.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest_twisted

from ovsd.api.params import Param
from ovsd.dal.fields import Prop
from ovsd.dal.repository import InvalidValue
from ovsd.store import keys
from tests.views_support import VOLATILE, ViewsNode, populate, store_snapshot, views_node

__all__ = ["views_node"]  # fixtures

HOSTILE = {"a lone high surrogate": "a\ud800b", "a lone low surrogate": "x\udfffy", "a NUL": "a\x00b"}
PROBLEMS = {"a\ud800b": "lone surrogate", "x\udfffy": "lone surrogate", "a\x00b": "NUL"}


def refused(reply: Any, field: str, code: str = "invalid_data") -> None:
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.body["error"] == code, reply.body
    assert field in reply.body["error_description"], reply.body


async def forgive(node: ViewsNode) -> None:
    """Forget the token endpoint's failure counts: every refusal counts, and five lock the address out."""
    for prefix in (keys.auth_failures(""), keys.auth_lockout("")):
        found = await node.store.execute("KEYS", prefix + "*")
        if found:
            await node.store.execute("DEL", *found)


async def unchanged(node: ViewsNode, before: dict[str, Any]) -> None:
    assert await store_snapshot(node.store, VOLATILE) == before


@pytest_twisted.ensureDeferred
async def test_a_user_with_a_hostile_username_is_refused_and_the_api_goes_on(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    viewers = await node.group("viewers")
    before = await store_snapshot(node.store, VOLATILE)
    for what, name in {**HOSTILE, "an escape character": "a\x1bb", "a line feed": "a\nb"}.items():
        body = {"username": name, "password": "pw-1", "group_guid": viewers.guid}
        reply = await node.call("POST", "/api/users/", token, body=body)
        refused(reply, "username")
        assert reply.body["error_description"].startswith("Invalid data passed: username"), what
    # the same surrogate sent as raw UTF-8-like bytes (json.loads lets encoded surrogates through)
    raw = b'{"username": "a\xed\xa0\x80b", "password": "pw-1", "group_guid": "%s"}' % viewers.guid.encode()
    refused(await node.call("POST", "/api/users/", token, raw=raw, content_type="application/json"), "username")
    # deep inside a structure, and in a field name
    refused(await node.call("POST", "/api/users/", token, body={"username": "ok", "x\ud800": 1}), "field name")
    refused(await node.call("POST", "/api/users/", token, body={"password": "p", "username": ["a", {"b": "\x00"}]}),
            "username[1].b")
    await unchanged(node, before)
    reply = await node.call("POST", "/api/users/", token,
                            body={"username": "plain-user", "password": "pw-1", "group_guid": viewers.guid})
    assert reply.status == 201, reply.body
    fetched = await node.call("GET", f"/api/users/{reply.body['guid']}/", token)
    assert fetched.status == 200 and fetched.body["username"] == "plain-user"


@pytest_twisted.ensureDeferred
async def test_a_hostile_patch_stores_nothing_and_the_object_stays_readable(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token()
    path = f"/api/storagerouters/{cluster.storagerouter}/"
    before = await store_snapshot(node.store, VOLATILE)
    for value in HOSTILE.values():
        reply = await node.call("PATCH", path, token, body={"description": value})
        refused(reply, "description")
        assert PROBLEMS[value] in reply.body["error_description"]
    refused(await node.call("PATCH", path, token, body={"name": "sr\x1b[31m"}), "name holds a control character")
    refused(await node.call("PATCH", path, token, body={"name": "two\nlines"}), "name holds a control character")
    refused(await node.call("PATCH", f"/api/vpools/{cluster.vpool}/", token, body={"metadata": {"k": ["\udfff"]}}),
            "metadata.k[0]")
    await unchanged(node, before)
    for reply in [await node.call("GET", path, token), await node.call("GET", "/api/storagerouters/?contents=", token)]:
        assert reply.status == 200, reply.body
    # a description is text: tab and line breaks are fine there
    reply = await node.call("PATCH", path, token, body={"description": "rack 7\n\tshelf 2\r\n"})
    assert reply.status == 202, reply.body
    reply = await node.call("GET", path, token)
    assert reply.status == 200 and reply.body["description"] == "rack 7\n\tshelf 2\r\n"
    assert reply.body["name"] == "sr1"


@pytest_twisted.ensureDeferred
async def test_a_client_with_a_hostile_name_is_refused(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    admin = await node.user("admin")
    before = await store_snapshot(node.store, VOLATILE)
    for name in ["\ud800", *HOSTILE.values(), "tab\there"]:
        reply = await node.call("POST", "/api/clients/", token, body={"name": name, "ovs_type": "USER",
                                                                        "user_guid": admin.guid})
        refused(reply, "name")
    await unchanged(node, before)
    reply = await node.call("POST", "/api/clients/", token, body={"name": "app", "ovs_type": "USER",
                                                                    "user_guid": admin.guid})
    assert reply.status == 201, reply.body
    fetched = await node.call("GET", f"/api/clients/{reply.body['guid']}/", token)
    assert fetched.status == 200 and fetched.body["name"] == "app"


@pytest_twisted.ensureDeferred
async def test_hostile_query_parameters_and_path_segments_are_400(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token()
    for query, field in [("contents=%ED%A0%80", "contents"), ("sort=name%00", "sort"), ("sort=%1b", "sort"),
                         ("contents=%FF", "contents"), ("%ED%A0%80=1", "field name")]:
        refused(await node.call("GET", f"/api/vpools/?{query}", token), field)
    refused(await node.call("GET", "/api/vdisks/?query=%7B%22a%22%3A%22%5Cud800%22%7D", token, version="2"),
            "query")
    for segment in ["%ED%A0%80", "%00", "ab%0Acd", "%C0%80"]:
        reply = await node.call("GET", f"/api/vpools/{segment}/", token)
        refused(reply, "path segment")
        reply = await node.call("PATCH", f"/api/vpools/{segment}/", token, body={"description": "x"})
        refused(reply, "path segment")
    # a well-formed segment that names nothing is still the contract's 404
    assert (await node.call("GET", "/api/vpools/not-a-guid/", token)).error == (404, "object_not_found")
    # a path that is not text names no route: refused like an unknown route, before any token or store read
    refused(await node.call("GET", "/api/vpools/%ED%A0%80/"), "path segment")
    page = await node.call("GET", "/api/%00/", headers={"Accept": "text/html"}, version=None)
    assert page.status == 400 and b"holds a NUL character" in page.raw
    reply = await node.call("GET", f"/api/vpools/{cluster.vpool}/?contents=name", token)
    assert reply.status == 200 and reply.body["name"] == "vpool1"


@pytest_twisted.ensureDeferred
async def test_hostile_token_requests_get_invalid_request_and_never_a_token(views_node: ViewsNode) -> None:
    node = views_node
    reply = await node.call("POST", "/api/oauth2/token/", raw=b"grant_type=password&username=a%ED%A0%80b&password=x",
                            content_type="application/x-www-form-urlencoded", version=None)
    refused(reply, "username", "invalid_request")
    for form, field in [({"grant_type": "password", "username": "admin\x00", "password": "x"}, "username"),
                        ({"grant_type": "password", "username": "admin", "password": "a\x1bb"}, "password"),
                        ({"grant_type": "client_credentials\x00"}, "grant_type")]:
        refused(await node.token_reply(form), field, "invalid_request")
        await forgive(node)
    client_id = (await node.repository.find("client", "name", "tests"))
    assert client_id is None
    await node.admin_token()  # creates the admin's client_credentials client
    assert node._admin_client is not None
    guid, secret = node._admin_client
    for credentials, field in [(f"{guid}:\x00{secret}".encode(), "client_secret"),
                               (f"{guid}\x1b:{secret}".encode(), "client_id"),
                               (guid.encode() + b":\xed\xa0\x80", "UTF-8")]:
        header = "Basic " + base64.b64encode(credentials).decode()
        reply = await node.token_reply({"grant_type": "client_credentials"}, header)
        refused(reply, field, "invalid_request")
        await forgive(node)
    assert await node.store.execute("KEYS", keys.obj("bearertoken", "*")) != []  # the one admin_token made
    tokens_before = await node.store.execute("KEYS", keys.obj("bearertoken", "*"))
    for bad in ["abc\x01def", "abc\x7f", "tok\xe9n"]:
        reply = await node.call("GET", "/api/users/", authorization=f"Bearer {bad}")
        assert reply.error == (401, "invalid_token"), reply.body
    assert await node.store.execute("KEYS", keys.obj("bearertoken", "*")) == tokens_before
    # the endpoint still grants good requests
    token = await node.client_token(guid, secret)
    reply = await node.call("GET", "/api/users/?contents=username", token)
    assert reply.status == 200 and [u["username"] for u in reply.body] == ["admin"]


@pytest_twisted.ensureDeferred
async def test_an_object_an_earlier_release_stored_with_a_lone_surrogate_stays_readable(
    views_node: ViewsNode,
) -> None:
    node = views_node
    cluster = await populate(node.repository)
    admin = await node.user("admin")
    token = await node.admin_token()
    app_reply = await node.call("POST", "/api/clients/", token, body={"name": "app", "ovs_type": "USER",
                                                                        "user_guid": admin.guid})
    app = app_reply.body
    # what the old release wrote: the dal's ASCII JSON with the escapes the client sent
    for kind, guid, field, value in [("storagerouter", cluster.storagerouter, "description", "x\\udfffy"),
                                     ("client", app["guid"], "name", "\\ud800")]:
        key = keys.obj(kind, guid)
        raw = await node.store.execute("GET", key)
        document = json.loads(raw)
        old = json.dumps(document[field])
        assert old in raw
        await node.store.execute("SET", key, raw.replace(old, f'"{value}"'))
    reply = await node.call("GET", f"/api/storagerouters/{cluster.storagerouter}/", token)
    assert reply.status == 200 and reply.body["description"] == "x\ufffdy"
    for version in ("1", "2"):
        reply = await node.call("GET", "/api/storagerouters/?contents=_dynamics,_relations", token, version=version)
        assert reply.status == 200, reply.body
    reply = await node.call("GET", f"/api/storagerouters/{cluster.storagerouter}/",
                            headers={"Accept": "text/html", "Authorization": f"Bearer {token}"}, version=None)
    assert reply.status == 200 and "x\ufffdy" in reply.raw.decode("utf-8")
    reply = await node.call("GET", "/api/clients/?contents=name", token)
    assert reply.status == 200 and "\ufffd" in [c["name"] for c in reply.body]
    # its token still authenticates (the store's Lua reads the owner despite the escape)
    app_token = await node.client_token(app["client_id"], app["client_secret"])
    reply = await node.call("GET", f"/api/clients/{app['guid']}/", app_token)
    assert reply.status == 200 and reply.body["name"] == "\ufffd"
    # and it can be repaired: a PATCH writes over the stored escape
    reply = await node.call("PATCH", f"/api/storagerouters/{cluster.storagerouter}/", token,
                            body={"description": "repaired"})
    assert reply.status in (200, 202), reply.body
    reply = await node.call("GET", f"/api/storagerouters/{cluster.storagerouter}/", token)
    assert reply.body["description"] == "repaired"


def test_the_model_refuses_what_it_cannot_store_whoever_calls_it() -> None:
    name = Prop("name", str)
    description = Prop("description", str, text=True)
    metadata = Prop("metadata", dict)
    assert name.check("a\ud800") == "holds a lone surrogate (not valid Unicode)"
    assert name.check("a\x00") == "holds a NUL character"
    assert name.check("a\tb") == name.check("a\x85") == "holds a control character"
    assert description.check("a\n\tb\r\n") is None
    assert description.check("a\x00") == "holds a NUL character"
    assert description.check("a\x1b") == "holds a control character"
    assert metadata.check({"k": [{"x\udfff": 1}]}) == (
        "holds a lone surrogate (not valid Unicode) (at a field name in k[0])")
    assert metadata.check({"k": "any\ncontrol\x1b"}) is None
    assert Param("p", str).value_of("ok") == "ok"
    assert Param("q", str, text=True).value_of("two\nlines") == "two\nlines"
    assert InvalidValue("name", "x").field == "name"


@pytest_twisted.ensureDeferred
async def test_the_repository_refuses_unstorable_values_from_any_caller(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    before = await store_snapshot(node.store, VOLATILE)
    for changes in [{"name": "a\ud800"}, {"description": "\x00"}, {"name": "a\nb"}]:
        try:
            await node.repository.update("vpool", cluster.vpool, changes)
        except InvalidValue as err:
            assert err.field == next(iter(changes))
        else:
            raise AssertionError(f"{changes!r} was stored")
    try:
        await node.repository.create("group", {"name": "\udfff"})
    except InvalidValue as err:
        assert err.field == "name"
    else:
        raise AssertionError("a group named by a lone surrogate was stored")
    # a lookup by a value that cannot be stored finds nothing, without a command the store cannot take
    assert await node.repository.find("user", "username", "admin\ud800") is None
    assert (await node.repository.find("user", "username", "admin")) is not None
    await unchanged(node, before)
