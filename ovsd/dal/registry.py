"""The registry of object types: every declared type, with reverse relations filled in."""

from __future__ import annotations

from ovsd.dal.fields import ObjectType, ReverseRelation
from ovsd.dal.hybrids import ALL


def _build(types: list[ObjectType]) -> dict[str, ObjectType]:
    by_kind = {t.kind: t for t in types}
    for t in types:
        t.reverse.clear()
    for t in types:
        for rel in t.relations:
            target = by_kind[rel.target]
            if any(r.name == rel.reverse for r in target.reverse):
                raise ValueError(f"{rel.target}.{rel.reverse} declared twice")
            target.reverse.append(ReverseRelation(name=rel.reverse, source=t.kind, relation=rel.name,
                                                  junction=rel.junction))
    return by_kind


TYPES: dict[str, ObjectType] = _build(ALL)

#: types served as API resources (internal ones such as bearer tokens are not)
PUBLIC_KINDS = ("branding", "client", "group", "mgmtcenter", "pmachine", "role", "storagedriver",
                "storagerouter", "user", "vdisk", "vmachine", "vpool")
