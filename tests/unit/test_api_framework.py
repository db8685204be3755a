"""The declared-endpoint framework as a client sees it: routing, versions, tokens, roles, CORS, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted

from ovsd.api.http import api_path
from ovsd.store.connection import Store
from tests.conftest import ApiHarness
from tests.unit.api_framework_support import CORS_ORIGIN, TEMPLATE, WIDGET, headers, serving


@pytest_twisted.async_yield_fixture
async def api(store: Store, data_dir: Path) -> AsyncIterator[ApiHarness]:
    async with serving(store, data_dir) as harness:
        yield harness


def content_type(response: Any) -> str:
    return str(response.headers.getRawHeaders("content-type")[0])


# --- versions ---------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_each_version_is_served_and_echoed_in_the_content_type(api: ApiHarness) -> None:
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers("1"))
    assert status == 200
    assert body == [WIDGET, TEMPLATE]
    assert content_type(response) == "application/json; version=1"
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers("2"))
    assert (status, body["version"]) == (200, 2)
    assert content_type(response) == "application/json; version=2"
    # ``*`` is the seed era's version 1 (its GUI walks lists as plain arrays), not the highest spoken
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers("*"))
    assert (status, body) == (200, [WIDGET, TEMPLATE])
    assert content_type(response) == "application/json; version=1"


@pytest_twisted.ensureDeferred
async def test_missing_or_malformed_version_is_406_missing_header(api: ApiHarness) -> None:
    for accept in (None, "application/json", "application/json; version=two", "*/*", "application/json; version="):
        extra = {} if accept is None else {"Accept": accept}
        status, body, _ = await api.request("GET", "/api/widgets/", headers=headers(None, **extra))
        assert status == 406, accept
        assert body["error"] == "missing_header"


@pytest_twisted.ensureDeferred
async def test_version_outside_the_range_is_406_with_the_requirements(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api/widgets/", headers=headers("3"))
    assert status == 406
    assert body == {"error": "invalid_version",
                    "error_description": "API version requirements: 1 <= <version> <= 2. Got 3"}
    # an endpoint that only speaks version 1
    status, body, _ = await api.request("GET", f"/api/widgets/{WIDGET}/children/", headers=headers("2"))
    assert (status, body["error_description"]) == (406, "API version requirements: 1 <= <version> <= 1. Got 2")
    status, body, _ = await api.request("GET", f"/api/widgets/{WIDGET}/children/", headers=headers("1"))
    assert (status, body["version"]) == (200, 1)
    status, body, _ = await api.request("GET", f"/api/widgets/{WIDGET}/children/", headers=headers("*"))
    assert (status, body["version"]) == (200, 1)


@pytest_twisted.ensureDeferred
async def test_exempt_paths_need_no_version(api: ApiHarness) -> None:
    status, _, response = await api.request("GET", "/api/openapi.json")
    assert status == 200
    assert content_type(response) == "application/json"
    status, body, _ = await api.request("POST", "/api/echo/hello/3/")
    assert (status, body["words"]) == (200, ["hello"] * 3)
    status, _, _ = await api.request("GET", "/api/")
    assert status == 200


# --- routing ----------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_every_path_works_with_and_without_trailing_slash(api: ApiHarness) -> None:
    for path in ("/api/widgets", "/api/widgets/"):
        status, body, _ = await api.request("GET", path, headers=headers())
        assert (status, body["version"]) == (200, 2)
    for path in (f"/api/widgets/{WIDGET}", f"/api/widgets/{WIDGET}/"):
        status, body, _ = await api.request("GET", path, headers=headers())
        assert (status, body["guid"]) == (200, WIDGET)
    for path in (f"/api/widgets/{WIDGET}/resize", f"/api/widgets/{WIDGET}/resize/"):
        status, body, _ = await api.request("POST", path, headers=headers(), json={"size": 3})
        assert (status, body["params"]) == (200, {"size": 3, "force": False})
    # no redirect for a POST without the slash
    status, body, _ = await api.request("POST", "/api/widgets", headers=headers(), json={"name": "w"})
    assert (status, body["guid"]) == (201, WIDGET)


@pytest_twisted.ensureDeferred
async def test_unknown_resource_or_action_is_404_not_found(api: ApiHarness) -> None:
    for path in ("/api/gadgets/", f"/api/gadgets/{WIDGET}/", f"/api/widgets/{WIDGET}/explode/",
                 f"/api/widgets/{WIDGET}/resize/more/", "/api/brandings/x/", "/api/widgets//"):
        status, body, _ = await api.request("GET", path, headers=headers())
        assert status == 404, path
        assert body["error"] == "not_found"


@pytest_twisted.ensureDeferred
async def test_declared_paths_are_decoded_like_every_other_path(api: ApiHarness) -> None:
    # each segment is percent-decoded, then UTF-8, whichever router serves the path
    encoded = "".join(f"%{ord(c):02X}" for c in WIDGET)
    status, body, _ = await api.request("GET", f"/api/widgets/{encoded}/", headers=headers())
    assert (status, body["key"]) == (200, WIDGET)
    status, body, _ = await api.request("GET", "/api/%77idgets/", headers=headers())
    assert status == 200
    # twisted.web unquotes each segment and Klein joins them with slashes: an encoded slash is a slash
    status, body, _ = await api.request("GET", f"/api/widgets%2F{WIDGET}/", headers=headers())
    assert (status, body["key"]) == (200, WIDGET)
    # the token endpoint is routed with and without the slash (its own answer to an unknown grant, not a 404)
    for path in ("/api/oauth2/token", "/api/oauth2/token/"):
        status, body, _ = await api.request("POST", path, data={"grant_type": "nonsense"})
        assert (status, body["error"]) == (400, "unsupported_grant_type"), path
    status, _, _ = await api.request("GET", "/api/widgets/%FF/", headers=headers())
    assert status == 400


def test_every_api_path_goes_to_the_route_table_and_only_api_paths() -> None:
    assert api_path(b"/api/widgets/") == "widgets/"
    assert api_path(b"/api/a%2Fb/%C3%A9") == "a/b/\u00e9"
    assert api_path(b"/api") == api_path(b"/api/") == ""
    assert api_path(b"/api/oauth2/token/") == "oauth2/token/"
    assert api_path(b"/api//x") == "/x"  # the route table answers 404: an empty segment names nothing
    assert api_path(b"/api/%FF") == "//"  # names nothing; dispatch refuses it first (400 naming the segment)
    for path in (b"/apis/x", b"/other", b"/", b"/index.html"):
        assert api_path(path) is None, path


@pytest_twisted.ensureDeferred
async def test_undeclared_method_is_405_with_allow(api: ApiHarness) -> None:
    status, body, response = await api.request("PUT", "/api/widgets/", headers=headers())
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert response.headers.getRawHeaders("allow") == ["GET, HEAD, OPTIONS, POST"]
    status, _, response = await api.request("GET", f"/api/widgets/{WIDGET}/resize/", headers=headers())
    assert status == 405
    assert response.headers.getRawHeaders("allow") == ["OPTIONS, POST"]
    status, _, response = await api.request("POST", f"/api/widgets/{WIDGET}/", headers=headers())
    assert status == 405
    assert response.headers.getRawHeaders("allow") == ["DELETE, GET, HEAD, OPTIONS, PATCH"]


@pytest_twisted.ensureDeferred
async def test_head_is_answered_like_get_without_a_body(api: ApiHarness) -> None:
    get = await api.client.request("GET", api.url(f"/api/widgets/{WIDGET}/"), headers=headers())
    raw = await get.content()
    status, body, response = await api.request("HEAD", f"/api/widgets/{WIDGET}/", headers=headers())
    assert status == 200
    assert body is None
    # the length the GET body has (answers are not chunked)
    assert response.headers.getRawHeaders("content-length") == [str(len(raw))]
    assert content_type(response) == "application/json; version=2"


@pytest_twisted.ensureDeferred
async def test_success_statuses_follow_the_endpoint_kind(api: ApiHarness) -> None:
    status, _, _ = await api.request("POST", "/api/widgets/", headers=headers(), json={"name": "w"})
    assert status == 201
    status, _, _ = await api.request("PATCH", f"/api/widgets/{WIDGET}/", headers=headers(), json={"name": "v"})
    assert status == 202
    status, body, response = await api.request("DELETE", f"/api/widgets/{WIDGET}/", headers=headers())
    assert (status, body) == (204, None)
    assert response.headers.getRawHeaders("content-length") is None  # a 204 has no body, not even a length
    # a handler may answer its own status
    status, body, response = await api.request("POST", f"/api/widgets/{WIDGET}/archive/", headers=headers())
    assert (status, body) == (202, "task-1")
    assert content_type(response) == "application/json; version=2"


# --- object keys ------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_malformed_guid_is_404_object_not_found(api: ApiHarness) -> None:
    for key in ("not-a-guid", WIDGET[:-1], WIDGET + "0", WIDGET.replace("-", "")):
        status, body, _ = await api.request("GET", f"/api/widgets/{key}/", headers=headers())
        assert status == 404, key
        assert body == {"error": "object_not_found", "error_description": "The requested widget could not be found"}
    # the check runs before the handler: an action on a malformed GUID never runs
    status, body, _ = await api.request("POST", "/api/widgets/xyz/resize/", headers=headers(), json={"size": 1})
    assert (status, body["error"]) == (404, "object_not_found")


@pytest_twisted.ensureDeferred
async def test_guid_in_capitals_reaches_the_handler_in_lower_case(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", f"/api/widgets/{WIDGET.upper()}/", headers=headers())
    assert (status, body["key"]) == (200, WIDGET)


@pytest_twisted.ensureDeferred
async def test_integer_keys_are_integers_and_others_are_400(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api/subscribers/1234567890/subscribe/", headers=headers(),
                                        json=["TASK_COMPLETE"])
    assert (status, body["key"], body["body"]) == (200, 1234567890, ["TASK_COMPLETE"])
    status, body, _ = await api.request("POST", "/api/subscribers/12ab/subscribe/", headers=headers(), json=[])
    assert status == 400
    assert body == {"error": "invalid_data", "error_description": "Invalid data passed: sid must be an integer"}


@pytest_twisted.ensureDeferred
async def test_explicit_path_templates_convert_their_placeholders(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api/echo/hi/2")
    assert (status, body["path_args"], body["words"]) == (200, {"word": "hi", "count": 2}, ["hi", "hi"])
    status, body, _ = await api.request("POST", "/api/echo/hi/two/")
    assert (status, body["error"]) == (404, "not_found")


# --- authentication and roles -----------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_no_token_is_401_not_authenticated_with_a_challenge(api: ApiHarness) -> None:
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers(token=None))
    assert (status, body["error"]) == (401, "not_authenticated")
    assert response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="ovsd", error="not_authenticated"']


@pytest_twisted.ensureDeferred
async def test_bad_token_is_401_with_the_authenticators_code(api: ApiHarness) -> None:
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers(token="stolen"))
    assert (status, body["error"]) == (401, "invalid_token")
    assert response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="ovsd", error="invalid_token"']
    status, body, response = await api.request("GET", "/api/widgets/", headers=headers(
        token=None, Authorization="Basic YTpi"))
    assert (status, body["error"]) == (401, "invalid_authorization_type")
    assert response.headers.getRawHeaders("www-authenticate") == [
        'Bearer realm="ovsd", error="invalid_authorization_type"']


@pytest_twisted.ensureDeferred
async def test_missing_role_is_403_naming_every_required_role(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", f"/api/widgets/{WIDGET}/resize/", headers=headers(token="reader"),
                                        json={"size": 1})
    assert status == 403
    assert body == {"error": "invalid_roles", "error_description": "This call requires roles: read, write"}
    status, body, _ = await api.request("PATCH", f"/api/widgets/{WIDGET}/", headers=headers(token="writer"),
                                        json={})
    assert (status, body["error_description"]) == (403, "This call requires roles: read, write, manage")
    status, body, _ = await api.request("POST", f"/api/widgets/{WIDGET}/resize/", headers=headers(token="writer"),
                                        json={"size": 1})
    assert (status, body["user"]) == (200, "writer")


@pytest_twisted.ensureDeferred
async def test_token_free_endpoint_serves_anyone_but_refuses_bad_tokens(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api/brandings/", headers=headers(token=None))
    assert (status, body["user"]) == (200, None)
    status, body, _ = await api.request("GET", "/api/brandings/", headers=headers(token="reader"))
    assert (status, body["user"]) == (200, "reader")
    status, body, _ = await api.request("GET", "/api/brandings/", headers=headers(token="stolen"))
    assert (status, body["error"]) == (401, "invalid_token")


@pytest_twisted.ensureDeferred
async def test_routing_and_version_come_before_the_token(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api/gadgets/", headers=headers(token=None))
    assert (status, body["error"]) == (404, "not_found")
    status, body, _ = await api.request("GET", "/api/widgets/", headers=headers(version=None, token=None))
    assert (status, body["error"]) == (406, "missing_header")
    # a malformed GUID does not tell a caller without a token whether the route exists with objects
    status, body, _ = await api.request("GET", "/api/widgets/nope/", headers=headers(token=None))
    assert (status, body["error"]) == (401, "not_authenticated")


# --- CORS -------------------------------------------------------------------------------------------------
def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"}


@pytest_twisted.ensureDeferred
async def test_preflight_from_a_storagerouter_origin_is_allowed(api: ApiHarness) -> None:
    for origin in ("https://127.0.0.1", "https://127.0.0.1:8443", CORS_ORIGIN):
        status, _, response = await api.request("OPTIONS", f"/api/widgets/{WIDGET}/resize/",
                                                headers=preflight(origin))
        assert status == 200, origin
        assert response.headers.getRawHeaders("access-control-allow-origin") == [origin]
        assert response.headers.getRawHeaders("access-control-allow-credentials") == ["true"]
        assert response.headers.getRawHeaders("access-control-allow-headers") == [
            "x-requested-with, content-type, accept, origin, authorization"]
        assert response.headers.getRawHeaders("access-control-allow-methods") == [
            "GET, POST, PUT, PATCH, DELETE, OPTIONS"]


@pytest_twisted.ensureDeferred
async def test_preflight_from_another_origin_gets_no_cors_headers(api: ApiHarness) -> None:
    for origin in ("https://evil.example", "http://127.0.0.1", "https://127.0.0.2", "https://127.0.0.1/x",
                   "null"):
        status, _, response = await api.request("OPTIONS", "/api/widgets/", headers=preflight(origin))
        assert status == 200, origin
        assert not response.headers.hasHeader("access-control-allow-origin"), origin
        assert response.headers.getRawHeaders("allow") == ["GET, HEAD, OPTIONS, POST"]


@pytest_twisted.ensureDeferred
async def test_plain_options_answers_allow(api: ApiHarness) -> None:
    status, body, response = await api.request("OPTIONS", f"/api/widgets/{WIDGET}")
    assert (status, body) == (200, None)
    assert response.headers.getRawHeaders("allow") == ["DELETE, GET, HEAD, OPTIONS, PATCH"]
    assert not response.headers.hasHeader("access-control-allow-origin")
    # static routes too
    status, _, response = await api.request("OPTIONS", "/api/", headers=preflight("https://127.0.0.1"))
    assert status == 200
    assert "GET" in response.headers.getRawHeaders("allow")[0]
    assert response.headers.getRawHeaders("access-control-allow-origin") == ["https://127.0.0.1"]


@pytest_twisted.ensureDeferred
async def test_allowed_origin_can_read_answers_and_errors(api: ApiHarness) -> None:
    status, _, response = await api.request("GET", "/api/widgets/", headers=headers(Origin=CORS_ORIGIN))
    assert status == 200
    assert response.headers.getRawHeaders("access-control-allow-origin") == [CORS_ORIGIN]
    status, _, response = await api.request("GET", "/api/widgets/", headers=headers(token=None, Origin=CORS_ORIGIN))
    assert status == 401
    assert response.headers.getRawHeaders("access-control-allow-origin") == [CORS_ORIGIN]
    status, _, response = await api.request("GET", "/api/widgets/", headers=headers(Origin="https://evil.example"))
    assert status == 200
    assert not response.headers.hasHeader("access-control-allow-origin")


# --- the guard --------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_handler_crash_is_500_without_internals(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", f"/api/widgets/{TEMPLATE}/", headers=headers())
    assert (status, body["error"]) == (500, "internal_server")
    assert "internals" not in body["error_description"]
    assert "correlation id" in body["error_description"]


@pytest_twisted.ensureDeferred
async def test_store_down_is_503_on_declared_endpoints(api: ApiHarness) -> None:
    store = api.context.store
    await store.stopService()
    try:
        status, body, _ = await api.request("GET", "/api/widgets/", headers=headers())
        assert (status, body["error"]) == (503, "store_unavailable")
        # the document needs no store
        status, _, _ = await api.request("GET", "/api/openapi.json")
        assert status == 200
    finally:
        store.startService()
        await store.wait_until_available(interval=0.05)
    status, _, _ = await api.request("GET", "/api/widgets/", headers=headers())
    assert status == 200
