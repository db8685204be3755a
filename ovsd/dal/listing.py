"""One list request end to end: which objects, filtered, sorted, paged, serialized."""

from __future__ import annotations

from typing import Any

from ovsd.dal.paging import Paging
from ovsd.dal.query import ListSpec, SortKey, apply, page_of, parse_sort, validate
from ovsd.dal.repository import Repository
from ovsd.dal.serializer import Contents, serialize


async def list_objects(
    repo: Repository, kind: str, spec: ListSpec, contents: Contents | None, guids: list[str] | None = None,
) -> tuple[list[Any], Paging, list[SortKey]]:
    """GUIDs (no contents) or objects of kind, restricted to guids when a resource filter gave them.

    Returns the page's items, its paging and the sort that was applied (the type's default when none given).
    """
    t = repo.type_of(kind)
    sort = list(spec.sort) or parse_sort(",".join(t.default_sort))
    spec = ListSpec(tuple(sort), spec.query, spec.page, spec.page_size, spec.version)
    validate(repo, t, spec)
    if contents is None and not sort and spec.query is None:
        # the common GUID list needs no object at all
        items, paging = page_of(sorted(guids) if guids is not None else await repo.guids(kind), spec)
        return items, paging, sort
    # the whole kind comes in one round trip; a filtered list reads just its objects
    objects = await repo.get_many(kind, sorted(guids)) if guids is not None else await repo.load_all(kind)
    chosen, paging = await apply(repo, objects, spec)
    if contents is None:
        return [o.guid for o in chosen], paging, sort
    return await serialize(repo, chosen, contents, kind, objects if guids is None else None), paging, sort
