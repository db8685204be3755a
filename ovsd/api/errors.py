"""API errors: exceptions that carry the contract's status, code and description."""

from __future__ import annotations

import uuid

from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.auth.errors import AuthError, GrantRefused, RateLimited

log = Logger()


class ApiError(Exception):
    """An error answered as ``{"error": code, "error_description": description}`` with ``status``."""

    def __init__(self, status: int, code: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def invalid_data(description: str) -> ApiError:
    return ApiError(400, "invalid_data", description)


def not_found(description: str = "The requested resource could not be found") -> ApiError:
    return ApiError(404, "not_found", description)


def object_not_found(kind: str = "object") -> ApiError:
    return ApiError(404, "object_not_found", f"The requested {kind} could not be found")


def forbidden(description: str) -> ApiError:
    return ApiError(403, "forbidden", description)


def conflict(description: str) -> ApiError:
    return ApiError(409, "conflict", description)


def not_acceptable(description: str) -> ApiError:
    return ApiError(406, "not_acceptable", description)


def missing_parameter(name: str) -> ApiError:
    return ApiError(406, "invalid_data", f"Invalid data passed: {name} is missing")


def store_unavailable() -> ApiError:
    return ApiError(503, "store_unavailable", "The cluster store is unreachable; nothing was changed")


def not_ready() -> ApiError:
    return ApiError(503, "not_ready", "The node is starting; try again in a moment", {"Retry-After": "1"})


def node_unavailable(node: str) -> ApiError:
    return ApiError(503, "node_unavailable", f"The StorageRouter {node} that must do this is down")


def unauthorized(code: str, description: str) -> ApiError:
    """A 401: every one carries the RFC 6750 challenge naming its code."""
    return ApiError(401, code, description, {"WWW-Authenticate": www_authenticate(code)})


def not_authenticated() -> ApiError:
    return unauthorized("not_authenticated", "Authentication credentials were not provided")


def invalid_roles(description: str) -> ApiError:
    return ApiError(403, "invalid_roles", description)


def www_authenticate(code: str) -> str:
    """The challenge every 401 carries (RFC 6750)."""
    return f'Bearer realm="ovsd", error="{code}"'


#: a token endpoint's answers are never cached (RFC 6749 §5.1)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def from_auth_error(err: AuthError) -> ApiError:
    """The contract's answer to a refusal of authentication (the one place that gives them HTTP form)."""
    if isinstance(err, RateLimited):
        return ApiError(429, err.code, err.description, {"Retry-After": str(err.retry_after)})
    if isinstance(err, GrantRefused):
        return ApiError(400, err.code, err.description, dict(NO_STORE))
    return unauthorized(err.code, err.description)


def from_model_error(err: Exception) -> ApiError:
    """The contract's answer to a refusal of the object model or of the list language."""
    from ovsd.dal.query import InvalidQuery
    from ovsd.dal.repository import InUse, InvalidValue, ObjectNotFound, UniqueConflict, VersionConflict

    if isinstance(err, ObjectNotFound):
        return object_not_found(err.kind)
    if isinstance(err, InvalidValue):
        return invalid_data(f"Invalid data passed: {err.field} {err.problem}")
    if isinstance(err, UniqueConflict):
        return conflict(f"A {err.kind} with this {err.field} already exists")
    if isinstance(err, InUse):
        return conflict(str(err))
    if isinstance(err, VersionConflict):
        return conflict(str(err))
    if isinstance(err, InvalidQuery):
        return invalid_data(f"Invalid data passed: {err}")
    return ApiError(400, "invalid_data", str(err))


def internal_error(failure: Failure, method: bytes, path: bytes) -> ApiError:
    """The 500 for a failure nobody expected: the failure is logged with a fresh correlation id, and the
    answer's description carries the same id (never the failure itself).

    Every 500 the API answers is made here, so none leaves without an id that finds its log event.
    """
    correlation = uuid.uuid4().hex
    log.failure(
        "unexpected error on {method} {path} (correlation id {correlation})", failure,
        method=method.decode("latin-1"), path=path.decode("utf-8", "replace"), correlation=correlation,
    )
    return ApiError(500, "internal_server", f"An unexpected error occurred; correlation id {correlation}")
