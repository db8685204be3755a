"""Passwords: argon2id hashes, computed in a thread (tens of milliseconds of CPU must not stall the reactor)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.threads import deferToThread

# the hash of a random password nobody knows, made with the default parameters: verifying against it
# when a username is unknown costs what a real verification costs, so the answer time does not tell
# whether a user exists
_DECOY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$kjsh74VDDDCoUHVkRgeT1A$YewM+LmxSH04zNO9jTfIcStfsrpxvijLJ2l1LUQBiSw"


def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's low-memory argon2id profile (t=3, m=64 MiB, p=4)
    return PasswordHasher()


def _hash(password: str) -> str:
    return _hasher().hash(password)


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher().verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """The argon2id hash (``$argon2id$…``, salted) of a password."""
    result: str = await deferToThread(_hash, password)
    return result


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether password matches the stored hash; a missing or corrupt hash never matches.

    The work is the same whether or not there is a hash, so callers may pass None for an unknown user.
    """
    if not stored:
        await deferToThread(_verify, _DECOY_HASH, password)
        return False
    result: bool = await deferToThread(_verify, stored, password)
    return result
