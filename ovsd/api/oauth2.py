"""``POST /api/oauth2/token/``: the token endpoint's HTTP side (form body, Basic header, brute-force limit)."""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from ovsd.api.errors import NO_STORE, ApiError
from ovsd.api.params import form_fields
from ovsd.auth.errors import GrantRefused
from ovsd.auth.oauth2 import TokenIssuer, oauth_error
from ovsd.auth.ratelimit import TokenRateLimit
from ovsd.context import NodeContext
from ovsd.dal.text import display, string_problem


def read_form(request: IRequest) -> dict[str, str]:
    """The form-encoded body's fields (first value of each).

    Only the body counts: credentials in a query string would end up in access logs and proxies. A field
    that is not UTF-8 or holds a control character is 400 invalid_request naming it, before any store read.
    """
    content = request.content
    if content is None:
        return {}
    content.seek(0)
    raw = content.read()
    content.seek(0)
    try:
        fields = form_fields(raw)
    except ApiError as err:
        # the token endpoint speaks RFC 6749: a malformed request is invalid_request (the field named)
        raise oauth_error("invalid_request", err.description) from None
    form = {name: values[0] for name, values in fields.items() if values}
    for name, value in form.items():
        problem = string_problem(value)  # every field of a token request is one line
        if problem is not None:
            raise oauth_error("invalid_request", f"Invalid data passed: {display(name)} {problem}")
    return form


def _header(request: IRequest, name: bytes) -> str | None:
    raw = request.getHeader(name)
    return None if raw is None else raw.decode("latin-1")


async def token_endpoint(context: NodeContext, request: IRequest) -> dict[str, Any]:
    """Grant a token, counting failures (every 400) and successes for the address's limits."""
    repository = context.repository
    limit = TokenRateLimit(context.store, context.config.api.trusted_proxies, repository.now)
    address = limit.client_address(request)
    await limit.check(address)
    try:
        form = read_form(request)
        grant = await TokenIssuer(repository, context.config.auth).grant(
            form, _header(request, b"authorization"),
        )
    except GrantRefused:
        await limit.record_failure(address)  # raises RateLimited on the attempt that locks the address out
        raise
    await limit.record_success(address)
    for name, value in NO_STORE.items():
        request.setHeader(name, value)
    return {
        "access_token": grant.token.access_token,
        "token_type": "bearer",
        "expires_in": grant.token.expires_in,
    }
