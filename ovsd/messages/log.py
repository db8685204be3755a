"""The message log: cluster-wide numbered messages, kept for a retention window.

A message id comes from ``msg:seq`` and is the stream id ``<n>-0`` of its entry in ``msg:log``; the
increment and the append are one Lua script, so ids are strictly increasing across every node and an
id is never taken without its message being in the log.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ovsd.dal.text import utf8
from ovsd.store import keys
from ovsd.store.blocking import BlockingReader
from ovsd.store.connection import Store, load_lua

TASK_COMPLETE = "TASK_COMPLETE"
EVENT = "EVENT"
MESSAGE_TYPES: tuple[str, ...] = (TASK_COMPLETE, EVENT)

_PUBLISH = load_lua("message_publish")


class Message(TypedDict):
    """A message as the long-poll answers it."""

    id: int
    type: str
    body: Any


@dataclass(frozen=True)
class Retention:
    """How much of the log is kept: an entry goes only once it is beyond the last ``count`` AND older
    than ``seconds``, so a burst never drops what a slow client has not seen within its window."""

    count: int = 10_000
    seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("the message log keeps at least one message")
        if self.seconds < 0:
            raise ValueError("the retention time cannot be negative")


DEFAULT_RETENTION = Retention()


async def publish(store: Store, message_type: str, body: Any, retention: Retention = DEFAULT_RETENTION) -> int:
    """Append a message to the cluster's log and return its id."""
    if message_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {message_type!r}")
    # utf8: a body quoting a value an earlier release stored with a lone surrogate still publishes
    encoded = utf8(json.dumps(body, separators=(",", ":"), ensure_ascii=False))
    result = await store.script(
        _PUBLISH, [keys.MESSAGE_SEQ, keys.MESSAGE_LOG],
        [message_type, encoded, retention.count, int(retention.seconds * 1000)],
    )
    return int(result)


async def last_id(store: Store | BlockingReader) -> int:
    """The id of the newest message of the cluster (0 when none was ever published)."""
    value = await store.execute("GET", keys.MESSAGE_SEQ)
    return int(value) if value is not None else 0


def entry_id(stream_id: str) -> int:
    """The message id of a stream entry id ``<n>-0``."""
    return int(stream_id.partition("-")[0])


def message(message_id: int, message_type: str, body_json: str) -> Message:
    return {"id": message_id, "type": message_type, "body": json.loads(body_json)}


def from_entry(entry: Sequence[Any]) -> Message:
    """A message from a stream entry as XREAD/XRANGE answer it: ``[id, [at, ms, type, T, body, B]]``."""
    stream_id, flat = entry
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return message(entry_id(stream_id), fields["type"], fields["body"])
