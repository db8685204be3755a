"""The operations of a change set: saves, deletes and guards that the repository applies all or nothing.

A change set is planned from what was read (``Repository.planned_create``/``planned_change`` build the
saves) and applied by one store script (``Repository.apply``): a write that spans objects — a password and
the revocation of the tokens it guarded, a group change and the role grants that follow it — is either
wholly in the store or not at all, whatever happens to the process or the store link in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ovsd.dal.objects import DataObject

__all__ = ["Delete", "Guard", "Members", "Operation", "Save", "Unchanged"]


@dataclass(frozen=True)
class Save:
    """Store ``data`` (every stored field) as the object; ``before`` is the object as read, None to create it.

    Refused with a version conflict when the object changed (or appeared) since it was read.
    """

    kind: str
    guid: str
    data: Mapping[str, Any]
    before: DataObject | None = None


@dataclass(frozen=True)
class Delete:
    """Remove the object as read (refused with a version conflict when it changed since)."""

    obj: DataObject


@dataclass(frozen=True)
class Members:
    """A guard: the objects pointing at (kind, guid) through its reverse relation are exactly ``guids``.

    What the set was planned from (a user's clients, a client's tokens): one added or removed meanwhile makes
    the whole set fail with a version conflict, and the caller plans again from a fresh read.
    """

    kind: str
    guid: str
    reverse: str
    guids: tuple[str, ...]


@dataclass(frozen=True)
class Unchanged:
    """A guard: the object is still at the version it was read at (the set was planned from its fields)."""

    obj: DataObject


Operation = Save | Delete
Guard = Members | Unchanged
