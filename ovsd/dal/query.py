"""List semantics (contract §5): sort, page, and the v2 query language, parsed once into value objects.

Sorting is natural (digit runs compare as numbers: ``vd2`` < ``vd10``), null first, multi-key with ``-``
for descending, ``field[key]`` for a dict key and dotted paths (``vpool.name``) that follow relations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovsd.dal.fields import ObjectType
from ovsd.dal.paging import Paging, paginate
from ovsd.dal.repository import DataObject, Repository

OPERATORS = ("EQUALS", "NOT_EQUALS", "LT", "GT", "IN", "CONTAINS")

_DIGITS = re.compile(r"(\d+)")
_SORT_TOKEN = re.compile(r"^(-?)([A-Za-z_][A-Za-z0-9_.]*)(?:\[([^\]]*)\])?$")


class InvalidQuery(ValueError):
    """A sort, query or filter the API refuses with 400 invalid_data."""


# --- natural order -------------------------------------------------------------------------------------
def natural_key(value: Any) -> tuple[Any, ...]:
    """A key that orders null first, then booleans, numbers, strings (naturally), then everything else."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        # split() alternates text and digit runs, text first: every key holds a text at the same positions and
        # a digit run (as number, then as written) at the same others, so a flat tuple orders exactly like
        # tagged parts would, and a sort of 10,000 names builds and compares far less
        parts = _DIGITS.split(value.lower())
        flat: list[Any] = [parts[0]]
        for i in range(1, len(parts), 2):
            digits = parts[i]
            flat += (int(digits), digits, parts[i + 1])
        return (3, tuple(flat), value)
    if isinstance(value, list | tuple):
        return (4, tuple(natural_key(v) for v in value))
    return (5, json.dumps(value, sort_keys=True, default=str))


# --- paths -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldPath:
    """``vpool.name`` or ``heartbeats[process]``: relation steps, then a field, then an optional dict key."""

    steps: tuple[str, ...]  # relation names to follow
    field: str
    key: str | None = None

    @classmethod
    def parse(cls, text: str, key: str | None = None) -> FieldPath:
        parts = text.split(".")
        if any(not p for p in parts):
            raise InvalidQuery(f"invalid field {text!r}")
        return cls(tuple(parts[:-1]), parts[-1], key)

    def __str__(self) -> str:
        base = ".".join((*self.steps, self.field))
        return f"{base}[{self.key}]" if self.key is not None else base


def _check_path(repo: Repository, t: ObjectType, path: FieldPath) -> None:
    current = t
    for step in path.steps:
        rel = current.relation_by_name.get(step) or current.relation_by_key.get(step)
        if rel is None or rel.many:
            raise InvalidQuery(f"{current.kind} has no relation {step!r} to follow")
        current = repo.type_of(rel.target)
    name = path.field
    prop = current.prop_by_name.get(name)
    if prop is not None and (prop.secret or "password" in name):
        raise InvalidQuery(f"{name} cannot be sorted or queried")
    known = (
        prop is not None or name in current.relation_by_key or name in current.relation_by_name
        or name in current.dynamic_by_name or name == "guid"
    )
    if not known:
        raise InvalidQuery(f"{current.kind} has no field {name!r}")


async def resolve(repo: Repository, objects: list[DataObject], paths: Sequence[FieldPath]) -> dict[str, list[Any]]:
    """The value of every path (by its text) for every object, as one column per path, in the objects' order;
    related objects and dynamics are loaded in bulk."""
    columns: dict[str, list[Any]] = {}
    for path in paths:
        targets: list[DataObject | None] = list(objects)
        kind = objects[0].kind if objects else ""
        for step in path.steps:
            t = repo.type_of(kind)
            rel = t.relation_by_name.get(step) or t.relation_by_key[step]
            wanted = sorted({str(o.data[rel.key]) for o in targets if o is not None and o.data.get(rel.key)})
            loaded = {o.guid: o for o in await repo.get_many(rel.target, wanted)}
            targets = [loaded.get(str(o.data.get(rel.key))) if o is not None else None for o in targets]
            kind = rel.target
        t = repo.type_of(kind)
        column: list[Any]
        if path.field == "guid":
            column = [o.guid if o is not None else None for o in targets]
        elif path.field in t.dynamic_by_name:
            present = [o for o in targets if o is not None]
            computed = await repo.dynamics(present, [path.field])
            dyn_values = {o.guid: v[path.field] for o, v in zip(present, computed, strict=True)}
            column = [dyn_values[o.guid] if o is not None else None for o in targets]
        else:
            field_rel = t.relation_by_name.get(path.field)
            name = field_rel.key if field_rel else path.field
            column = [o.data.get(name) if o is not None else None for o in targets]
        if path.key is not None:
            column = [v.get(path.key) if isinstance(v, dict) else None for v in column]
        columns[str(path)] = column
    return columns


# --- sort ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SortKey:
    path: FieldPath
    descending: bool

    def __str__(self) -> str:
        return ("-" if self.descending else "") + str(self.path)


def parse_sort(text: str | None) -> list[SortKey]:
    if not text:
        return []
    keys = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        match = _SORT_TOKEN.match(token)
        if match is None:
            raise InvalidQuery(f"invalid sort field {token!r}")
        keys.append(SortKey(FieldPath.parse(match.group(2), match.group(3)), match.group(1) == "-"))
    return keys


