"""Bearer authentication (RFC 6750): turns ``Authorization: Bearer <token>`` into the caller's Identity.

It runs on every API call, so the token, its client and the client's user are read in one round trip (a
small Lua script that follows the two relations inside the store and answers only what an Identity needs);
role codes are remembered per role guid, because a role's code never changes. Nothing about the token itself
is remembered: a revoked token fails on its next call.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twisted.web.iweb import IRequest

from ovsd.auth.errors import NotAuthenticated
from ovsd.auth.identity import Identity
from ovsd.auth.tokens import digest, remove_token
from ovsd.dal.repository import Repository
from ovsd.store.scripts import load_lua

# everything a call needs to know about its bearer token, in one round trip (see the script)
_LOOKUP = load_lua("auth_token_lookup")

#: the metadata root's spelling of each 401 code (the seed's ``authentication_state``)
AUTHENTICATION_STATES = {
    "not_authenticated": "unauthenticated",
    "invalid_authorization_type": "invalid authorization type",
    "invalid_token": "invalid token",
    "token_expired": "token expired",
    "inactive_user": "inactive user",
}


#: RFC 6750 §2.1 b64token: every token issued here is one (URL-safe base64)
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def unauthorized(code: str, description: str) -> NotAuthenticated:
    """The refusal of a caller's credentials (the API answers 401 with the RFC 6750 challenge naming it)."""
    return NotAuthenticated(code, description)


def _header(request: IRequest, name: bytes) -> str | None:
    raw = request.getHeader(name)
    if raw is None:
        return None
    # latin-1 never fails: a header with odd bytes is then simply an unknown token, not a crash
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)


class BearerAuthenticator:
    """The Authenticator of the API: bearer tokens issued by the token endpoint."""

    def __init__(self, repository: Repository, clock: Callable[[], float] | None = None) -> None:
        self.repository = repository
        self.clock = clock or repository.now
        self._role_codes: dict[str, str] = {}

    async def authenticate(self, request: IRequest) -> Identity | None:
        header = _header(request, b"authorization")
        if header is None:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise unauthorized("invalid_authorization_type", "Only Bearer tokens are accepted (Authorization: "
                                                             "Bearer <token>)")
        token = credentials.strip()
        if not _TOKEN68.fullmatch(token):
            # not a token this node could have issued (empty, control characters, odd bytes): no lookup
            raise unauthorized("invalid_token", "Invalid token")
        reply = await self.repository.store.script(
            _LOOKUP, [], [digest(token)],
        )
        if not reply:
            raise unauthorized("invalid_token", "Invalid token")
        token_guid, expiration, client_guid, user_guid, username, active, *role_guids = reply
        if float(expiration) <= self.clock():
            await remove_token(self.repository, token_guid)
            raise unauthorized("token_expired", "Token expired")
        if not user_guid:
            # the client or user went away under the token (a delete in progress): the token is dead
            raise unauthorized("invalid_token", "Invalid token")
        if active != "1":
            raise unauthorized("inactive_user", "The user of this token is inactive")
        codes = self._role_codes
        if all(g in codes for g in role_guids):
            roles = [codes[g] for g in role_guids]  # known since an earlier call: no lookup, no coroutine
        else:
            roles = await self.role_codes(role_guids)
        return Identity(
            user_guid=user_guid,
            username=username,
            client_guid=client_guid,
            token_guid=token_guid,
            roles=frozenset(roles),
        )

    async def role_codes(self, role_guids: list[str]) -> list[str]:
        """The codes of these roles (cached: a role's code is fixed at creation)."""
        missing = [g for g in role_guids if g not in self._role_codes]
        if missing:
            for role in await self.repository.get_many("role", missing):
                self._role_codes[role.guid] = str(role.data["code"])
        return [self._role_codes[g] for g in role_guids if g in self._role_codes]
