"""The OAuth 2 grants of the token endpoint (RFC 6749 §4.3 password, §4.4 client credentials).

Every refusal is a 400 with the contract's code. An unknown user and a wrong password get the same answer
(and take the same time), so the endpoint does not tell which usernames exist.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.logger import Logger

from ovsd.auth.errors import GrantRefused
from ovsd.auth.passwords import verify_password
from ovsd.auth.tokens import IssuedToken, issue_token, secret_matches
from ovsd.config import AuthConfig
from ovsd.dal.repository import DataObject, Guard, Members, ObjectNotFound, Repository, Unchanged, VersionConflict
from ovsd.dal.text import string_problem

log = Logger()

#: RFC 6749 §5.1: token responses (and their errors) must not be cached

#: how often a grant is checked again when its user, client or grants changed before the token was stored
GRANT_ATTEMPTS = 5


def oauth_error(code: str, description: str) -> GrantRefused:
    return GrantRefused(code, description)


@dataclass(frozen=True)
class Grant:
    """A token granted to a client, with the role codes it carries."""

    token: IssuedToken
    client_guid: str
    roles: tuple[str, ...]


def parse_basic(header: str) -> tuple[str, str]:
    """(client_id, client_secret) from an HTTP Basic header; the scheme word is case-insensitive."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise oauth_error("invalid_request", "The Authorization header must be Basic base64(client_id:client_secret)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise oauth_error("invalid_request", "The Basic credentials are not valid base64 of UTF-8 text") from None
    client_id, colon, secret = decoded.partition(":")  # the id is a GUID; a secret may contain colons
    if not colon or not client_id:
        raise oauth_error("invalid_request", "The Basic credentials must be client_id:client_secret")
    for name, value in (("client_id", client_id), ("client_secret", secret)):
        problem = string_problem(value)  # strict UTF-8 left no surrogate; NUL and controls remain
        if problem is not None:
            raise oauth_error("invalid_request", f"The Basic credentials' {name} {problem}")
    return client_id, secret


class TokenIssuer:
    """Checks a token request against the store and issues the token."""

    def __init__(self, repository: Repository, config: AuthConfig) -> None:
        self.repository = repository
        self.config = config

    async def grant(self, form: Mapping[str, str], authorization: str | None) -> Grant:
        grant_type = form.get("grant_type", "").strip()
        if not grant_type:
            raise oauth_error("invalid_request", "grant_type is missing")
        if grant_type not in ("password", "client_credentials"):
            raise oauth_error("unsupported_grant_type", f"Grant type {grant_type!r} is not supported; use "
                                                        "password or client_credentials")
        for _ in range(GRANT_ATTEMPTS):
            if grant_type == "password":
                user, client = await self._password_client(form)
                lifetime = self.config.password_token_lifetime
            else:
                user, client = await self._credentials_client(authorization)
                lifetime = self.config.client_token_lifetime
            role_guids, codes, junctions = await self._scope(client, form.get("scope"))
            # issued only if what was checked still holds: a password set, a secret regenerated or a group
            # changed meanwhile revoked the user's tokens, and this one must not outlive that either
            guards: list[Guard] = [Unchanged(user), Unchanged(client),
                                   Members("client", client.guid, "roles", junctions)]
            try:
                token = await issue_token(self.repository, client.guid, role_guids, lifetime, guards)
            except VersionConflict:
                continue  # check again, against the user and client as they are now
            break
        else:
            raise VersionConflict(f"client {client.guid} kept changing while a token was requested")
        log.info("token issued to client {client} ({grant_type}) with roles {roles}",
                 client=client.guid, grant_type=grant_type, roles=",".join(codes))
        return Grant(token=token, client_guid=client.guid, roles=codes)

    # --- the two grants --------------------------------------------------------------------------------
    async def _password_client(self, form: Mapping[str, str]) -> tuple[DataObject, DataObject]:
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            raise oauth_error("invalid_request", "username and password are required")
        user = await self.repository.find("user", "username", username)
        # verify even for an unknown user: the same work, so the same time, as a wrong password
        valid = await verify_password(user.data.get("password") if user else None, password)
        if user is None or not valid:
            raise oauth_error("invalid_client", "Invalid username or password")
        if not user.data.get("is_active", False):
            raise oauth_error("inactive_user", "The user is inactive")
        client_guids = await self.repository.reverse_guids("user", user.guid, "clients")
        for client in await self.repository.get_many("client", client_guids):
            if client.data.get("ovs_type") == "INTERNAL" and client.data.get("grant_type") == "PASSWORD":
                return user, client
        raise oauth_error("unauthorized_client", "The user has no client for the password grant")

    async def _credentials_client(self, authorization: str | None) -> tuple[DataObject, DataObject]:
        if authorization is None:
            raise oauth_error("missing_header", "The client_credentials grant needs an Authorization: Basic header")
        client_id, secret = parse_basic(authorization)
        try:
            client = await self.repository.get("client", client_id.strip().lower())
        except ObjectNotFound:
            client = None
        if client is None or not secret_matches(secret, client.data.get("client_secret")):
            raise oauth_error("invalid_client", "Invalid client_id or client_secret")
        if client.data.get("grant_type") != "CLIENT_CREDENTIALS":
            raise oauth_error("invalid_grant", "This client may not use the client_credentials grant")
        try:
            user = await self.repository.get("user", str(client.data.get("user_guid")))
        except ObjectNotFound:
            raise oauth_error("invalid_client", "Invalid client_id or client_secret") from None
        if not user.data.get("is_active", False):
            raise oauth_error("inactive_user", "The user of this client is inactive")
        return user, client

    # --- scope -----------------------------------------------------------------------------------------
    async def _scope(self, client: DataObject, scope: str | None) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
        """(role guids, role codes) for the token: the requested codes the client holds, default all; and the
        guids of the client's grants they were read from."""
        junctions = await self.repository.reverse_guids("client", client.guid, "roles")
        role_guids = sorted({str(j.data["role_guid"]) for j in await self.repository.get_many("roleclient", junctions)})
        held = await self.repository.get_many("role", role_guids)
        by_code = {str(role.data["code"]): role.guid for role in held}
        requested = list(dict.fromkeys((scope or "").split()))
        if not requested:
            return list(by_code.values()), tuple(by_code), tuple(junctions)
        granted: list[str] = []
        for code in requested:
            if code in by_code:
                granted.append(code)
            elif await self.repository.find("role", "code", code) is not None:
                raise oauth_error("invalid_scope", f"The client does not hold the role {code!r}")
            # an unknown code names no role at all: ignored, as the contract says
        return [by_code[c] for c in granted], tuple(granted), tuple(junctions)
