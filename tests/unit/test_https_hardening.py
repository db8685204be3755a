"""HTTPS as a scanner or a browser sees the node: HSTS and a versionless Server header on every kind of
answer, TLS 1.2 with AEAD suites only, and every 500 carrying the correlation id of its log event."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet import ssl as tssl
from twisted.logger import globalLogPublisher
from twisted.web import resource, server

from ovsd import tls
from ovsd.api.http import HSTS
from ovsd.api.transport import listen_tls
from tests.conftest import ApiHarness
from tests.raw_https import client_context, exchange, handshake
from tests.work_support import WorkNode, work_node

__all__ = ["work_node"]  # fixtures

#: TLS 1.2 suites with CBC: what an old client, or a downgrade, would like to use
CBC_SUITES = "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
AEAD_SUITES = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"
PREFLIGHT = {"Origin": "https://127.0.0.1", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization"}
V1 = {"Accept": "application/json; version=1"}


def hardened(headers: Any, what: str) -> None:
    assert headers.getRawHeaders("strict-transport-security") == [HSTS.decode()], what
    server_names = headers.getRawHeaders("server")
    assert server_names == ["ovsd"], what
    assert not re.search(r"\d", server_names[0]), what


@pytest_twisted.ensureDeferred
async def test_every_kind_of_answer_carries_hsts_and_no_server_version(api: ApiHarness, monkeypatch: Any) -> None:
    status, _, response = await api.request("GET", "/api")
    assert status == 200
    hardened(response.headers, "200")
    status, _, response = await api.request("GET", "/nothing")
    assert status == 404
    hardened(response.headers, "404 from Klein")
    status, _, response = await api.request("GET", "/api/nosuchthing/", headers=V1)
    assert status == 404
    hardened(response.headers, "404 of the route table")
    status, _, response = await api.request("GET", "/api/storagerouters/", headers=V1)
    assert status == 401 and response.headers.hasHeader("www-authenticate")
    hardened(response.headers, "401 challenge")
    status, _, response = await api.request("OPTIONS", "/api/storagerouters/", headers=PREFLIGHT)
    assert status == 200 and response.headers.getRawHeaders("access-control-allow-origin") == ["https://127.0.0.1"]
    hardened(response.headers, "CORS preflight")
    status, _, response = await api.request("HEAD", "/api")
    assert status == 200
    hardened(response.headers, "HEAD")
    status, _, response = await api.request("GET", "/api", headers={"X-Big": "a" * 40_000})
    assert status == 431
    hardened(response.headers, "431 written by the connection")

    async def broken(context: Any, request: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ovsd.api.app.api_metadata", broken)
    status, _, response = await api.request("GET", "/api")
    assert status == 500
    hardened(response.headers, "500")
    await api.context.store.stopService()
    try:
        status, _, response = await api.request("GET", "/api/storagerouters/", headers=V1)
        assert status == 503
        hardened(response.headers, "503")
    finally:
        api.context.store.startService()
        await api.context.store.wait_until_available(interval=0.05)


@pytest_twisted.ensureDeferred
async def test_a_long_poll_answer_carries_hsts(work_node: WorkNode) -> None:
    token = await work_node.token("read")
    await work_node.node.call("POST", "/api/messages/5/subscribe/", token, body=["EVENT"])
    last = (await work_node.node.call("GET", "/api/messages/5/last/", token)).body
    reply = await work_node.node.call("GET", f"/api/messages/5/wait/?message_id={last}&timeout=0.2", token)
    assert reply.status == 200 and reply.body["messages"] == []
    hardened(reply.response.headers, "long-poll")


@pytest_twisted.ensureDeferred
async def test_refusals_written_by_the_connection_carry_hsts(api: ApiHarness) -> None:
    ca = api.context.config.tls_dir / "ca.pem"
    for request, status in [
        (b"GET /" + b"a" * 17_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /api HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n", 413),
        # what Twisted alone would answer with a bare 400: no body, no HSTS
        (b"GET /api HTTP/1.1\r\nNo colon in this header\r\n\r\n", 400),
        (b"POST /api HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
        (b"GET /api\r\n\r\n", 400),
    ]:
        answer = await threads.deferToThread(exchange, api.port, ca, [request])
        assert answer.status == status
        assert set(answer.body) == {"error", "error_description"}
        assert answer.headers["strict-transport-security"] == HSTS.decode()
        assert answer.headers["server"] == "ovsd"


@pytest_twisted.ensureDeferred
async def test_tls_1_2_offers_aead_suites_only(api: ApiHarness, tmp_path: Path) -> None:
    ca = api.context.config.tls_dir / "ca.pem"
    cbc = client_context(ca, CBC_SUITES, tls12_only=True)
    # the CBC-only client can talk TLS 1.2 to a server with Twisted's default suites: the refusal below is ours
    tls.ensure_material(tmp_path, "127.0.0.1", "test-node")
    defaults = tls.server_options(tmp_path)
    permissive = listen_tls(reactor, 0, server.Site(resource.Resource()), tssl.CertificateOptions(
        privateKey=defaults.privateKey, certificate=defaults.certificate, raiseMinimumTo=tssl.TLSVersion.TLSv1_2,
    ), "127.0.0.1")
    try:
        result = await threads.deferToThread(
            handshake, permissive.getHost().port, client_context(tmp_path / "ca.pem", CBC_SUITES, tls12_only=True))
        assert not isinstance(result, ssl.SSLError), result
        assert result[0] in CBC_SUITES.split(":") and result[1] == "TLSv1.2"
    finally:
        await permissive.stopListening()

    refused = await threads.deferToThread(handshake, api.port, cbc)
    assert isinstance(refused, ssl.SSLError)
    for suite in AEAD_SUITES.split(":"):
        agreed = await threads.deferToThread(handshake, api.port, client_context(ca, suite, tls12_only=True))
        assert not isinstance(agreed, ssl.SSLError), (suite, agreed)
        assert agreed[:2] == (suite, "TLSv1.2")
    agreed = await threads.deferToThread(handshake, api.port, client_context(ca))
    assert not isinstance(agreed, ssl.SSLError) and agreed[1] == "TLSv1.3"  # a current client is unaffected


async def logged_500(api: ApiHarness, method: str, path: str, **kwargs: Any) -> None:
    """A 500 whose description ends with a correlation id, and a failure logged with that same id."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        status, body, response = await api.request(method, path, **kwargs)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert status == 500, (path, body)
    assert response.headers.getRawHeaders("content-type")[0].startswith("application/json")
    assert body["error"] == "internal_server"
    assert "secret internals" not in body["error_description"] and "Traceback" not in body["error_description"]
    match = re.fullmatch(r"An unexpected error occurred; correlation id ([0-9a-f]{32})", body["error_description"])
    assert match, body
    logged = [e for e in events if e.get("correlation") == match.group(1)]
    assert len(logged) == 1 and logged[0].get("log_failure") is not None, events
    assert logged[0]["log_failure"].getErrorMessage() == "secret internals"


