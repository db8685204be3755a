"""The repository: load, list, create, update and delete objects, with atomic index upkeep.

Every change is one run of one Lua script (``ovsd/store/lua/dal_apply.lua``) that checks the object's
``_version``, unique keys, relation targets and references, then writes the object and every index entry, or
nothing. Python computes the new object from the version it read; a concurrent change makes the script
refuse and the update is re-applied on the fresh object, so concurrent PATCHes of different fields all
survive and no writer ever sees a torn object. A write that spans objects is a change set (``apply``): its
saves and deletes go to the same script together, are checked together and land together, or not at all.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor as global_reactor
from twisted.logger import Logger

from ovsd.dal import batch
from ovsd.dal.changeset import Delete, Guard, Members, Operation, Save, Unchanged
from ovsd.dal.fields import ObjectType, ReverseRelation, no_data_yet
from ovsd.dal.jsontext import cache_text, json_text
from ovsd.dal.objects import (
    DalError,
    DataObject,
    InUse,
    InvalidValue,
    ObjectNotFound,
    UniqueConflict,
    VersionConflict,
    decode_object,
    is_cached,
    is_guid,
    relation_guids,
)
from ovsd.dal.registry import TYPES
from ovsd.dal.status import DEFAULT_THRESHOLDS, Thresholds
from ovsd.dal.text import unstorable
from ovsd.store import keys
from ovsd.store.connection import load_lua

if TYPE_CHECKING:
    from ovsd.store.connection import Store

log = Logger()

# the errors and values live in ovsd.dal.objects, a change set's operations in ovsd.dal.changeset; callers
# import them from here, with the repository
__all__ = ["MAX_UPDATE_ATTEMPTS", "DalError", "DataObject", "Delete", "Guard", "InUse", "InvalidValue", "Members",
           "ObjectNotFound", "Operation", "Repository", "Save", "Unchanged", "UniqueConflict", "VersionConflict",
           "is_guid"]

_APPLY = load_lua("dal_apply")
MAX_UPDATE_ATTEMPTS = 200


class Repository:
    """All access to stored objects goes through here (views → controllers → repository → store)."""

    def __init__(
        self, store: Store, clock: Callable[[], float] | None = None, reactor: Any = None,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        self.store = store
        self._clock = clock or time.time
        # the reactor for the object model's timed waits and its file work in threads (dynamics)
        self.reactor = reactor if reactor is not None else global_reactor
        # when a StorageRouter's heartbeats make it WARNING or FAILURE (the node's agent.* configuration)
        self.thresholds = thresholds
        self.types = TYPES
        #: counters for /api/statistics: object/list/dynamic loads, hits and misses
        self.counters: Counter[str] = Counter()

    def now(self) -> float:
        return self._clock()

    def type_of(self, kind: str) -> ObjectType:
        return self.types[kind]

    # --- reading ---------------------------------------------------------------------------------------
    async def get(self, kind: str, guid: str) -> DataObject:
        if not is_guid(guid):
            raise ObjectNotFound(kind, guid)
        raw = await self.store.execute("GET", keys.obj(kind, guid))
        if raw is None:
            self.counters["object_miss"] += 1
            raise ObjectNotFound(kind, guid)
        self.counters["object_hit"] += 1
        return decode_object(kind, guid, raw)

    async def find(self, kind: str, field: str, value: Any) -> DataObject | None:
        """The object whose unique field has this value, or None."""
        text = str(value)
        if unstorable(text) is not None:
            return None  # never stored (ovsd/dal/text.py), and not something a store command can carry
        guid = await self.store.execute("GET", keys.unique(kind, field, text))
        if guid is None:
            return None
        try:
            return await self.get(kind, guid)
        except ObjectNotFound:
            return None

    async def guids(self, kind: str) -> list[str]:
        members = await batch.guids(self.store, keys.index(kind))
        # there is no list cache: a list "hit" is an index load that found objects, a "miss" an empty one
        self.counters["list_hit" if members else "list_miss"] += 1
        return sorted(members or [])

    async def get_many(self, kind: str, guids: Iterable[str]) -> list[DataObject]:
        """The objects that exist among guids, in the order given."""
        wanted = [g for g in guids if is_guid(g)]
        if not wanted:
            return []
        raws = await self.store.execute("MGET", *[keys.obj(kind, g) for g in wanted])
        found = [decode_object(kind, g, raw) for g, raw in zip(wanted, raws, strict=True) if raw is not None]
        self.counters["object_hit"] += len(found)
        self.counters["object_miss"] += len(wanted) - len(found)
        return found

    async def load_all(self, kind: str) -> list[DataObject]:
        """Every object of a kind, by guid (one round trip: the index and the objects in one script)."""
        pairs = await batch.load_kind(self.store, kind)
        self.counters["list_hit" if pairs else "list_miss"] += 1
        pairs.sort()
        found = [decode_object(kind, guid, raw) for guid, raw in pairs]
        self.counters["object_hit"] += len(found)
        return found

    async def get_with(
        self, kind: str, guid: str, reverse: Sequence[str] = (), cached_dynamics: Sequence[str] = (),
    ) -> tuple[DataObject, batch.Sides]:
        """An object and its sides (the named reverse relations, the cache of the named dynamics), in one round
        trip: what answering a fetch needs."""
        if not is_guid(guid):
            raise ObjectNotFound(kind, guid)
        raw, sides = await batch.read_sides(
            self.store, kind, [guid], self._reverse_relations(kind, reverse), cached_dynamics, keys.obj(kind, guid),
        )
        if raw is None:
            self.counters["object_miss"] += 1
            raise ObjectNotFound(kind, guid)
        self.counters["object_hit"] += 1
        return decode_object(kind, guid, raw), sides

    async def sides(
        self, kind: str, objects: Sequence[DataObject], reverse: Sequence[str], cached_dynamics: Sequence[str],
    ) -> batch.Sides:
        """The sides of objects (see get_with), in one round trip."""
        _, found = await batch.read_sides(
            self.store, kind, [o.guid for o in objects], self._reverse_relations(kind, reverse), cached_dynamics,
        )
        return found

    def _reverse_relations(self, kind: str, names: Sequence[str]) -> list[ReverseRelation]:
        if not names:
            return []
        by_name = self.types[kind].reverse_by_name  # built on each access: once per call, not per name
        return [by_name[n] for n in names]

    async def reverse_guids(self, kind: str, guid: str, reverse: str) -> list[str]:
        """The guids of the objects whose relation points at (kind, guid), by reverse relation name."""
        rr = self.types[kind].reverse_by_name[reverse]
        members = await self.store.execute("SMEMBERS", keys.reverse(rr.source, rr.relation, guid))
        return sorted(members or [])

    async def reverse_guids_many(self, kind: str, guids: list[str], reverse: str) -> list[list[str]]:
        rr = self.types[kind].reverse_by_name[reverse]
        replies = await batch.members_many(self.store, rr.source, rr.relation, guids)
        return [sorted(r) for r in replies]

    # --- dynamics --------------------------------------------------------------------------------------
    def cached_dynamics(self, kind: str, names: Sequence[str]) -> list[str]:
        """Which of these dynamics live in the cache (the others are computed on every read)."""
        t = self.types[kind]
        return [n for n in names if is_cached(t.dynamic_by_name[n])]

    async def dynamics(
        self, objects: list[DataObject], names: list[str], cached: list[dict[str, str | None]] | None = None,
        as_text: bool = False,
    ) -> list[dict[str, Any]]:
        """Values of the named dynamics for each object, from the cache where fresh, else computed.

        ``cached``: the cache entries already read (per object, by name, as ``get_with`` gives them).
        ``as_text``: a value found in the cache is given as its JSON text (a :class:`JsonText`) for an answer
        to splice in, rather than decoded here and encoded again there.
        """
        if not objects or not names:
            return [{} for _ in objects]
        t = self.types[objects[0].kind]
        if cached is None:
            cached_names = self.cached_dynamics(t.kind, names)
            cache_keys = [keys.dynamic(o.kind, o.guid, n) for o in objects for n in cached_names]
            raws = iter(await self.store.execute("MGET", *cache_keys) if cache_keys else [])
            cached = [{n: next(raws) for n in cached_names} for _ in objects]
        results: list[dict[str, Any]] = []
        writes: list[tuple[Any, ...]] = []
        hits = 0
        for obj, entries in zip(objects, cached, strict=True):
            values: dict[str, Any] = {}
            for name in names:
                raw = entries.get(name)
                if raw is not None:
                    try:
                        values[name] = json_text(raw) if as_text else json.loads(raw)
                        hits += 1
                        continue
                    except ValueError:
                        # a damaged cache entry is a miss: the value is computed (and cached) again
                        log.warn("cached {kind} {name} of {guid} is not JSON; computing it again",
                                 kind=obj.kind, name=name, guid=obj.guid)
                self.counters["dynamic_miss"] += 1
                dyn = t.dynamic_by_name[name]
                if dyn.compute is no_data_yet:
                    values[name] = None  # nothing to compute yet: spare the coroutine
                    continue
                value = await dyn.compute(obj, self)
                values[name] = value
                if is_cached(dyn):
                    writes.append(("SET", keys.dynamic(obj.kind, obj.guid, name), cache_text(value), "EX",
                                   dyn.timeout))
            results.append(values)
        self.counters["dynamic_hit"] += hits  # once per read, not per value: a fetch reads six
        if writes:
            await self.store.pipeline(writes)
        return results

    async def invalidate_dynamics(self, kind: str, guid: str) -> None:
        names = [d.name for d in self.types[kind].dynamics]
        if names:
            await self.store.execute("DEL", *[keys.dynamic(kind, guid, n) for n in names])

    # --- writing ---------------------------------------------------------------------------------------
    def _validate(self, t: ObjectType, values: Mapping[str, Any], complete: bool) -> None:
        for name, value in values.items():
            prop = t.prop_by_name.get(name)
            if prop is not None:
                problem = prop.check(value)
                if problem:
                    raise InvalidValue(name, problem)
                continue
            rel = t.relation_by_key.get(name)
            if rel is None:
                raise InvalidValue(name, "is not a field of " + t.kind)
            if rel.many:
                if not isinstance(value, list) or not all(is_guid(v) for v in value):
                    raise InvalidValue(name, "must be a list of GUIDs")
            elif value is None:
                if rel.mandatory:
                    raise InvalidValue(name, "is mandatory")
            elif not is_guid(value):
                raise InvalidValue(name, "must be a GUID")
        if complete:
            for prop in t.props:
                if prop.mandatory and values.get(prop.name) is None:
                    raise InvalidValue(prop.name, "is mandatory")
            for rel in t.relations:
                if rel.mandatory and values.get(rel.key) is None:
                    raise InvalidValue(rel.key, "is mandatory")

    def _index_changes(self, t: ObjectType, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """The index entries a save takes away and adds."""
        indexed = dict(t.unique_keys(old)) if old else {}
        unique = [[name, indexed.get(name, False), text] for name, text in t.unique_keys(new)
                  if indexed.get(name, False) != text or not old]
        relations = []
        for rel in t.relations:
            before, after = relation_guids(old.get(rel.key)), relation_guids(new.get(rel.key))
            if before != after or not old:
                removed = [g for g in before if g not in after]
                added = [g for g in after if g not in before]
                relations.append([rel.name, rel.target, removed, added])
        dynamics = [d.name for d in t.dynamics if d.timeout > 0]
        return {"unique": unique, "relations": relations, "dynamics": dynamics}

    def _document(self, data: Mapping[str, Any], version: int) -> str:
        return json.dumps({**data, "_version": version}, separators=(",", ":"))

    def _delete_detail(self, t: ObjectType, data: Mapping[str, Any]) -> dict[str, Any]:
        """What removing an object takes besides its key: its index entries, who may still point at it."""
        return {
            "unique": [[name, text] for name, text in t.unique_keys(data) if text is not False],
            "relations": [[r.name, relation_guids(data.get(r.key))] for r in t.relations],
            "referenced_by": [[rr.name, rr.source, rr.relation] for rr in t.reverse],
            "dynamics": [d.name for d in t.dynamics],
        }

    @staticmethod
    def _refusal(t: ObjectType, guid: str, code: str, detail: str) -> DalError:
        """The error of a write the store refused (an error code of dal_apply.lua)."""
        if code == "unique":
            return UniqueConflict(t.kind, detail.split("@", 1)[0])  # "name@vpool_guid": the name is taken
        if code == "relation":
            field, target = detail.split(":", 1)
            return InvalidValue(t.relation_by_name[field].key, f"points to {target}, which does not exist")
        if code == "not_found":
            return ObjectNotFound(t.kind, guid)
        if code == "in_use":
            return InUse(t.kind, detail)
        return VersionConflict(f"{t.kind} {guid} changed (now at version {detail})")

    async def _save(self, t: ObjectType, guid: str, expected: int, old: Mapping[str, Any],
                    new: dict[str, Any]) -> int:
        before = DataObject(kind=t.kind, guid=guid, data=dict(old), version=expected) if expected else None
        return int((await self._send([Save(t.kind, guid, new, before)], ()))[0])

    def planned_create(self, kind: str, values: Mapping[str, Any], guid: str | None = None) -> Save:
        """The save that creates an object (defaults filled in, checked as create() checks), for apply()."""
        t = self.types[kind]
        data: dict[str, Any] = {p.name: p.initial() for p in t.props}
        data.update({r.key: ([] if r.many else None) for r in t.relations})
        data.update(values)
        self._validate(t, data, complete=True)
        if guid is not None and not is_guid(guid):
            raise InvalidValue("guid", "must be a GUID")  # index members are GUIDs: lists rely on it
        return Save(kind, guid or str(uuid.uuid4()), data)

    def planned_change(self, obj: DataObject, changes: Mapping[str, Any]) -> Save:
        """The save that applies changes to an object as read (checked as update() checks), for apply()."""
        self._validate(self.types[obj.kind], changes, complete=False)
        return Save(obj.kind, obj.guid, {**obj.data, **changes}, obj)

    async def apply(self, operations: Sequence[Operation], guards: Sequence[Guard] = ()) -> list[DataObject | None]:
        """Apply a change set in one store script: every save and delete, or none of them.

        Every check (versions, unique values, relation targets, references, guards) passes before anything
        is written. Errors are those of create/update/delete, except that an object or guarded relation that
        changed since it was read is always a VersionConflict (a create whose object exists too): read again,
        plan again, apply again. Answers the saved objects (None for a delete), in order.
        """
        versions = await self._send(operations, guards)
        results: list[DataObject | None] = []
        for op, version in zip(operations, versions, strict=True):
            if isinstance(op, Save):
                results.append(DataObject(kind=op.kind, guid=op.guid, data=dict(op.data), version=int(version)))
            else:
                results.append(None)
        return results

    async def _send(self, operations: Sequence[Operation], guards: Sequence[Guard]) -> list[str]:
        """Run ``dal_apply.lua`` on a change set; the version of each object after it (its last, if deleted)."""
        documents: list[str] = []
        planned: list[list[Any]] = []
        seen: set[tuple[str, str]] = set()
        for op in operations:
            kind, guid = (op.kind, op.guid) if isinstance(op, Save) else (op.obj.kind, op.obj.guid)
            if (kind, guid) in seen:
                raise ValueError(f"{kind} {guid} appears twice in one change set")
            seen.add((kind, guid))
            t = self.types[kind]
            if isinstance(op, Save):
                expected = op.before.version if op.before is not None else 0
                old = op.before.data if op.before is not None else {}
                documents.append(self._document(op.data, expected + 1))
                # ARGV[1] is the plan: the first document is ARGV[2]
                planned.append(["save", kind, guid, expected, len(documents) + 1, self._index_changes(t, old, op.data)])
            else:
                planned.append(["delete", kind, guid, op.obj.version, self._delete_detail(t, op.obj.data)])
        checks: list[list[Any]] = []
        for guard in guards:
            if isinstance(guard, Members):
                rr = self.types[guard.kind].reverse_by_name[guard.reverse]
                checks.append(["members", rr.source, rr.relation, guard.guid, list(guard.guids)])
            else:
                checks.append(["version", guard.obj.kind, guard.obj.guid, guard.obj.version])
        plan = json.dumps({"guards": checks, "ops": planned}, separators=(",", ":"))
        reply = await self.store.script(_APPLY, [], [plan, *documents])
        if reply[0] == "ok":
            return list(reply[1:])
        code, detail, number = reply[1], reply[2], int(reply[3])
        if number == 0:
            raise VersionConflict(f"the {detail} changed since it was read")
        failed = planned[number - 1]
        if code == "exists":
            raise VersionConflict(f"{failed[1]} {failed[2]} was created meanwhile")
        raise self._refusal(self.types[failed[1]], failed[2], code, detail)

    async def create(self, kind: str, values: Mapping[str, Any], guid: str | None = None) -> DataObject:
        planned = self.planned_create(kind, values, guid)
        data = dict(planned.data)
        try:
            version = await self._save(self.types[kind], planned.guid, 0, {}, data)
        except VersionConflict:
            raise UniqueConflict(kind, "guid") from None
        log.debug("{kind} {guid} created", kind=kind, guid=planned.guid)
        return DataObject(kind=kind, guid=planned.guid, data=data, version=version)

    async def update(
        self, kind: str, guid: str, changes: Mapping[str, Any], expected_version: int | None = None,
    ) -> DataObject:
        """Apply changes to the freshest version (retrying on concurrent writes) unless a version is given."""
        t = self.types[kind]
        self._validate(t, changes, complete=False)
        for _ in range(MAX_UPDATE_ATTEMPTS):
            current = await self.get(kind, guid)
            if expected_version is not None and current.version != expected_version:
                raise VersionConflict(f"{kind} {guid} is at version {current.version}, not {expected_version}")
            new = {**current.data, **changes}
            try:
                version = await self._save(t, guid, current.version, current.data, new)
            except VersionConflict:
                if expected_version is not None:
                    raise
                continue
            return DataObject(kind=kind, guid=guid, data=new, version=version)
        raise VersionConflict(f"{kind} {guid} kept changing; gave up after {MAX_UPDATE_ATTEMPTS} attempts")

    async def modify(
        self, kind: str, guid: str, change: Callable[[dict[str, Any]], Mapping[str, Any]],
    ) -> DataObject:
        """Apply ``change`` (fresh stored fields -> changed fields) until it lands on an unchanged object.

        For read-modify-write of one field's inside (a key of a dict property such as ``heartbeats``): two
        writers of different keys both survive, because each change is recomputed on the latest version.
        """
        t = self.types[kind]
        for _ in range(MAX_UPDATE_ATTEMPTS):
            current = await self.get(kind, guid)
            changes = change(dict(current.data))
            self._validate(t, changes, complete=False)
            new = {**current.data, **changes}
            try:
                version = await self._save(t, guid, current.version, current.data, new)
            except VersionConflict:
                continue
            return DataObject(kind=kind, guid=guid, data=new, version=version)
        raise VersionConflict(f"{kind} {guid} kept changing; gave up after {MAX_UPDATE_ATTEMPTS} attempts")

    async def delete(self, kind: str, guid: str) -> None:
        for _ in range(MAX_UPDATE_ATTEMPTS):
            current = await self.get(kind, guid)
            try:
                await self._send([Delete(current)], ())
            except VersionConflict:
                continue  # changed since it was read: what points at it may have changed too
            log.debug("{kind} {guid} deleted", kind=kind, guid=guid)
            return
        raise VersionConflict(f"{kind} {guid} kept changing; gave up deleting it")
