"""A StorageRouter's status from its heartbeat ages (a controllable clock), and the announcement of its changes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from ovsd.agent.announcements import StatusAnnouncer
from ovsd.config import AgentConfig
from ovsd.dal.repository import DataObject, Repository
from ovsd.dal.status import status_changes, storagerouter_status, warns_before_failing
from ovsd.messages import EVENT, publish_event
from ovsd.messages.subscriptions import read, subscribe
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.conftest import node_config

AGENT = AgentConfig(heartbeat_interval=1.0, warning_after=2.0, failure_after=3.0)
START = 1_700_000_000.0


@pytest.mark.parametrize(("process_age", "celery_age", "status"), [
    (0.0, 0.0, "OK"),
    (1.9, 2.0, "OK"),  # at the threshold, not past it
    (0.1, 2.01, "WARNING"),
    (0.1, 3.0, "WARNING"),
    (0.1, 3.01, "FAILURE"),  # the worker silent too long
    (3.01, 0.1, "FAILURE"),  # the process silent too long
    (None, 0.1, "FAILURE"),
    (0.1, None, "FAILURE"),
    (None, None, "UNKNOWN"),
])
def test_the_status_follows_the_heartbeat_ages(
    process_age: float | None, celery_age: float | None, status: str,
) -> None:
    beats = {name: START - age for name, age in (("process", process_age), ("celery", celery_age)) if age is not None}
    assert storagerouter_status(beats, START, AGENT) == status


@pytest_twisted.ensureDeferred
async def test_the_status_dynamic_is_computed_at_read_time_from_the_clock(store: Store, tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", agent={"heartbeat_interval": 1.0, "warning_after": 2.0,
                                                   "failure_after": 3.0})
    clock = Clock()
    clock.advance(START)
    repo = Repository(store, clock=clock.seconds, reactor=reactor, thresholds=config.agent)
    pm = await repo.create("pmachine", {"name": "pm", "ip": "10.0.0.1", "hvtype": "KVM"})
    router = await repo.create("storagerouter", {"name": "sr", "machine_id": "m1", "ip": "10.0.0.1",
                                                 "pmachine_guid": pm.guid})

    async def status() -> str:
        fresh = await repo.get("storagerouter", router.guid)
        return str((await repo.dynamics([fresh], ["status"]))[0]["status"])

    assert await status() == "UNKNOWN"
    await repo.update("storagerouter", router.guid, {"heartbeats": {"process": START, "celery": START}})
    seen = []
    for step in (1.0, 1.0, 0.5, 0.5, 0.5, 10.0):  # ages 1, 2, 2.5, 3, 3.5, 13.5
        clock.advance(step)
        seen.append(await status())
    assert seen == ["OK", "OK", "WARNING", "WARNING", "FAILURE", "FAILURE"]
    await repo.update("storagerouter", router.guid, {"heartbeats": {"process": clock.seconds(),
                                                                    "celery": clock.seconds()}})
    assert await status() == "OK"  # never a stored stale value


def test_a_jump_over_a_warning_is_announced_as_the_two_changes_it_was() -> None:
    beats = {"process": START, "celery": START}
    assert warns_before_failing(beats, AGENT)
    assert status_changes(beats, "OK", "FAILURE", AGENT) == [("OK", "WARNING"), ("WARNING", "FAILURE")]
    assert status_changes(beats, "OK", "WARNING", AGENT) == [("OK", "WARNING")]
    assert status_changes(beats, "WARNING", "FAILURE", AGENT) == [("WARNING", "FAILURE")]
    assert status_changes(beats, "FAILURE", "OK", AGENT) == [("FAILURE", "OK")]
    assert status_changes(beats, None, "FAILURE", AGENT) == []  # a first sighting is no change
    assert status_changes(beats, "OK", "OK", AGENT) == []
    # the process fell silent more than (failure_after - warning_after) before the worker: no WARNING ever
    early = {"process": START - 1.5, "celery": START}
    assert not warns_before_failing(early, AGENT)
    assert status_changes(early, "OK", "FAILURE", AGENT) == [("OK", "FAILURE")]


def _router(guid: str, beats: Mapping[str, float]) -> DataObject:
    return DataObject(kind="storagerouter", guid=guid, data={"name": f"sr-{guid[:4]}", "heartbeats": dict(beats)},
                      version=1)


class Events:
    """Publishes into the real message log, as a node does; reads back what was published."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def publish(self, event_type: str, metadata: Mapping[str, Any]) -> None:
        await publish_event(self.store, event_type, metadata)

    async def statuses(self, guid: str) -> list[tuple[str, str]]:
        await subscribe(self.store, 1, [EVENT])
        body = await read(self.store, 1, after=0)
        events = [m["body"] for m in body.messages if m["body"]["type"] == "storagerouter_status_changed"]
        return [(e["metadata"]["previous"], e["metadata"]["status"]) for e in events
                if e["metadata"]["storagerouter_guid"] == guid]


@pytest_twisted.ensureDeferred
async def test_each_change_is_announced_once_by_whichever_node_sees_it_first(store: Store) -> None:
    events = Events(store)
    node_a = StatusAnnouncer(store, AGENT, events.publish)
    node_b = StatusAnnouncer(store, AGENT, events.publish)
    guid = "0b0e5a4e-0000-4000-8000-000000000001"
    beats = {"process": START, "celery": START}
    router = _router(guid, beats)

    assert await node_a.announce([router], START + 0.5) == []  # first sighting: recorded, not announced
    assert json.loads(await store.execute("GET", keys.storagerouter_status(guid)))["status"] == "OK"
    assert await node_b.announce([router], START + 1.0) == []
    # both nodes look after the worker went late: one announcement
    assert [e["status"] for e in await node_a.announce([router], START + 2.2)] == ["WARNING"]
    assert await node_b.announce([router], START + 2.3) == []
    # node B looks next only once it is FAILURE; node A, with a clock that lags, must not announce back
    assert [e["status"] for e in await node_b.announce([router], START + 3.4)] == ["FAILURE"]
    assert await node_a.announce([router], START + 2.9) == []
    assert json.loads(await store.execute("GET", keys.storagerouter_status(guid)))["status"] == "FAILURE"
    # the node is back
    back = _router(guid, {"process": START + 10, "celery": START + 10})
    assert [(e["previous"], e["status"]) for e in await node_a.announce([back], START + 10.1)] == [("FAILURE", "OK")]
    assert await node_b.announce([back], START + 10.2) == []
    # a node that read the router before its last beat (the old heartbeats) announces nothing either
    assert await node_b.announce([router], START + 10.3) == []
    assert await events.statuses(guid) == [("OK", "WARNING"), ("WARNING", "FAILURE"), ("FAILURE", "OK")]


@pytest_twisted.ensureDeferred
async def test_a_warning_between_two_looks_is_still_announced(store: Store) -> None:
    events = Events(store)
    announcer = StatusAnnouncer(store, AGENT, events.publish)
    guid = "0b0e5a4e-0000-4000-8000-000000000002"
    router = _router(guid, {"process": START, "celery": START})
    await announcer.announce([router], START + 1.9)
    published = await announcer.announce([router], START + 3.1)  # the look at ~2.5 s did not happen
    assert [(e["previous"], e["status"]) for e in published] == [("OK", "WARNING"), ("WARNING", "FAILURE")]
    assert await events.statuses(guid) == [("OK", "WARNING"), ("WARNING", "FAILURE")]
