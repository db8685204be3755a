"""A pure-Python model of the contract's list semantics (API.md §5), for the property tests.

It is written from the contract, not from ovsd/dal: the fields of each kind are the ones §6 lists, and the
rules (natural order, null first, paging, contents, the v2 query language) are spelled out here again.
Where the contract is silent the model states the choice it makes (and the test pins it):

- ties keep GUID order (the order of a list without any sort), whatever the direction of the keys;
- ``-field`` reverses the whole order of that key, so nulls come last in a descending key;
- names that are equal but for case order upper case first (plain string order breaks the tie);
- in a query, values compare as JSON values: ``true`` is not ``1``; LT/GT order two numbers, two strings or
  two booleans, anything else (null included) is neither less nor greater;
- a list without ``page`` is one page holding everything (``page_size`` = ``total_items``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ovsd.dal.hybrids.unmeasured import zero_statistics

# --- the fields of the kinds under test (contract §6) -------------------------------------------------------
PUBLIC_PROPS: dict[str, tuple[str, ...]] = {
    "vdisk": ("name", "description", "size", "devicename", "order", "volume_id", "parentsnapshot", "cinder_id"),
    "vpool": ("name", "description", "size", "login", "connection", "type", "metadata"),
    "vmachine": ("name", "description", "hypervisor_id", "devicename", "is_vtemplate", "status"),
    "storagerouter": ("name", "description", "machine_id", "ip", "heartbeats"),
    "pmachine": ("name", "description", "username", "ip", "hvtype", "hypervisor_id"),
    # a vDisk's serving StorageDriver (none in these worlds: no vDisk is served)
    "storagedriver": ("name", "description", "storagedriver_id", "port", "cluster_ip", "storage_ip", "mountpoint"),
}
SECRET_PROPS: dict[str, tuple[str, ...]] = {"vpool": ("password",), "pmachine": ("password",)}
# relation name -> target kind (all single-valued here)
RELATIONS: dict[str, dict[str, str]] = {
    "vdisk": {"vmachine": "vmachine", "vpool": "vpool", "parent_vdisk": "vdisk", "storagedriver": "storagedriver"},
    "vpool": {},
    "vmachine": {"pmachine": "pmachine", "vpool": "vpool"},
    "storagerouter": {"pmachine": "pmachine"},
    "pmachine": {"mgmtcenter": "mgmtcenter"},
    "storagedriver": {"vpool": "vpool", "storagerouter": "storagerouter"},
}
# reverse relation name -> (source kind, relation name on the source)
REVERSE: dict[str, dict[str, tuple[str, str]]] = {
    "vdisk": {"child_vdisks": ("vdisk", "parent_vdisk")},
    "vpool": {"vdisks": ("vdisk", "vpool"), "vmachines": ("vmachine", "vpool"),
              "storagedrivers": ("storagedriver", "vpool")},
    "vmachine": {"vdisks": ("vdisk", "vmachine")},
    "storagerouter": {"storagedrivers": ("storagedriver", "storagerouter")},
    "pmachine": {"vmachines": ("vmachine", "pmachine"), "storagerouters": ("storagerouter", "pmachine")},
}
DYNAMICS: dict[str, tuple[str, ...]] = {
    "vdisk": ("snapshots", "info", "statistics", "storagedriver_id", "storagerouter_guid", "is_vtemplate"),
    "vpool": ("status", "statistics", "stored_data"),
    "vmachine": ("snapshots", "hypervisor_status", "statistics", "stored_data", "failover_mode",
                 "storagerouters_guids", "vpools_guids"),
    "storagerouter": ("statistics", "stored_data", "failover_mode", "vmachines_guids", "vpools_guids",
                      "vdisks_guids", "status"),
    "pmachine": ("host_status",),
    "storagedriver": ("status", "statistics", "stored_data"),
}
RESOURCES = {"vdisks": "vdisk", "vpools": "vpool", "vmachines": "vmachine", "storagerouters": "storagerouter"}
DEFAULT_SORT = {"vdisk": (), "vpool": ("name",), "vmachine": ("name", "vpool_guid"), "storagerouter": ("name",)}
# list filters: parameter -> relation name on the listed kind
FILTERS = {"vdisk": {"vpoolguid": "vpool", "vmachineguid": "vmachine"}, "vmachine": {"vpoolguid": "vpool"}}
OPERATORS = ("EQUALS", "NOT_EQUALS", "LT", "GT", "IN", "CONTAINS")
WARNING_AFTER, FAILURE_AFTER = 15.0, 30.0  # the configuration's defaults


class Refused(Exception):
    """What the API must answer with 400 invalid_data."""


@dataclass
class World:
    """The stored objects, by kind: guid -> stored fields (properties and ``<relation>_guid``)."""

    now: float
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.objects.get(kind, {})

    def reverse(self, kind: str, guid: str, name: str) -> list[str]:
        source, relation = REVERSE[kind][name]
        return sorted(g for g, d in self.of(source).items() if d.get(f"{relation}_guid") == guid)

    def dynamic(self, kind: str, guid: str, name: str) -> Any:
        data = self.of(kind)[guid]
        if kind == "vmachine" and name == "vpools_guids":
            return sorted({d["vpool_guid"] for d in self.of("vdisk").values() if d.get("vmachine_guid") == guid})
        if kind == "storagerouter" and name == "vpools_guids":
            return []  # no StorageDriver in these worlds
        if kind == "storagerouter" and name == "status":
            return self.status(data.get("heartbeats") or {})
        if kind == "pmachine" and name == "host_status":
            return "UNKNOWN"
        # the data plane is not there: the empty value of each (contract §6 "Never null"), never invented data
        if name == "statistics":
            return zero_statistics(self.now)
        if name in ("failover_mode", "hypervisor_status"):
            return "UNKNOWN"
        if name == "stored_data":
            return 0
        if name in ("snapshots", "vmachines_guids", "vdisks_guids", "storagerouters_guids"):
            return []
        if name == "info":
            return {"stored": 0, "failover_mode": "UNKNOWN"}
        if name == "is_vtemplate":
            return False  # no vDisk of these worlds is served, so none is a template
        return None

    def status(self, beats: dict[str, Any]) -> str:
        process, celery = beats.get("process"), beats.get("celery")
        if process is None and celery is None:
            return "UNKNOWN"
        if process is None or self.now - process > FAILURE_AFTER:
            return "FAILURE"
        if celery is None or self.now - celery > FAILURE_AFTER:
            return "FAILURE"
        return "WARNING" if self.now - celery > WARNING_AFTER else "OK"


# --- fields and values --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    steps: tuple[str, ...]
    name: str
    key: str | None = None


def _relation(kind: str, word: str) -> str | None:
    """The relation a word names on kind (by name or by its ``<name>_guid`` key)."""
    for name in RELATIONS[kind]:
        if word in (name, f"{name}_guid"):
            return name
    return None


def check_path(kind: str, text: str, key: str | None = None) -> Path:
    parts = text.split(".")
    if any(not p for p in parts):
        raise Refused(text)
    for step in parts[:-1]:
        relation = _relation(kind, step)
        if relation is None:
            raise Refused(text)
        kind = RELATIONS[kind][relation]
    name = parts[-1]
    known = (name == "guid" or name in PUBLIC_PROPS[kind] or _relation(kind, name) is not None
             or name in DYNAMICS[kind])
    if not known:  # secrets, reverse relations and unknown names cannot be sorted or queried
        raise Refused(text)
    return Path(tuple(parts[:-1]), name, key)


def value_of(world: World, kind: str, guid: str | None, path: Path) -> Any:
    for step in path.steps:
        if guid is None:
            return None
        relation = _relation(kind, step)
        assert relation is not None
        guid = world.of(kind)[guid].get(f"{relation}_guid")
        kind = RELATIONS[kind][relation]
    if guid is None:
        return None
    relation = _relation(kind, path.name)
    if path.name == "guid":
        value: Any = guid
    elif relation is not None:
        value = world.of(kind)[guid].get(f"{relation}_guid")
    elif path.name in DYNAMICS[kind]:
        value = world.dynamic(kind, guid, path.name)
    else:
        value = world.of(kind)[guid].get(path.name)
    if path.key is not None:
        return value.get(path.key) if isinstance(value, dict) else None
    return value


# --- natural order -------------------------------------------------------------------------------------
_RUN = re.compile(r"[0-9]+|[^0-9]+")


def _rank(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 2
    if isinstance(value, str):
        return 3
    return 4 if isinstance(value, list) else 5


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _text_cmp(a: str, b: str) -> int:
    """Digit runs as numbers (leading zeros: fewer first), a digit run before text, case only to break ties."""
    runs_a, runs_b = _RUN.findall(a.lower()), _RUN.findall(b.lower())
    for x, y in zip(runs_a, runs_b, strict=False):
        digit_x, digit_y = x.isdigit(), y.isdigit()
        if digit_x != digit_y:
            return -1 if digit_x else 1
        order = _cmp((int(x), x), (int(y), y)) if digit_x else _cmp(x, y)
        if order:
            return order
    return _cmp(len(runs_a), len(runs_b)) or _cmp(a, b)


def natural_cmp(a: Any, b: Any) -> int:
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != rank_b or rank_a == 0:
        return _cmp(rank_a, rank_b)
    if rank_a == 3:
        return _text_cmp(a, b)
    if rank_a == 4:
        for x, y in zip(a, b, strict=False):
            order = natural_cmp(x, y)
            if order:
                return order
        return _cmp(len(a), len(b))
    if rank_a == 5:
        return _cmp(json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True))
    return _cmp(a, b)


# --- the v2 query language -----------------------------------------------------------------------------
def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _ordered(a: Any, b: Any) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return ((number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, bool) and isinstance(b, bool)))


Predicate = Callable[[World, str], bool]


def compile_query(kind: str, tree: Any, depth: int = 0) -> Predicate:
    """A predicate on guids of kind, or Refused for anything outside the grammar."""
    if depth > 10 or not isinstance(tree, dict) or set(tree) != {"type", "items"}:
        raise Refused("query")
    if tree["type"] not in ("AND", "OR") or not isinstance(tree["items"], list):
        raise Refused("query")
    parts = [compile_query(kind, item, depth + 1) if isinstance(item, dict) else _condition(kind, item)
             for item in tree["items"]]
    if tree["type"] == "AND":
        return lambda world, guid: all(p(world, guid) for p in parts)
    return lambda world, guid: any(p(world, guid) for p in parts)


def _condition(kind: str, item: Any) -> Predicate:
    if not isinstance(item, list) or len(item) not in (3, 4) or not isinstance(item[0], str):
        raise Refused("item")
    op, expected = item[1], item[2]
    ignore_case = item[3] if len(item) == 4 else False
    if op not in OPERATORS or (op == "IN" and not isinstance(expected, list)) or not isinstance(ignore_case, bool):
        raise Refused("item")
    path = check_path(kind, item[0])

    def lower(v: Any) -> Any:
        return v.lower() if ignore_case and isinstance(v, str) else v

    want = [lower(e) for e in expected] if isinstance(expected, list) else lower(expected)

    def test(world: World, guid: str) -> bool:
        actual = lower(value_of(world, kind, guid, path))
        if op == "EQUALS":
            return json_equal(actual, want)
        if op == "NOT_EQUALS":
            return not json_equal(actual, want)
        if op == "IN":
            return any(json_equal(actual, e) for e in want)
        if op == "CONTAINS":
            if isinstance(actual, str):
                return isinstance(want, str) and want in actual
            return isinstance(actual, list) and any(json_equal(e, want) for e in actual)
        if not _ordered(actual, want):
            return False
        return bool(actual < want) if op == "LT" else bool(actual > want)

    return test


# --- one list request ------------------------------------------------------------------------------------
_SORT_WORD = re.compile(r"(-?)([A-Za-z_][A-Za-z0-9_.]*)(?:\[([^\]]*)\])?")


def _whole(text: str | None) -> int | None:
    if text is None or not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        return None
    return int(text)


def paging(total: int, page: str | None, page_size: str | None, version: int) -> dict[str, int]:
    number = _whole(page)
    if number is None:
        return {"total_items": total, "current_page": 1, "max_page": 1, "start_number": min(1, total),
                "end_number": total, "page_size": total}
    size = _whole(page_size) if version >= 2 else None
    size = size if size in (10, 25, 50, 100) else 10
    assert size is not None
    max_page = max(1, -(-total // size))
    current = min(max(number, 1), max_page)
    start = (current - 1) * size
    return {"total_items": total, "current_page": current, "max_page": max_page,
            "start_number": min(start + 1, total), "end_number": min(start + size, total), "page_size": size}


def project(world: World, kind: str, guid: str, contents: str) -> dict[str, Any]:
    """One object as ``contents`` asks for it (stored props always, unless removed by ``-name``)."""
    words = _words(contents)
    removed = {w[1:] for w in words if w.startswith("-")}
    data = world.of(kind)[guid]
    out: dict[str, Any] = {"guid": guid}
    out.update({p: data.get(p) for p in PUBLIC_PROPS[kind] if p not in removed})

    def wanted(flag: str, name: str, key: str) -> bool:
        return not {name, key} & removed and bool({flag, name, key} & words)

    for name in RELATIONS[kind]:
        if wanted("_relations", name, f"{name}_guid"):
            out[f"{name}_guid"] = data.get(f"{name}_guid")
    for name in REVERSE[kind]:
        if wanted("_relations", name, f"{name}_guids"):
            out[f"{name}_guids"] = world.reverse(kind, guid, name)
    for name in DYNAMICS[kind]:
        if wanted("_dynamics", name, name):
            out[name] = world.dynamic(kind, guid, name)
    return out


def _words(contents: str) -> set[str]:
    """The words of a contents parameter (``_dynamic`` is accepted for ``_dynamics``)."""
    words = {w.strip() for w in contents.split(",") if w.strip()}
    return {"_dynamics" if w == "_dynamic" else w for w in words}


def contents_tokens(contents: str) -> list[str]:
    """``_contents`` of the envelope: the flags, then the names asked for, then the ones removed."""
    words = _words(contents)
    flags = [f for f in ("_dynamics", "_relations") if f in words]
    rest = words - {"_dynamics", "_relations"}
    return flags + sorted(w for w in rest if not w.startswith("-")) + sorted(w for w in rest if w.startswith("-"))


def answer(world: World, resource: str, version: int, params: dict[str, str]) -> tuple[int, Any]:
    """(status, body) the API must give for ``GET /api/<resource>/?<params>`` in API version ``version``."""
    kind = RESOURCES[resource]
    try:
        sort = _parse_sort(kind, params.get("sort"))
        # version 1 reads a query only where the seed era's API did (vMachines, StorageRouters)
        query = params.get("query") if version >= 2 or kind in ("vmachine", "storagerouter") else None
        predicate = compile_query(kind, _decode(query)) if query else None
    except Refused:
        return 400, "invalid_data"
    guids = sorted(world.of(kind))
    for parameter, relation in FILTERS.get(kind, {}).items():
        if parameter in params:
            guids = [g for g in guids if world.of(kind)[g].get(f"{relation}_guid") == params[parameter]]
    if predicate is not None:
        guids = [g for g in guids if predicate(world, g)]
    keys = sort or [(False, check_path(kind, word)) for word in DEFAULT_SORT[kind]]

    def compare(a: str, b: str) -> int:
        for descending, path in keys:
            order = natural_cmp(value_of(world, kind, a, path), value_of(world, kind, b, path))
            if order:
                return -order if descending else order
        return 0

    guids.sort(key=functools.cmp_to_key(compare))  # stable: ties keep GUID order
    pages = paging(len(guids), params.get("page"), params.get("page_size"), version)
    shown = guids[pages["start_number"] - 1:pages["end_number"]] if guids else []
    contents = params.get("contents")
    items: list[Any] = shown if contents is None else [project(world, kind, g, contents) for g in shown]
    if version < 2:
        return 200, items
    sorting = [("-" if d else "") + _path_text(p) for d, p in sort] if params.get("sort") else None
    return 200, {"data": items, "_paging": pages, "_sorting": sorting,
                 "_contents": contents_tokens(contents) if contents is not None else None}


def _path_text(path: Path) -> str:
    text = ".".join((*path.steps, path.name))
    return text if path.key is None else f"{text}[{path.key}]"


def _parse_sort(kind: str, text: str | None) -> list[tuple[bool, Path]]:
    keys = []
    for word in (w.strip() for w in (text or "").split(",")):
        if not word:
            continue
        match = _SORT_WORD.fullmatch(word)
        if match is None:
            raise Refused(word)
        keys.append((match.group(1) == "-", check_path(kind, match.group(2), match.group(3))))
    return keys


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Refused("query is not JSON") from None
