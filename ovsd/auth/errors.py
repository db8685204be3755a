"""The refusals of authentication, as domain errors: the API edge (``ovsd/api/errors.py``) gives each its
status, code and headers, so nothing under ``ovsd/auth/`` knows about HTTP."""

from __future__ import annotations


class AuthError(Exception):
    """An authentication refusal with the contract's code (``invalid_token``, ``invalid_client``, …)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class NotAuthenticated(AuthError):
    """The caller's credentials (a bearer token) are missing, malformed, unknown, expired or inactive."""


class GrantRefused(AuthError):
    """The token endpoint refuses a grant (RFC 6749 §5.2: ``invalid_request``, ``invalid_client``, …)."""


class RateLimited(AuthError):
    """Too many attempts from one address; ``retry_after`` seconds until the next may be tried."""

    def __init__(self, code: str, description: str, retry_after: int) -> None:
        super().__init__(code, description)
        self.retry_after = retry_after
