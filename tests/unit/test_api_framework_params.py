"""Parameters and bodies of declared endpoints, and the HTML pages for browsers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_twisted

from ovsd.store.connection import Store
from tests.conftest import ApiHarness
from tests.unit.api_framework_support import TEMPLATE, VPOOL, WIDGET, headers, serving


@pytest_twisted.async_yield_fixture
async def api(store: Store, data_dir: Path) -> AsyncIterator[ApiHarness]:
    async with serving(store, data_dir) as harness:
        yield harness


RESIZE = f"/api/widgets/{WIDGET}/resize/"


@pytest_twisted.ensureDeferred
async def test_parameters_come_from_the_body_first_then_the_query(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", RESIZE + "?size=7&force=true", headers=headers(), json={"size": 3})
    assert (status, body["params"]) == (200, {"size": 3, "force": True})
    status, body, _ = await api.request("POST", RESIZE + "?size=7", headers=headers())
    assert (status, body["params"]) == (200, {"size": 7, "force": False})


@pytest_twisted.ensureDeferred
async def test_form_encoded_bodies_are_read_and_converted(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", RESIZE, headers=headers(), data={"size": "12", "force": "True"})
    assert (status, body["params"]) == (200, {"size": 12, "force": True})
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), data={
        "name": "w", "tags": '["a", "b"]', "meta": '{"k": 1}', "ratio": "0.5", "enabled": "false"})
    assert status == 201
    assert body["params"] == {"name": "w", "tags": ["a", "b"], "meta": {"k": 1}, "ratio": 0.5, "enabled": False}


@pytest_twisted.ensureDeferred
async def test_boolean_strings(api: ApiHarness) -> None:
    for text, value in (("true", True), ("True", True), ("false", False), ("False", False)):
        status, body, _ = await api.request("POST", RESIZE, headers=headers(), json={"size": 1, "force": text})
        assert (status, body["params"]["force"]) == (200, value), text
    status, body, _ = await api.request("POST", RESIZE, headers=headers(), json={"size": 1, "force": "yes"})
    assert (status, body["error"]) == (400, "invalid_data")
    assert body["error_description"] == "Invalid data passed: force must be a boolean"


@pytest_twisted.ensureDeferred
async def test_wrong_types_are_400_naming_the_field(api: ApiHarness) -> None:
    cases = {
        "size": ("big", "an integer"), "ratio": ("half", "a number"), "tags": ({"a": 1}, "a list"),
        "meta": ([1], "an object"), "vpool_guid": ("vp-1", "a GUID"), "name": (5, "a string"),
        "enabled": (1, "a boolean"),
    }
    for field, (value, expected) in cases.items():
        document = {"name": "w", field: value}
        status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), json=document)
        assert status == 400, field
        assert body == {"error": "invalid_data",
                        "error_description": f"Invalid data passed: {field} must be {expected}"}
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), json={"name": "w", "size": True})
    assert (status, body["error_description"]) == (400, "Invalid data passed: size must be an integer")


@pytest_twisted.ensureDeferred
async def test_null_only_where_declared_nullable(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), json={"name": "w", "note": None})
    assert (status, body["params"]) == (201, {"name": "w", "note": None})
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), json={"name": "w", "size": None})
    assert (status, body["error_description"]) == (400, "Invalid data passed: size must be an integer")


@pytest_twisted.ensureDeferred
async def test_guid_parameters_are_checked_and_lower_cased(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(),
                                        json={"name": "w", "vpool_guid": VPOOL.upper()})
    assert (status, body["params"]["vpool_guid"]) == (201, VPOOL)


@pytest_twisted.ensureDeferred
async def test_unknown_fields_of_create_and_patch_are_400(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(),
                                        json={"name": "w", "colour": "red", "admin": True})
    assert status == 400
    assert body == {"error": "invalid_data",
                    "error_description": "Invalid data passed: unknown field(s): admin, colour"}
    status, body, _ = await api.request("PATCH", f"/api/widgets/{WIDGET}/", headers=headers(), json={"guid": "x"})
    assert (status, body["error_description"]) == (400, "Invalid data passed: unknown field(s): guid")
    # declared extra fields pass through to the handler as sent
    status, body, _ = await api.request("PATCH", f"/api/widgets/{WIDGET}/", headers=headers(),
                                        json={"description": "d"})
    assert (status, body["params"], body["body"]) == (202, {}, {"description": "d"})


@pytest_twisted.ensureDeferred
async def test_missing_mandatory_parameter_is_406_with_the_contract_text(api: ApiHarness) -> None:
    status, body, _ = await api.request("POST", RESIZE, headers=headers(), json={"force": True})
    assert status == 406
    assert body == {"error": "invalid_data", "error_description": "Invalid data passed: size is missing"}
    status, body, _ = await api.request("POST", "/api/widgets/", headers=headers(), json={})
    assert (status, body["error_description"]) == (406, "Invalid data passed: name is missing")


@pytest_twisted.ensureDeferred
async def test_bad_json_is_400_invalid_data(api: ApiHarness) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        status, body, _ = await api.request("POST", RESIZE, data=raw, headers=headers(**{
            "Content-Type": "application/json"}))
        assert (status, body["error"]) == (400, "invalid_data"), raw


@pytest_twisted.ensureDeferred
async def test_query_parameters_keep_blank_values_and_are_typed(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api/widgets/?contents=&page=2", headers=headers())
    assert (status, body["params"]) == (200, {"contents": "", "page": 2})
    status, body, _ = await api.request("GET", "/api/widgets/?page=x", headers=headers())
    assert (status, body["error_description"]) == (400, "Invalid data passed: page must be an integer")


# --- html -------------------------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_browser_gets_a_readable_page_with_links(api: ApiHarness) -> None:
    status, raw, response = await api.request("GET", f"/api/widgets/{WIDGET}/", headers={
        "Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Authorization": "Bearer reader"})
    assert status == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    page = raw.decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert f'<a href="/api/widgets/{WIDGET}/">&quot;{WIDGET}&quot;</a>' in page
    assert f'<a href="/api/vpools/{VPOOL}/">' in page
    assert page.count(f'<a href="/api/widgets/{TEMPLATE}/">') == 2  # parent_widget_guid and child_widgets_guids
    # a GUID nested in another kind of object is not taken for a widget
    assert f'<a href="/api/widgets/{VPOOL}/">' not in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest_twisted.ensureDeferred
async def test_browser_pages_for_lists_and_errors(api: ApiHarness) -> None:
    status, raw, _ = await api.request("GET", f"/api/widgets/{WIDGET}/children/", headers={
        "Accept": "text/html", "Authorization": "Bearer reader"})
    assert status == 200
    status, raw, response = await api.request("GET", "/api/widgets/", headers={"Accept": "text/html"})
    assert status == 401
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    assert "not_authenticated" in raw.decode("utf-8")
    # a JSON client that names a version wins over text/html in the same header
    status, body, _ = await api.request("GET", "/api/widgets/", headers={
        "Accept": "text/html, application/json; version=1", "Authorization": "Bearer reader"})
    assert (status, body) == (200, [WIDGET, TEMPLATE])


@pytest_twisted.ensureDeferred
async def test_browser_page_of_the_metadata_root(api: ApiHarness) -> None:
    status, raw, response = await api.request("GET", "/api/", headers={"Accept": "text/html"})
    assert status == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    assert "storagerouter_ips" in raw.decode("utf-8")


@pytest_twisted.ensureDeferred
async def test_json_bodies_are_compact_utf8(api: ApiHarness) -> None:
    response = await api.client.request("GET", api.url(f"/api/widgets/{WIDGET}/"), headers=headers())
    raw = await response.content()
    assert json.loads(raw)["name"] == "<script>alert(1)</script>"
    assert b", " not in raw
