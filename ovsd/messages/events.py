"""What the rest of ovsd publishes: domain events and task completions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ovsd.messages.log import DEFAULT_RETENTION, EVENT, TASK_COMPLETE, Retention, publish
from ovsd.store.connection import Store

# the event types GUIs know (contract §8); others may be published, a GUI ignores what it does not know
EVENT_TYPES: tuple[str, ...] = (
    "vmachine_created", "vmachine_renamed", "vmachine_deleted",
    "vdisk_attached", "vdisk_detached", "vdisk_created", "vdisk_deleted",
    "storagerouter_status_changed", "storagedriver_status_changed",
)


async def publish_event(
    store: Store, event_type: str, metadata: Mapping[str, Any], retention: Retention = DEFAULT_RETENTION,
) -> int:
    """Publish an EVENT message (body ``{"type", "metadata"}``) and return its id."""
    return await publish(store, EVENT, {"type": event_type, "metadata": dict(metadata)}, retention)


async def publish_task_complete(store: Store, task_id: str, retention: Retention = DEFAULT_RETENTION) -> int:
    """Publish the TASK_COMPLETE message of a finished task (body: the task id) and return its id."""
    return await publish(store, TASK_COMPLETE, task_id, retention)
