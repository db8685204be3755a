"""The API's generic behaviour a client sees: error shape, routing, size cap, 500s, store outage."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.logger import globalLogPublisher

from tests.conftest import ApiHarness


@pytest_twisted.ensureDeferred
async def test_metadata_with_and_without_trailing_slash(api: ApiHarness) -> None:
    for path in ("/api", "/api/"):
        status, body, response = await api.request("GET", path)
        assert status == 200
        assert body["authenticated"] is False
        assert body["authentication_state"] == "unauthenticated"
        assert body["versions"] == [1, 2]
        assert "127.0.0.1" in body["storagerouter_ips"]
        assert response.headers.getRawHeaders("content-type")[0].startswith("application/json")


@pytest_twisted.ensureDeferred
async def test_unknown_route_is_404_in_the_contract_shape(api: ApiHarness) -> None:
    for path in ("/nothing", "/api/nothing/here/at/all/deep"):
        status, body, _ = await api.request("GET", path)
        assert status == 404
        assert body["error"] == "not_found"
        assert set(body) == {"error", "error_description"}


@pytest_twisted.ensureDeferred
async def test_wrong_method_is_405_with_allow(api: ApiHarness) -> None:
    status, body, response = await api.request("DELETE", "/api")
    assert status == 405
    assert body["error"] == "method_not_allowed"
    assert "GET" in response.headers.getRawHeaders("allow")[0]


@pytest_twisted.ensureDeferred
async def test_body_over_one_mib_is_413(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api", data=b"x" * (1024 * 1024 + 1))
    assert status == 413
    assert body["error"] == "request_too_large"
    # exactly 1 MiB is not too large (it reaches routing, which refuses the method)
    status, body, _ = await api.request("POST", "/api", data=b"x" * (1024 * 1024))
    assert status == 405


@pytest_twisted.ensureDeferred
async def test_unexpected_exception_is_500_with_a_logged_correlation_id(api: ApiHarness, monkeypatch: Any) -> None:
    async def broken(context: Any, request: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("ovsd.api.app.api_metadata", broken)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        status, body, _ = await api.request("GET", "/api")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert status == 500
    assert body["error"] == "internal_server"
    assert "secret internals" not in body["error_description"]
    assert "Traceback" not in body["error_description"]
    correlation = body["error_description"].rsplit(" ", 1)[1]
    assert any(e.get("correlation") == correlation and e.get("log_failure") for e in events)


@pytest_twisted.ensureDeferred
async def test_store_down_is_503_then_recovers(api: ApiHarness) -> None:
    store = api.context.store
    await store.stopService()
    status, body, _ = await api.request("GET", "/api")
    assert status == 503
    assert body == {"error": "store_unavailable", "error_description": body["error_description"]}
    store.startService()
    await store.wait_until_available(interval=0.05)
    status, _, _ = await api.request("GET", "/api")
    assert status == 200
