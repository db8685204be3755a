"""What every resource view shares: the list parameters and the generic list, fetch and patch handlers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import R, endpoint, resource
from ovsd.api.errors import forbidden
from ovsd.api.params import GUID, Param
from ovsd.dal.listing import list_objects
from ovsd.dal.paging import envelope
from ovsd.dal.query import ListSpec, parse_query, parse_sort
from ovsd.dal.registry import TYPES
from ovsd.dal.repository import DataObject, Repository
from ovsd.dal.serializer import Contents, Fetched, fetch, fetch_read, serialize_one

LIST_PARAMS = (
    Param("sort", str, where="query", description="comma-separated fields; -field descends; a.b follows relations"),
    Param("page", str, where="query", description="page number (10 per page; v2: page_size)"),
    Param("page_size", str, where="query", description="v2: 10, 25, 50 or 100"),
    Param("contents", str, where="query", description="_dynamics, _relations, names, -name"),
    Param("query", str, where="query", text=True,  # JSON text: may be pretty-printed over lines
          description='v2 (v1: vmachines, storagerouters): {"type": "AND"|"OR", "items": [[field, op, value], ...]}'),
)
#: lists that took ``query`` in version 1 already: the seed era's API did, and its GUI sends one with
#: ``version=*`` (the vMachines page leaves templates out with it, the vTemplates page keeps only them)
QUERY_IN_V1 = frozenset({"vmachine", "storagerouter"})
FETCH_PARAMS = (LIST_PARAMS[3],)


def repository(call: Call) -> Repository:
    return call.context.repository


async def list_answer(call: Call, kind: str, guids: list[str] | None = None) -> Any:
    """A list in the negotiated version's shape: v1 a plain list, v2 the envelope (with page_size and query)."""
    params = call.params
    v2 = call.version >= 2
    spec = ListSpec(
        sort=tuple(parse_sort(params.get("sort"))),
        query=parse_query(params["query"]) if params.get("query") and (v2 or kind in QUERY_IN_V1) else None,
        page=params.get("page"),
        page_size=params.get("page_size") if v2 else None,
        version=call.version,
    )
    contents = Contents.parse(params.get("contents"))
    items, paging, sort = await list_objects(repository(call), kind, spec, contents, guids)
    if not v2:
        return items
    return envelope(items, paging, [str(k) for k in sort] if params.get("sort") else None,
                    contents.tokens() if contents is not None else None)


async def fetch_answer(call: Call, obj: DataObject) -> dict[str, Any]:
    return await serialize_one(repository(call), obj, Contents.parse(call.params.get("contents")))


async def fetch_by_guid(call: Call, kind: str) -> dict[str, Any]:
    """The object of the call's GUID with what ``contents`` asks, read in one round trip (404 when gone);
    the read is the call's ``ahead`` when the endpoint started it (``read_by_guid``)."""
    return await fetch(repository(call), kind, call.guid, Contents.parse(call.params.get("contents")), call.ahead)


async def read_by_guid(call: Call, kind: str) -> Fetched:
    """The store read of ``fetch_by_guid``, which changes nothing and may start before authentication."""
    return await fetch_read(repository(call), kind, call.guid, Contents.parse(call.params.get("contents")))


async def patch_answer(call: Call, kind: str) -> dict[str, Any]:
    """Apply the sent writable fields (the framework refused any other) and answer the whole object."""
    repo = repository(call)
    changes = {k: v for k, v in (call.body or {}).items()}
    obj = await repo.update(kind, call.guid, changes) if changes else await repo.get(kind, call.guid)
    return await serialize_one(repo, obj, None)


def has_manage(call: Call) -> bool:
    return call.identity is not None and "manage" in call.identity.roles


def caller_guid(call: Call) -> str:
    assert call.identity is not None
    return call.identity.user_guid


def require_self_or_manage(call: Call, user_guid: str | None, what: str) -> None:
    if not has_manage(call) and user_guid != caller_guid(call):
        raise forbidden(f"Only the owner or a manager can access this {what}")


def declare_served(
    name: str, kind: str, *, patch_roles: Sequence[str] | None = None,
    filters: Mapping[str, tuple[str, str]] | None = None, token: bool = True, summary: str = "",
) -> None:
    """Declare a resource with the generic list and fetch (and PATCH of writable fields when patch_roles).

    ``filters`` maps a list parameter to (owner kind, reverse relation): ``vpoolguid`` → the vPool's vdisks.
    ``token=False``: anyone may read (branding), though a bad token is still refused.
    """
    t = TYPES[kind]
    filters = dict(filters or {})
    resource(name, kind, default_sort=t.default_sort, summary=summary or t.doc)
    read_roles = R if token else ()

    async def list_all(call: Call) -> Any:
        repo = repository(call)
        guids: set[str] | None = None
        for param, (owner, reverse) in filters.items():
            value = call.params.get(param)
            if value is not None:
                found = set(await repo.reverse_guids(owner, value, reverse))
                guids = found if guids is None else guids & found
        return await list_answer(call, kind, None if guids is None else sorted(guids))

    async def fetch_one(call: Call) -> Any:
        return await fetch_by_guid(call, kind)

    async def read_one(call: Call) -> Any:
        return await read_by_guid(call, kind)

    async def patch(call: Call) -> Any:
        return await patch_answer(call, kind)

    list_all.__doc__ = f"List the {name}" + (f" (filters: {', '.join(filters)})" if filters else "") + "."
    fetch_one.__doc__ = f"One {kind}."
    patch.__doc__ = f"Change a {kind}'s writable fields."
    filter_params = tuple(Param(p, GUID, where="query") for p in filters)
    endpoint(resource=name, method="GET", kind="list", roles=read_roles, token=token,
             params=(*LIST_PARAMS, *filter_params), returns="list")(list_all)
    endpoint(resource=name, method="GET", kind="fetch", roles=read_roles, token=token, params=FETCH_PARAMS,
             read_ahead=read_one)(fetch_one)
    if patch_roles is not None:
        endpoint(resource=name, method="PATCH", roles=patch_roles, fields=t.writable_fields())(patch)
