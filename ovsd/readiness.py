"""Whether this node is ready to serve: the store reached, roles, groups and admin present, the node registered.

Until then the API answers 503 ``not_ready`` (``GET /api`` says so in its ``ready`` field): a password grant in
the first second after start would otherwise be refused for a correct password, and count toward a lockout.
"""

from __future__ import annotations


class Readiness:
    """One node's readiness, set once by the startup sequence and read by the API on every call."""

    def __init__(self, ready: bool = False) -> None:
        self.ready = ready

    def set_ready(self) -> None:
        self.ready = True
