"""Turning objects into the API's JSON, following the ``contents`` rules (contract §5).

Without ``contents`` a fetch returns every field; with it (even empty) only the stored properties plus what
is asked: ``_dynamics``, ``_relations``, field names, and ``-name`` to remove one (removal wins). Secret
fields and anything named like a password are never sent, whatever is asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from ovsd.dal.batch import Sides
from ovsd.dal.fields import ObjectType
from ovsd.dal.grants import grant_guid
from ovsd.dal.jsontext import WithJsonText
from ovsd.dal.objects import is_cached
from ovsd.dal.repository import DataObject, Repository

#: an object and its sides, as ``Repository.get_with`` reads them
Fetched = tuple[DataObject, Sides]

# a bulk load of the source objects beats reading each object's reverse index from this many objects on
_BULK_REVERSE_FROM = 200
# plans are kept per (kind, contents); contents come from clients, so only this many distinct ones
_PLANS_KEPT = 512


@dataclass(frozen=True)
class Contents:
    """A parsed ``contents`` parameter."""

    dynamics: bool = False
    relations: bool = False
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    everything: bool = False  # a fetch without contents

    @classmethod
    def parse(cls, text: str | None) -> Contents | None:
        """None when no contents parameter was given at all."""
        if text is None:
            return None
        include: set[str] = set()
        exclude: set[str] = set()
        dynamics = relations = False
        for word in (w.strip() for w in text.split(",")):
            if not word:
                continue
            if word in ("_dynamics", "_dynamic"):
                dynamics = True
            elif word == "_relations":
                relations = True
            elif word.startswith("-"):
                exclude.add(word[1:])
            else:
                include.add(word)
        return cls(dynamics, relations, frozenset(include), frozenset(exclude))

    def tokens(self) -> list[str]:
        """The contents as the client gave it, for the v2 envelope's ``_contents``."""
        out = (["_dynamics"] if self.dynamics else []) + (["_relations"] if self.relations else [])
        return out + sorted(self.include) + sorted("-" + e for e in self.exclude)


EVERYTHING = Contents(everything=True)


def _excluded(contents: Contents, *names: str) -> bool:
    return any(n in contents.exclude for n in names)


@dataclass(frozen=True)
class Plan:
    """Which fields of one object type a given contents selects."""

    props: list[str]
    relations: list[tuple[str, str]]  # (key, relation name)
    reverse: list[tuple[str, str]]  # (key, reverse relation name)
    dynamics: list[str]
    cached: list[str]  # those of the dynamics that live in the cache (read with the object)
    reverse_names: list[str]


_plans: dict[tuple[str, Contents], Plan] = {}


def plan_for(t: ObjectType, contents: Contents) -> Plan:
    """The plan of a kind for a contents (computed once: declarations do not change while serving)."""
    plan = _plans.get((t.kind, contents))
    if plan is None:
        plan = _plan(t, contents)
        if len(_plans) < _PLANS_KEPT:
            _plans[(t.kind, contents)] = plan
    return plan


def _plan(t: ObjectType, contents: Contents) -> Plan:
    def wanted(everything_flag: bool, name: str, key: str) -> bool:
        if _excluded(contents, name, key):
            return False
        return contents.everything or everything_flag or name in contents.include or key in contents.include

    props = [p.name for p in t.public_props if not _excluded(contents, p.name)]
    relations = [(r.key, r.name) for r in t.relations if wanted(contents.relations, r.name, r.key)]
    reverse = [(rr.key, rr.name) for rr in t.reverse if wanted(contents.relations, rr.name, rr.key)]
    chosen = [d for d in t.dynamics if wanted(contents.dynamics, d.name, d.name)]
    return Plan(props, relations, reverse, [d.name for d in chosen], [d.name for d in chosen if is_cached(d)],
                [name for _, name in reverse])


def _stored(plan: Plan, objects: list[DataObject]) -> list[dict[str, Any]]:
    """The guid, properties and relations of each object (the fields that need no store access)."""
    fields = plan.props + [key for key, _ in plan.relations]
    out: list[dict[str, Any]] = []
    for obj in objects:
        item: dict[str, Any] = {"guid": obj.guid}
        get = obj.data.get
        for name in fields:
            item[name] = get(name)
        out.append(item)
    return out