def secret_failure(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret internals")


@pytest_twisted.ensureDeferred
async def test_a_failing_handler_is_500_with_its_correlation_id(api: ApiHarness, monkeypatch: Any) -> None:
    monkeypatch.setattr(api.service.api, "openapi", secret_failure)  # a declared endpoint's handler
    await logged_500(api, "GET", "/api/openapi.json")

    async def broken(context: Any, request: Any) -> None:
        secret_failure()

    monkeypatch.setattr("ovsd.api.app.api_metadata", broken)  # a Klein route's handler
    await logged_500(api, "GET", "/api")


@pytest_twisted.ensureDeferred
async def test_a_failure_while_answering_is_500_with_its_correlation_id(api: ApiHarness, monkeypatch: Any) -> None:
    # writing the answer fails: the declared endpoints' path (answered by the site's root) …
    monkeypatch.setattr(api.service.api, "render", secret_failure)
    await logged_500(api, "GET", "/api/openapi.json")
    # … and Klein's, which hands what it cannot render to the request's processingFailed
    await logged_500(api, "GET", "/api")


@pytest_twisted.ensureDeferred
async def test_a_failure_before_routing_is_500_with_its_correlation_id(api: ApiHarness, monkeypatch: Any) -> None:
    monkeypatch.setattr(api.service.site.resource, "declared", secret_failure)  # twisted.web's processingFailed
    await logged_500(api, "GET", "/api/storagerouters/", headers=V1)


def test_no_500_is_written_outside_the_one_helper() -> None:
    """Every 500 goes through ovsd.api.errors.internal_error (which logs the id): no other code makes one."""
    root = Path(__file__).resolve().parents[2] / "ovsd"
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for pattern in (r"setResponseCode\(\s*500", r"ApiError\(\s*500", r"\"internal_server\"", "The answer failed"):
            if re.search(pattern, text) and path.name != "errors.py":
                offenders.append(f"{path.relative_to(root)}: {pattern}")
    assert offenders == []


@pytest.mark.parametrize("name", [
    "MAX_LENGTH", "totalHeadersSize", "maxHeaders", "abortTimeout", "length", "line_mode", "lineReceived",
    "lineLengthExceeded", "allHeadersReceived", "allContentReceived", "writeHeaders", "timeoutConnection",
    "resetTimeout", "setTimeout", "clearLineBuffer", "_respondToBadRequestAndDisconnect",
])
def test_the_twisted_hooks_the_limits_rely_on_still_exist(name: str) -> None:
    """ApiChannel overrides or calls these of Twisted's HTTPChannel; a Twisted that renamed one would silently
    drop a limit, so this names the one that went missing."""
    from twisted.web.http import HTTPChannel

    assert hasattr(HTTPChannel, name), f"twisted.web.http.HTTPChannel has no {name} any more"
