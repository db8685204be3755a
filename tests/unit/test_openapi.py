"""GET /api/openapi.json: a valid OpenAPI 3.1 document generated from the declarations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted
from openapi_spec_validator import validate

from ovsd.api.declare import load_views
from ovsd.api.openapi import openapi_document
from ovsd.store.connection import Store
from tests.conftest import ApiHarness
from tests.unit.api_framework_support import REGISTRY, serving


@pytest_twisted.async_yield_fixture
async def api(store: Store, data_dir: Path) -> AsyncIterator[ApiHarness]:
    async with serving(store, data_dir) as harness:
        yield harness


@pytest_twisted.ensureDeferred
async def test_the_served_document_is_valid_openapi_3_1(api: ApiHarness) -> None:
    status, doc, _ = await api.request("GET", "/api/openapi.json/")
    assert status == 200
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert {"/api/", "/api/openapi.json", "/api/widgets/", "/api/widgets/{guid}/",
            "/api/widgets/{guid}/resize/", "/api/subscribers/{sid}/subscribe/",
            "/api/echo/{word}/{count}/"} <= set(doc["paths"])


@pytest_twisted.ensureDeferred
async def test_operations_carry_roles_versions_parameters_and_errors(api: ApiHarness) -> None:
    _, doc, _ = await api.request("GET", "/api/openapi.json")
    resize: dict[str, Any] = doc["paths"]["/api/widgets/{guid}/resize/"]["post"]
    assert resize["x-required-roles"] == ["read", "write"]
    assert "Requires roles: read, write." in resize["description"]
    assert resize["security"] == [{"bearer": []}]
    assert resize["x-api-versions"] == {"min": 1, "max": 2}
    assert resize["parameters"] == [
        {"name": "guid", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}]
    schema = resize["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["size"]
    assert schema["properties"]["force"] == {"type": "boolean"}
    assert resize["responses"]["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "a token from POST /api/oauth2/token/"}
    listing = doc["paths"]["/api/widgets/"]["get"]
    assert [p["name"] for p in listing["parameters"]] == ["contents", "page"]
    assert listing["summary"] == "List the widgets."
    create = doc["paths"]["/api/widgets/"]["post"]
    assert "201" in create["responses"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    assert "204" in doc["paths"]["/api/widgets/{guid}/"]["delete"]["responses"]
    subscribe = doc["paths"]["/api/subscribers/{sid}/subscribe/"]["post"]
    assert subscribe["parameters"][0]["schema"] == {"type": "integer"}
    # no token needed: the security requirement is optional
    assert doc["paths"]["/api/brandings/"]["get"]["security"] == [{}, {"bearer": []}]


def test_the_document_of_every_declared_view_is_valid() -> None:
    registry = load_views()
    validate(openapi_document(registry.endpoints(), registry.resources().values()))


def test_operation_ids_are_unique() -> None:
    ids = [e.operation_id for e in REGISTRY.endpoints()]
    assert len(ids) == len(set(ids))
