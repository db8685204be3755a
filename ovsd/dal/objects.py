"""The object model's values and refusals: stored objects, their decoding, the errors of the repository."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any

from ovsd.dal.fields import Dynamic, ObjectType, no_data_yet
from ovsd.dal.registry import TYPES


class DalError(Exception):
    """Base of the object model's refusals."""


class ObjectNotFound(DalError):
    def __init__(self, kind: str, guid: str) -> None:
        super().__init__(f"{kind} {guid} does not exist")
        self.kind = kind
        self.guid = guid


class InvalidValue(DalError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


class UniqueConflict(DalError):
    def __init__(self, kind: str, field: str) -> None:
        super().__init__(f"a {kind} with this {field} already exists")
        self.kind = kind
        self.field = field


class VersionConflict(DalError):
    """The object changed since it was read (only raised when the caller asked for a version)."""


class InUse(DalError):
    def __init__(self, kind: str, reverse: str) -> None:
        super().__init__(f"the {kind} is still referenced by its {reverse}")
        self.reverse = reverse


@dataclass
class DataObject:
    """One stored object: its stored fields and relation guids, and the version they were read at."""

    kind: str
    guid: str
    data: dict[str, Any]
    version: int

    @property
    def type(self) -> ObjectType:
        return TYPES[self.kind]

    def __getitem__(self, name: str) -> Any:
        return self.data.get(name)


# the C scanner under json.loads, called directly: our documents are compact json.dumps output (no
# whitespace to skip, no BOM), and for a list of 10,000 objects the wrapper costs as much as the parse
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the decoder has every attribute it reads


def decode_object(kind: str, guid: str, raw: str) -> DataObject:
    data, _ = _scan(raw, 0)
    version = int(data.pop("_version", 0))
    return DataObject(kind=kind, guid=guid, data=data, version=version)


def relation_guids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def is_cached(dyn: Dynamic) -> bool:
    # a dynamic without data yet (null) costs nothing to compute: caching it would only cost round trips
    return dyn.timeout > 0 and dyn.compute is not no_data_yet


# the canonical text of a UUID, in either case (what str(uuid.UUID(value)) gives back, lower-cased): a regular
# expression, because every listed object's guid is checked and parsing 10,000 UUIDs is measurable
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII)


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and _GUID.fullmatch(value) is not None
