"""Declarations of the object model: stored properties, relations, dynamics, object types.

An object type is declared once (``ovsd/dal/hybrids/<kind>.py``); validation, storage, index upkeep,
serialization, the API's writable fields and the OpenAPI schemas all follow from the declaration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ovsd.dal.text import nested_problem, string_problem

_MISSING: Any = object()

JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object",
                               list: "array"}


@dataclass(frozen=True)
class Prop:
    """A stored property.

    A ``str`` property is a single line (no control character) unless ``text`` (may hold tab and line
    breaks); no string anywhere in a property holds a lone surrogate or a NUL (ovsd/dal/text.py).
    """

    name: str
    kind: type
    default: Any = None
    mandatory: bool = False
    allowed: tuple[Any, ...] | None = None
    unique: bool = False
    writable: bool = True  # may be changed through PATCH
    secret: bool = False  # never sent in a response (passwords, secret hashes)
    doc: str = ""
    text: bool = False  # a str that may span lines (descriptions)

    def check(self, value: Any) -> str | None:
        """None when value fits this property, else what is wrong with it."""
        if value is None:
            return "is mandatory" if self.mandatory else None
        if self.allowed is not None:
            return None if value in self.allowed else "must be one of " + ", ".join(map(str, self.allowed))
        kind = self.kind
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            return f"must be of type {JSON_TYPES.get(kind, kind.__name__)}"
        if isinstance(value, str):
            return string_problem(value, text=self.text)
        if isinstance(value, dict | list):
            found = nested_problem(value, "")
            if found is not None:
                where, problem = found
                return f"{problem} (at {where})" if where else problem
        return None

    def initial(self) -> Any:
        if isinstance(self.default, dict | list):
            return type(self.default)(self.default)  # never share a mutable default
        return self.default


@dataclass(frozen=True)
class Relation:
    """A relation to another object type, stored as ``<name>_guid`` (or ``<name>_guids`` when ``many``).

    ``reverse`` is the name of the reverse relation on the target (serialized as ``<reverse>_guids``).
    """

    name: str
    target: str
    reverse: str
    mandatory: bool = False
    many: bool = False
    writable: bool = True
    doc: str = ""
    #: the target lists the grants as junction guids (one per source and target, derived from both) instead of
    #: the source's guids, as the original's junction objects did (a token's roles: RoleBearerToken)
    junction: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}_guids" if self.many else f"{self.name}_guid"


@dataclass(frozen=True)
class ReverseRelation:
    """The other side of a Relation: the guids of the objects of ``source`` that point here."""

    name: str
    source: str
    relation: str  # the relation name on the source type
    junction: bool = False  # listed as junction guids (see Relation.junction)

    @property
    def key(self) -> str:
        return f"{self.name}_guids"


# (the object, the repository) -> its value. Typed loosely: the repository is built from these declarations, so
# naming its classes here would be an import circle; hybrids annotate their compute functions with Any too
Compute = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Dynamic:
    """A property computed on read and cached in the store for ``timeout`` seconds (0: never cached)."""

    name: str
    kind: type
    timeout: int
    compute: Compute
    doc: str = ""


@dataclass
class ObjectType:
    """One kind of stored object (``vdisk``, ``user`` …) with everything declared about it."""

    kind: str
    props: list[Prop]
    relations: list[Relation] = field(default_factory=list)
    dynamics: list[Dynamic] = field(default_factory=list)
    default_sort: tuple[str, ...] = ()
    doc: str = ""
    reverse: list[ReverseRelation] = field(default_factory=list)  # filled in by the registry
    #: property -> the relation key it is unique within (a vDisk's name within its vPool): kept by the same
    #: atomic unique-key upkeep as ``Prop.unique``, so of two concurrent writers of one value only one lands
    unique_within: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prop_by_name = {p.name: p for p in self.props}
        self.relation_by_name = {r.name: r for r in self.relations}
        self.relation_by_key = {r.key: r for r in self.relations}
        self.dynamic_by_name = {d.name: d for d in self.dynamics}

    @property
    def reverse_by_name(self) -> dict[str, ReverseRelation]:
        return {r.name: r for r in self.reverse}

    @property
    def unique_props(self) -> list[Prop]:
        return [p for p in self.props if p.unique]

    def unique_keys(self, data: Mapping[str, Any]) -> list[tuple[str, str | bool]]:
        """(key field, indexed text or False) of each unique declaration: ``Prop.unique`` on the value alone,
        ``unique_within`` as ``<prop>@<relation key>`` on ``<related guid>/<value>`` (a GUID holds no '/', so
        the pair reads one way only). False: not indexed (a null part)."""
        found: list[tuple[str, str | bool]] = [
            (p.name, False if data.get(p.name) is None else str(data[p.name])) for p in self.unique_props]
        for prop, scope in self.unique_within.items():
            value, owner = data.get(prop), data.get(scope)
            found.append(within_key(prop, scope, owner, value) if value is not None and owner is not None
                         else (f"{prop}@{scope}", False))
        return found

    @property
    def public_props(self) -> list[Prop]:
        return [p for p in self.props if not p.secret and "password" not in p.name]

    def writable_fields(self) -> set[str]:
        """What PATCH may change: writable stored properties and ``<relation>_guid``."""
        names = {p.name for p in self.props if p.writable}
        names |= {r.key for r in self.relations if r.writable}
        return names


def within_key(prop: str, scope: str, owner: Any, value: Any) -> tuple[str, str]:
    """The unique key (field, text) of a ``unique_within`` value: what ``Repository.find`` looks up."""
    return f"{prop}@{scope}", f"{owner}/{value}"


async def no_data_yet(obj: Any, repo: Any) -> Any:
    """A dynamic whose data comes from a subsystem that is not there yet: null, never invented data."""
    return None


def dynamic_of(name: str, kind: type, timeout: int, compute: Compute = no_data_yet, doc: str = "") -> Dynamic:
    return Dynamic(name=name, kind=kind, timeout=timeout, compute=compute, doc=doc)
