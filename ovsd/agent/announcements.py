"""Announcements of StorageRouter status changes: each change once, by whichever live node sees it first.

Every node's agent looks at every StorageRouter on each heartbeat, so a dead node's change is still
announced. The store keeps, per StorageRouter, the status last announced and the heartbeats it was derived
from. A node announces a change only after it swapped that record from exactly what it read
(compare-and-set), so two nodes that see the same change at the same moment announce it once. A status
derived from older heartbeats than the record's (a read from before the latest beat), or a milder one from
the same heartbeats (with the same heartbeats time only makes a status worse: the observer's clock lags),
replaces nothing, so no node announces a change back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from ovsd.dal.repository import DataObject
from ovsd.dal.status import FAILURE, OK, WARNING, Thresholds, status_changes, storagerouter_status
from ovsd.store import keys
from ovsd.store.connection import Store
from ovsd.store.scripts import load_lua

log = Logger()

PublishEvent = Callable[[str, Mapping[str, Any]], Awaitable[Any]]

EVENT_TYPE = "storagerouter_status_changed"

# compare-and-set of the last announced status: 1 when it was still the one read (and is now the new one)
_SWAP = load_lua("swap")

#: attempts at the swap when other nodes keep changing the value (they then announce, not we)
_ATTEMPTS = 3
#: how bad a status is; with unchanged heartbeats a status only ever gets worse
_SEVERITY = {OK: 0, WARNING: 1, FAILURE: 2}
_BEATS = ("process", "celery")


def evidence(heartbeats: Mapping[str, Any]) -> dict[str, float]:
    """The heartbeats a status is derived from, as numbers."""
    return {name: float(heartbeats[name]) for name in _BEATS if heartbeats.get(name) is not None}


@dataclass(frozen=True)
class Announced:
    """The status last announced for a StorageRouter and the heartbeats it was derived from."""

    status: str
    heartbeats: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> Announced | None:
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            return cls(str(record["status"]), evidence(record.get("heartbeats") or {}))
        except (ValueError, KeyError, TypeError):
            return cls(raw)  # a bare status (written before the heartbeats were kept with it)

    def dump(self) -> str:
        return json.dumps({"status": self.status, "heartbeats": self.heartbeats}, sort_keys=True)

    def replaced_by(self, status: str, heartbeats: Mapping[str, float]) -> bool:
        """Whether ``status``, derived from ``heartbeats``, is news after this announcement."""
        if status == self.status:
            return False
        if any(heartbeats.get(name, float("-inf")) < beat for name, beat in self.heartbeats.items()):
            return False  # derived from heartbeats read before the ones this announcement saw
        if dict(heartbeats) == self.heartbeats:
            # the same heartbeats: only time changed, and time only makes a status worse
            return _SEVERITY.get(status, -1) > _SEVERITY.get(self.status, -1)
        return True


class StatusAnnouncer:
    """Publishes ``storagerouter_status_changed`` events for the StorageRouters it is shown."""

    def __init__(self, store: Store, thresholds: Thresholds, publish_event: PublishEvent) -> None:
        self.store = store
        self.thresholds = thresholds
        self.publish_event = publish_event

    async def announce(self, routers: Iterable[DataObject], now: float) -> list[dict[str, Any]]:
        """Announce every change since the last announcement; returns the metadata of the events published."""
        published: list[dict[str, Any]] = []
        for router in routers:
            published.extend(await self.announce_one(router, now))
        return published

    async def announce_one(self, router: DataObject, now: float) -> list[dict[str, Any]]:
        heartbeats = router.data.get("heartbeats") or {}
        current = Announced(storagerouter_status(heartbeats, now, self.thresholds), evidence(heartbeats))
        key = keys.storagerouter_status(router.guid)
        for _ in range(_ATTEMPTS):
            raw = await self.store.execute("GET", key)
            previous = Announced.parse(raw)
            if previous is not None and not previous.replaced_by(current.status, current.heartbeats):
                return []
            if await self.store.script(_SWAP, [key], [raw or "", current.dump()]):
                break
        else:
            return []  # the nodes that won the swaps announce what they saw
        if previous is None:
            return []  # a first sighting is no change
        published = []
        for old, new in status_changes(heartbeats, previous.status, current.status, self.thresholds):
            log.info("StorageRouter {name} is {status} (was {previous})", name=router.data.get("name"),
                     status=new, previous=old)
            metadata = {"storagerouter_guid": router.guid, "name": router.data.get("name"), "status": new,
                        "previous": old}
            await self.publish_event(EVENT_TYPE, metadata)
            published.append(metadata)
        return published
