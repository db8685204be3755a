"""Who is calling: the identity a bearer token stands for, and the seam that finds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.web.server import Request


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller behind a valid token: its user, its client, the token and the role codes it carries."""

    user_guid: str
    username: str
    client_guid: str
    token_guid: str
    roles: frozenset[str]


class Authenticator(Protocol):
    """Finds the caller of a request (the real one reads bearer tokens: ovsd/auth/authenticator.py)."""

    async def authenticate(self, request: Request) -> Identity | None:
        """The caller, or None when the request has no Authorization header.

        A header that is present but not acceptable (wrong scheme, unknown or expired token, inactive user)
        raises NotAuthenticated (ovsd.auth.errors) with the contract's code; the API edge answers 401 with
        its challenge.
        """
        ...