async def serialize(repo: Repository, objects: list[DataObject], contents: Contents,
                    kind: str | None = None, everything: Sequence[DataObject] | None = None) -> list[dict[str, Any]]:
    """The JSON objects for a list of objects of one kind, in order.

    ``everything``: every object of that kind, when the caller loaded them all anyway (a whole list); a
    reverse relation of the kind onto itself (a vDisk's clones) is then grouped from them without a read.
    """
    if not objects:
        return []
    t = repo.type_of(kind or objects[0].kind)
    plan = plan_for(t, contents)
    # the reverse indexes of a few objects and every cached dynamic come in one round trip
    few = len(objects) < _BULK_REVERSE_FROM
    sides = await repo.sides(t.kind, objects, plan.reverse_names if few else [], plan.cached)
    return await _complete(repo, t, plan, objects, sides, few, everything)


async def fetch_read(repo: Repository, kind: str, guid: str, contents: Contents | None) -> Fetched:
    """What answering one object needs from the store, in one round trip (or ObjectNotFound); reads only."""
    plan = plan_for(repo.type_of(kind), contents or EVERYTHING)
    return await repo.get_with(kind, guid, plan.reverse_names, plan.cached)


async def fetch(
    repo: Repository, kind: str, guid: str, contents: Contents | None, read: Awaitable[Fetched] | None = None,
) -> dict[str, Any]:
    """One object as the API answers it (or ObjectNotFound): a WithJsonText when it has cached dynamics,
    whose values are JSON text to write as they are. ``read``: the ``fetch_read`` of the same arguments,
    already started; else it is read here."""
    t = repo.type_of(kind)
    plan = plan_for(t, contents or EVERYTHING)
    obj, sides = await (read if read is not None else fetch_read(repo, kind, guid, contents))
    [item] = await _complete(repo, t, plan, [obj], sides, True, None, as_text=True)
    return item


async def _complete(repo: Repository, t: ObjectType, plan: Plan, objects: list[DataObject], sides: Sides,
                    read: bool, everything: Sequence[DataObject] | None,
                    as_text: bool = False) -> list[dict[str, Any]]:
    """The JSON objects, from their fields and sides (``read``: the sides hold the reverse relations;
    ``as_text``: cached dynamics stay JSON text, in a WithJsonText, for an answer to splice in)."""
    out = _stored(plan, objects)
    reverse_by_name = t.reverse_by_name if plan.reverse else {}  # a property that builds its dict
    for key, name in plan.reverse:
        rr = reverse_by_name[name]
        if read:
            values = [members[name] for members in sides.reverse]
        else:
            values = await _reverse_values(repo, t, objects, name, everything)
        for item, obj, value in zip(out, objects, values, strict=True):
            item[key] = sorted(grant_guid(rr.source, g, obj.guid) for g in value) if rr.junction else value
    if plan.dynamics:
        computed = await repo.dynamics(objects, plan.dynamics, sides.cached, as_text)
        for item, dyn_values in zip(out, computed, strict=True):
            item.update(dyn_values)
        if as_text:
            out = [WithJsonText(item) for item in out]
    return out


async def _reverse_values(repo: Repository, t: ObjectType, objects: list[DataObject], name: str,
                          everything: Sequence[DataObject] | None) -> list[list[str]]:
    """A reverse relation of many objects: one bulk load of the source kind, grouped by the relation, is far
    cheaper than reading that many index sets."""
    rr = t.reverse_by_name[name]
    rel = repo.type_of(rr.source).relation_by_name[rr.relation]
    sources = everything if everything is not None and rr.source == t.kind else await repo.load_all(rr.source)
    grouped: dict[str, list[str]] = {}
    for source in sources:
        value = source.data.get(rel.key)
        for target in value if isinstance(value, list) else [value]:
            if target:
                grouped.setdefault(target, []).append(source.guid)
    return [sorted(grouped.get(o.guid, [])) for o in objects]


async def serialize_one(repo: Repository, obj: DataObject, contents: Contents | None) -> dict[str, Any]:
    [item] = await serialize(repo, [obj], contents or EVERYTHING)
    return item
