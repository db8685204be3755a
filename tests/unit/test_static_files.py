"""``api.static_dir``: a directory's files at / on the API port, never a byte from outside it, and the API's
routes unaffected."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.web.client import HTTPConnectionPool

from ovsd.config import ConfigError
from ovsd.service import build_node, prepare_data_dir
from ovsd.store.connection import Store
from tests.conftest import ApiHarness, node_config, serve_api
from tests.raw_https import RawAnswer, exchange

INDEX = b"<!doctype html><title>Open vStorage</title><script src='app.js'></script>"
SECRET = b"outside: never served"


@pytest.fixture
def gui(tmp_path: Path) -> Path:
    """A GUI directory, and next to it a file that must never be served."""
    root = tmp_path / "gui"
    (root / "lib" / "ovs").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "app.js").write_bytes(b"define([], function () { return 1; });")
    (root / "css").mkdir()
    (root / "css" / "style.css").write_bytes(b"body { color: black; }")
    (root / "lib" / "ovs" / "api.js").write_bytes(b"// api")
    (root / "lib" / "index.html").write_bytes(b"<p>lib</p>")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "in.js").symlink_to(root / "app.js")
    (root / "api").write_bytes(b"a file named like the API")
    return root


@pytest_twisted.async_yield_fixture
async def node(store: Store, tmp_path: Path, gui: Path) -> AsyncIterator[ApiHarness]:
    data_dir = tmp_path / "data"
    config = node_config(data_dir, api={"static_dir": str(gui)})
    prepare_data_dir(config)
    built = build_node(config, reactor, store=store)
    built.mark_ready()  # static files and the API's routes need no bootstrapped store
    pool = HTTPConnectionPool(reactor, persistent=False)
    yield await serve_api(built, pool)
    await built.api.stopService()
    await pool.closeCachedConnections()


async def get(node: ApiHarness, path: str, **headers: str) -> tuple[int, bytes, Any]:
    response = await node.client.get(node.url(path), headers=headers or None)
    return response.code, await response.content(), response


def header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return str(values[0]) if values else None


async def raw(node: ApiHarness, target: bytes) -> RawAnswer:
    """A request sent byte for byte (an HTTP library would normalise the dots away)."""
    ca = node.context.config.tls_dir / "ca.pem"
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    return await threads.deferToThread(exchange, node.port, ca, [request])


@pytest_twisted.ensureDeferred
async def test_files_are_served_with_their_type_and_caching_headers(node: ApiHarness, gui: Path) -> None:
    status, body, response = await get(node, "/")
    assert (status, body) == (200, INDEX)
    assert header(response, "Content-Type") == "text/html"
    assert header(response, "Cache-Control") == "no-cache"  # a new GUI is seen at once
    assert header(response, "X-Content-Type-Options") == "nosniff"
    for path, kind in (("/app.js", "javascript"), ("/css/style.css", "text/css"), ("/lib/ovs/api.js", "javascript"),
                       ("/in.js", "javascript")):
        status, body, response = await get(node, path)
        assert status == 200, path
        assert body == (gui / path.lstrip("/")).read_bytes()
        assert kind in (header(response, "Content-Type") or ""), path
        assert header(response, "Cache-Control") == "public, max-age=3600", path
    # a conditional GET of an unchanged file is answered 304 without the file
    _, _, response = await get(node, "/app.js")
    status, body, _ = await get(node, "/app.js", **{"If-Modified-Since": header(response, "Last-Modified") or ""})
    assert (status, body) == (304, b"")
    # a big file comes whole (streamed by a producer, not read at once)
    status, body, response = await get(node, "/big.bin")
    assert status == 200 and body == (gui / "big.bin").read_bytes()
    assert response.length == 3 << 20  # announced: the body is sent with its length, not chunked
    # a directory with an index serves it; /dir redirects to /dir/ so the page's relative links work
    status, body, _ = await get(node, "/lib/")
    assert (status, body) == (200, b"<p>lib</p>")
    response = await node.client.get(node.url("/lib"), allow_redirects=False)
    assert (response.code, header(response, "Location")) == (301, "/lib/")
    await response.content()


@pytest_twisted.ensureDeferred
async def test_nothing_outside_the_directory_and_no_listing_is_ever_served(node: ApiHarness) -> None:
    for target in (b"/../secret.txt", b"/css/../../secret.txt", b"/%2e%2e/secret.txt", b"/css/%2E%2E/%2e%2e/secret.txt",
                   b"/..%2fsecret.txt", b"/%2e%2e%2fsecret.txt", b"/out.txt", b"/outdir/secret.txt",
                   b"//etc/passwd", b"/css/..", b"/%00", b"/empty/", b"/lib/ovs/", b"/missing.js"):
        answer = await raw(node, target)
        assert answer.status in (400, 404), (target, answer.received[:200])
        assert SECRET not in answer.received and b"root:" not in answer.received
        if answer.status == 404:
            assert answer.body["error"] == "not_found", target
    # what the dots resolve to inside the directory is fine
    assert (await raw(node, b"/css/style.css")).status == 200


@pytest_twisted.ensureDeferred
async def test_the_api_routes_win_over_files(node: ApiHarness) -> None:
    status, body, _ = await node.request("GET", "/api")
    assert status == 200 and "versions" in body  # the metadata root, not the file named api
    status, body, _ = await node.request("GET", "/api/")
    assert status == 200 and "versions" in body
    status, body, _ = await node.request("GET", "/api/no-such-resource/")
    assert (status, body["error"]) == (404, "not_found")
    status, body, _ = await node.request("GET", "/api/branding/")
    assert status in (401, 406)  # the API's own answer (no version), never a file
    # other methods on a file path are not file reads
    status, body, _ = await node.request("POST", "/index.html")
    assert status in (404, 405) and b"Open vStorage" not in (body if isinstance(body, bytes) else b"")


def test_a_static_dir_that_is_not_a_directory_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        node_config(tmp_path / "data", api={"static_dir": str(tmp_path / "nowhere")})
    assert "api.static_dir" in str(refused.value)
    assert node_config(tmp_path / "data").api.static_dir == ""