# --- query (v2) ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    path: FieldPath
    op: str
    value: Any
    ignore_case: bool = False

    def matches(self, row: dict[str, Any]) -> bool:
        actual = row[str(self.path)]
        expected = self.value
        if self.ignore_case:
            actual = actual.lower() if isinstance(actual, str) else actual
            if isinstance(expected, str):
                expected = expected.lower()
            elif isinstance(expected, list):
                expected = [e.lower() if isinstance(e, str) else e for e in expected]
        op = self.op
        if op == "EQUALS":
            return json_equal(actual, expected)
        if op == "NOT_EQUALS":
            return not json_equal(actual, expected)
        if op == "IN":
            return any(json_equal(actual, e) for e in expected)
        if op == "CONTAINS":
            if isinstance(actual, str) and isinstance(expected, str):
                return expected in actual
            if isinstance(actual, list):
                return any(json_equal(a, expected) for a in actual)
            return False
        if not _ordered(actual, expected):
            return False
        return bool(actual < expected) if op == "LT" else bool(actual > expected)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1`` (Python's ``==`` says it is, also inside lists)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _ordered(a: Any, b: Any) -> bool:
    """LT/GT order two numbers, two strings or two booleans; null, lists, objects and mixes are unordered."""
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return ((number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, bool) and isinstance(b, bool)))


@dataclass(frozen=True)
class Query:
    type: str
    items: tuple[Condition | Query, ...]

    def matches(self, row: dict[str, Any]) -> bool:
        results = (item.matches(row) for item in self.items)
        return all(results) if self.type == "AND" else any(results)

    def paths(self) -> list[FieldPath]:
        out: list[FieldPath] = []
        for item in self.items:
            out.extend(item.paths() if isinstance(item, Query) else [item.path])
        return out


def parse_query(value: Any) -> Query:
    """Parse the v2 ``query`` parameter (a JSON text or an already decoded structure)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # a deeply nested text exhausts the decoder: still the client's fault
            raise InvalidQuery("query is not valid JSON") from None
    return _parse_query(value, 0)


def _parse_query(value: Any, depth: int) -> Query:
    if depth > 10:
        raise InvalidQuery("query is nested too deeply")
    if not isinstance(value, dict) or set(value) - {"type", "items"}:
        raise InvalidQuery('query must be {"type": "AND"|"OR", "items": [...]}')
    kind = value.get("type")
    items = value.get("items")
    if kind not in ("AND", "OR"):
        raise InvalidQuery("query type must be AND or OR")
    if not isinstance(items, list):
        raise InvalidQuery("query items must be a list")
    parsed: list[Condition | Query] = []
    for item in items:
        if isinstance(item, dict):
            parsed.append(_parse_query(item, depth + 1))
            continue
        if not isinstance(item, list) or len(item) not in (3, 4) or not isinstance(item[0], str):
            raise InvalidQuery("a query item is [field, operator, value(, ignore_case)]")
        op = item[1]
        if op not in OPERATORS:
            raise InvalidQuery(f"unknown query operator {op!r}")
        if op == "IN" and not isinstance(item[2], list):
            raise InvalidQuery("IN needs a list value")
        ignore_case = item[3] if len(item) == 4 else False
        if not isinstance(ignore_case, bool):
            raise InvalidQuery("ignore_case must be a boolean")
        parsed.append(Condition(FieldPath.parse(item[0]), op, item[2], ignore_case))
    return Query(kind, tuple(parsed))


# --- the whole list --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListSpec:
    """What a list asks for; ``page``/``page_size`` are the raw parameters (the paging rules read them)."""

    sort: tuple[SortKey, ...] = ()
    query: Query | None = None
    page: str | int | None = None
    page_size: str | int | None = None
    version: int = 2


def validate(repo: Repository, t: ObjectType, spec: ListSpec) -> None:
    for key in spec.sort:
        _check_path(repo, t, key.path)
    if spec.query is not None:
        for path in spec.query.paths():
            _check_path(repo, t, path)


async def apply(repo: Repository, objects: list[DataObject], spec: ListSpec) -> tuple[list[DataObject], Paging]:
    """Filter, sort and page objects (of one kind) as the spec says."""
    paths = list({str(p): p for p in [k.path for k in spec.sort] + (spec.query.paths() if spec.query else [])}
                 .values())
    if not objects:
        return page_of([], spec)
    columns = await resolve(repo, objects, paths)
    # positions into objects: filtering and sorting move small ints, and each sort key is computed once
    order = list(range(len(objects)))
    if spec.query is not None:
        query, names = spec.query, list(columns)
        order = [i for i in order if query.matches({name: columns[name][i] for name in names})]
    # stable sorts from the last key to the first give a multi-key order with per-key direction
    for key in reversed(spec.sort):
        column = columns[str(key.path)]
        sort_keys = {i: natural_key(column[i]) for i in order}
        order.sort(key=sort_keys.__getitem__, reverse=key.descending)
    return page_of([objects[i] for i in order], spec)


def page_of(items: list[Any], spec: ListSpec) -> tuple[list[Any], Paging]:
    paging = paginate(len(items), spec.page, spec.page_size, spec.version)
    return items[paging.start:paging.end], paging
