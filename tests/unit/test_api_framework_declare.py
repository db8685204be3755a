"""Declaring endpoints: what a view author gets right away (mistakes refused at import, paths, paging)."""

from __future__ import annotations

from typing import Any

import pytest

from ovsd.api.call import Call
from ovsd.api.declare import RW, R, Registry
from ovsd.api.params import Param
from ovsd.dal.paging import envelope, paginate
from tests.unit.api_framework_support import REGISTRY


async def handler(call: Call) -> Any:
    return None


def test_every_endpoint_has_its_concrete_path_template() -> None:
    found = {(e.method, e.path, e.kind) for e in REGISTRY.endpoints()}
    assert {
        ("GET", "/api/widgets/", "list"), ("POST", "/api/widgets/", "create"),
        ("GET", "/api/widgets/{guid}/", "fetch"), ("PATCH", "/api/widgets/{guid}/", "patch"),
        ("DELETE", "/api/widgets/{guid}/", "delete"), ("POST", "/api/widgets/{guid}/resize/", "action"),
        ("GET", "/api/widgets/{guid}/children/", "link"), ("POST", "/api/subscribers/{sid}/subscribe/", "action"),
        ("POST", "/api/echo/{word}/{count}/", "action"),
    } <= found
    resize = next(e for e in REGISTRY.endpoints() if e.name == "resize")
    assert (resize.roles, resize.versions, resize.returns, resize.token) == (RW, (1, 2), "task", True)


def test_declaration_mistakes_are_refused_at_once() -> None:
    api = Registry()
    api.resource("things", "thing")
    with pytest.raises(ValueError, match="declare resource"):
        api.endpoint(resource="others", method="GET", kind="list", roles=R)
    with pytest.raises(ValueError, match="list or fetch"):
        api.endpoint(resource="things", method="GET", roles=R)
    with pytest.raises(ValueError, match="version range"):
        api.endpoint(resource="things", method="GET", kind="list", roles=R, versions=(1, 3))(handler)
    with pytest.raises(ValueError, match="must authenticate"):
        api.endpoint(resource="things", method="GET", kind="list", roles=R, authenticates=False)(handler)
    with pytest.raises(TypeError, match="unsupported parameter type"):
        Param("when", bytes)
    api.endpoint(resource="things", method="GET", kind="list", roles=R)(handler)
    with pytest.raises(ValueError, match="declared twice"):
        api.endpoint(resource="things", method="GET", kind="list", roles=R)(handler)
    with pytest.raises(ValueError, match="different shapes"):
        api.resource("things", "widget")
    assert api.resource("things", "thing") is api.resources()["things"]


def test_paging_follows_the_contract() -> None:
    assert paginate(25, "1").as_dict() == {
        "total_items": 25, "current_page": 1, "max_page": 3, "start_number": 1, "end_number": 10, "page_size": 10}
    last = paginate(25, 9)
    assert (last.current_page, last.start, last.end, last.start_number, last.end_number) == (3, 20, 25, 21, 25)
    assert paginate(25, "-4").current_page == 1
    assert paginate(25, "2", "25").as_dict()["current_page"] == 1  # one page of 25
    assert paginate(250, "2", "50").start == 50
    assert paginate(250, "2", "30").page_size == 10  # not an offered size
    assert paginate(250, "2", "50", version=1).page_size == 10  # version 1 has no page_size
    everything = paginate(7, "x")
    assert (everything.start, everything.end, everything.page_size, everything.max_page) == (0, 7, 7, 1)
    empty = paginate(0, 1)
    assert (empty.current_page, empty.max_page, empty.start_number, empty.end_number) == (1, 1, 0, 0)
    assert envelope(["a"], paginate(1, None), ["name"], None) == {
        "data": ["a"],
        "_paging": {"total_items": 1, "current_page": 1, "max_page": 1, "start_number": 1, "end_number": 1,
                    "page_size": 1},
        "_sorting": ["name"], "_contents": None,
    }
