"""``GET /api/openapi.json``: an OpenAPI 3.1 document generated from the endpoint declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ovsd.api.declare import Endpoint, Resource
from ovsd.api.params import GUID, Param, ParamType

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SCHEMAS: dict[type | str, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
    GUID: {"type": "string", "format": "uuid"},
    object: {},
}
_KEY_SCHEMAS: dict[str, dict[str, Any]] = {
    GUID: {"type": "string", "format": "uuid"}, "int": {"type": "integer"}, "str": {"type": "string"},
}
_RETURNS: dict[str, dict[str, Any]] = {
    "task": {"type": "string", "description": "the id of the task doing the work (see /api/tasks/)"},
    "object": {"type": "object"},
    "list": {"oneOf": [{"type": "array", "description": "version 1: GUIDs, or objects with contents"},
                       {"$ref": "#/components/schemas/ListEnvelope"}]},
    "value": {},
    "none": {"type": "null"},
}
_ERRORS = {
    "400": "Invalid data (the description names the field)",
    "401": "Not authenticated, or a bad token (WWW-Authenticate: Bearer)",
    "403": "The token lacks a role this call requires",
    "404": "No such object (also a malformed GUID), or no such route",
    "405": "Method not allowed here (see Allow)",
    "406": "Missing or unsupported API version, or a missing mandatory parameter",
    "503": "The cluster store or the node that must act is unavailable",
    "500": "Unexpected; the description carries a correlation id",
}


def _schema(kind: ParamType) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"anyOf": [dict(_SCHEMAS[k]) for k in kind]}
    return dict(_SCHEMAS[kind])


def _param_schema(param: Param) -> dict[str, Any]:
    schema = _schema(param.type)
    if param.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if param.description:
        schema["description"] = param.description
    return schema


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if endpoint.path_params:
        for name, _, type_name in endpoint.path_params:
            found.append({"name": name, "in": "path", "required": True, "schema": dict(_KEY_SCHEMAS[type_name])})
    elif endpoint.resource is not None and "{" in endpoint.path:
        res = endpoint.resource
        found.append({"name": res.key, "in": "path", "required": True, "schema": dict(_KEY_SCHEMAS[res.key_type])})
    in_body = endpoint.method in BODY_METHODS
    for param in endpoint.params:
        if in_body and param.where == "body":
            continue
        entry: dict[str, Any] = {"name": param.name, "in": "query", "required": param.mandatory,
                                 "schema": _param_schema(param)}
        if param.description:
            entry["description"] = param.description
        found.append(entry)
    return found


def _request_body(endpoint: Endpoint) -> dict[str, Any] | None:
    if endpoint.method not in BODY_METHODS:
        return None
    body = [p for p in endpoint.params if p.where == "body"]
    if not body and endpoint.allowed_fields is None:
        return None
    properties = {p.name: _param_schema(p) for p in body}
    for name in sorted(endpoint.allowed_fields or ()):
        properties.setdefault(name, {})
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [p.name for p in body if p.mandatory]
    if required:
        schema["required"] = required
    if endpoint.allowed_fields is not None:
        schema["additionalProperties"] = False
    return {
        "required": bool(required),
        "content": {"application/json": {"schema": schema},
                    "application/x-www-form-urlencoded": {"schema": schema}},
    }


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    success: dict[str, Any] = {"description": f"{endpoint.kind} succeeded"}
    if endpoint.status != 204:
        success["content"] = {"application/json": {"schema": dict(_RETURNS[endpoint.returns])}}
    responses: dict[str, Any] = {str(endpoint.status): success}
    for status, description in _ERRORS.items():
        if status == "403" and not (endpoint.token and endpoint.roles):
            continue
        responses[status] = {"description": description,
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return responses


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    low, high = endpoint.versions
    roles = ", ".join(endpoint.roles) if endpoint.token and endpoint.roles else "none"
    notes = [f"Requires roles: {roles}."]
    if endpoint.versioned:
        notes.append(f"API versions {low} to {high} (Accept: application/json; version=N, or *).")
    if not endpoint.token:
        notes.append("No token needed (a bad token still fails).")
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary or f"{endpoint.kind} {endpoint.path}",
        "description": " ".join(notes),
        "tags": [endpoint.resource.name if endpoint.resource is not None else "api"],
        "parameters": _parameters(endpoint),
        "responses": _responses(endpoint),
        "security": [{"bearer": []}] if endpoint.token else [{}, {"bearer": []}],
        "x-required-roles": list(endpoint.roles) if endpoint.token else [],
        "x-kind": endpoint.kind,
        "x-returns": endpoint.returns,
    }
    if endpoint.versioned:
        operation["x-api-versions"] = {"min": low, "max": high}
    body = _request_body(endpoint)
    if body is not None:
        operation["requestBody"] = body
    return operation


def openapi_document(
    endpoints: Iterable[Endpoint], resources: Iterable[Resource], *, title: str = "ovsd", version: str = "0.1.0",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints (paths in their trailing-slash form; both are served)."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title, "version": version,
            "description": "The Open vStorage-style management API of a StorageRouter. Every path is served "
                           "with and without its trailing slash.",
        },
        "tags": [{"name": r.name, "description": r.summary or f"{r.kind} objects"} for r in resources],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from POST /api/oauth2/token/"}},
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error", "error_description"],
                    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
                },
                "Paging": {
                    "type": "object",
                    "properties": {name: {"type": "integer"} for name in (
                        "total_items", "current_page", "max_page", "start_number", "end_number", "page_size")},
                },
                "ListEnvelope": {
                    "type": "object", "required": ["data", "_paging"],
                    "description": "version 2 lists",
                    "properties": {
                        "data": {"type": "array"},
                        "_paging": {"$ref": "#/components/schemas/Paging"},
                        "_sorting": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
                        "_contents": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
                    },
                },
            },
        },
    }
