"""Who is calling: the identity a bearer token stands for, and the authenticator interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.web.iweb import IRequest


@dataclass(frozen=True)
class Identity:
    """The caller behind a valid bearer token: its user, client, token and the roles the token carries."""

    user_guid: str
    username: str
    client_guid: str
    token_guid: str
    roles: frozenset[str]

    def has(self, *codes: str) -> bool:
        return all(code in self.roles for code in codes)


class Authenticator(Protocol):
    """Turns a request's Authorization header into an Identity.

    Returns None when there is no Authorization header; raises ApiError (401, with the contract's code)
    for a wrong scheme, an unknown or expired token, or an inactive user.
    """

    async def authenticate(self, request: IRequest) -> Identity | None: ...
