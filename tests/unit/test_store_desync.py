"""A hostile string never puts the store connection out of step (issue 9's reproduction, kept as a test).

One request carrying a lone surrogate once made the store connection hand every later reply to the previous
caller: made-up tokens came back authenticated as admin and real callers got other callers' objects. Here
the hostile requests are sent first and then keep coming, interleaved with 4 s of concurrent callers holding a
made-up token or a real one: no made-up token is ever accepted and every real caller gets its own object.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest_twisted
from twisted.internet import defer
from twisted.web.http_headers import Headers

from ovsd.store import keys
from tests.views_support import ViewsNode, populate, views_node  # noqa: F401 - fixture

SURROGATE = "\ud800".encode("utf-8", "surrogatepass")  # what "\ud800" is as bytes on the wire: b"\xed\xa0\x80"
BOGUS = "bogus-token-xyz"


async def send(node: ViewsNode, method: str, path: str, headers: dict[bytes, bytes], body: bytes | None = None,
               ) -> tuple[int, Any]:
    response = await node.api.client.request(
        method, node.api.url(path).encode() if isinstance(path, bytes) else node.api.url(path),
        headers=Headers({k: [v] for k, v in headers.items()}), data=body, timeout=30,
    )
    raw = await response.content()
    try:
        return response.code, json.loads(raw) if raw else None
    except ValueError:
        return response.code, raw


def hostile_requests(token: str, admin_group: str, storagerouter: str) -> list[tuple[str, str, dict[bytes, bytes],
                                                                                       bytes | None]]:
    bearer = {b"Authorization": f"Bearer {token}".encode(), b"Accept": b"application/json; version=1"}
    as_json = {**bearer, b"Content-Type": b"application/json"}
    form = {b"Content-Type": b"application/x-www-form-urlencoded"}
    return [
        ("POST", "/api/users/", as_json, json.dumps({
            "username": "a\ud800b", "password": "Xx-12345678", "is_active": True, "group_guid": admin_group,
        }).encode()),
        ("PATCH", f"/api/storagerouters/{storagerouter}/", as_json, json.dumps({"description": "x\udfffy"}).encode()),
        ("POST", "/api/clients/", as_json, json.dumps({"name": "\ud800", "ovs_type": "CONFIDENTIAL"}).encode()),
        ("GET", "/api/storagerouters/?sort=%ED%A0%80", bearer, None),
        ("GET", "/api/storagerouters/%ED%A0%80/", bearer, None),
        ("POST", "/api/oauth2/token/", form, b"grant_type=password&username=%ED%A0%80&password=x"),
        ("POST", "/api/oauth2/token/", {**form, b"Authorization": b"Basic " + base64.b64encode(SURROGATE + b":s")},
         b"grant_type=client_credentials"),
        ("GET", "/api/", {b"Authorization": b"Bearer " + SURROGATE}, None),
    ]


async def unique_names(node: ViewsNode) -> set[str]:
    """Every user name and client name the store knows (its unique-index keys)."""
    found = await node.store.execute("KEYS", keys.unique("*", "*name", "*"))
    return set(found)


def refused(path: str, status: int, answer: Any) -> bool:
    """The hostile request was turned away (the metadata answers 200, unauthenticated)."""
    if path == "/api/" and status == 200:
        return answer.get("authenticated") is False
    return status in (400, 401, 429)  # 429: the token endpoint's brute-force limit, also a refusal


@pytest_twisted.ensureDeferred
async def test_hostile_strings_never_let_a_made_up_token_in_nor_give_a_caller_another_callers_object(
    views_node: ViewsNode,  # noqa: F811
) -> None:
    node = views_node
    cluster = await populate(node.repository)
    objects = {f"/api/{kind}s/{cluster.guid_of(kind)}/": cluster.guid_of(kind)
               for kind in ("storagerouter", "pmachine", "vpool", "vmachine", "vdisk", "storagedriver")}
    token = await node.admin_token()
    admin_group = (await node.group("administrators")).guid
    hostile = hostile_requests(token, admin_group, cluster.storagerouter)
    names_before = await unique_names(node)

    for method, path, headers, body in hostile:
        status, answer = await send(node, method, path, headers, body)
        assert refused(path, status, answer), (method, path, status, answer)

    failures: list[str] = []
    counts = {"bogus": 0, "real": 0, "hostile": 0}
    deadline = time.monotonic() + 4.0

    async def bogus() -> None:
        while time.monotonic() < deadline:
            status, answer = await send(node, "GET", "/api/", {b"Authorization": f"Bearer {BOGUS}".encode()})
            counts["bogus"] += 1
            if status == 200 and answer.get("authenticated"):
                failures.append(f"a made-up token authenticated: {answer}")
            elif status not in (200, 401):
                failures.append(f"a made-up token got {status}: {answer}")

    async def real(offset: int) -> None:
        paths = list(objects)
        i = offset
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += 1
            status, answer = await send(node, "GET", path, {b"Authorization": f"Bearer {token}".encode(),
                                                             b"Accept": b"application/json; version=1"})
            counts["real"] += 1
            if status != 200 or answer.get("guid") != objects[path]:
                failures.append(f"{path} answered {status}: {str(answer)[:200]}")

    async def keep_hostile() -> None:
        i = 0
        while time.monotonic() < deadline:
            method, path, headers, body = hostile[i % len(hostile)]
            i += 1
            status, answer = await send(node, method, path, headers, body)
            counts["hostile"] += 1
            if not refused(path, status, answer):
                failures.append(f"hostile {method} {path} answered {status}: {answer}")

    workers = [bogus() for _ in range(3)] + [real(i) for i in range(3)] + [keep_hostile()]
    await defer.gatherResults([defer.ensureDeferred(w) for w in workers])
    assert not failures, failures[:10]
    assert min(counts.values()) > 10, counts

    # nothing hostile was stored, and every object is still readable
    assert await unique_names(node) == names_before
    reader = {b"Authorization": f"Bearer {token}".encode(), b"Accept": b"application/json; version=1"}
    status, answer = await send(node, "GET", f"/api/storagerouters/{cluster.storagerouter}/", reader)
    assert status == 200 and "\udfff" not in json.dumps(answer)
