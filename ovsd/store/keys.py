"""Every key name of the store, built in this one module (prefix ``ovs:``)."""

from __future__ import annotations

PREFIX = "ovs:"


def obj(kind: str, guid: str) -> str:
    return f"{PREFIX}obj:{kind}:{guid}"


def index(kind: str) -> str:
    return f"{PREFIX}idx:{kind}"


def reverse(kind: str, relation: str, target: str) -> str:
    return f"{PREFIX}rel:{kind}:{relation}:{target}"


def unique(kind: str, field: str, value: str) -> str:
    return f"{PREFIX}uniq:{kind}:{field}:{value}"


def dynamic(kind: str, guid: str, name: str) -> str:
    return f"{PREFIX}dyn:{kind}:{guid}:{name}"


def token(digest: str) -> str:
    return f"{PREFIX}token:{digest}"


def task(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def task_queue(machine_id: str) -> str:
    return f"{PREFIX}tasks:q:{machine_id}"


SHARED_QUEUE = f"{PREFIX}tasks:q:any"
MESSAGE_SEQ = f"{PREFIX}msg:seq"
MESSAGE_LOG = f"{PREFIX}msg:log"


def subscription(sid: int) -> str:
    return f"{PREFIX}msg:subs:{sid}"


def message_subscribers(message_type: str) -> str:
    """Sorted set of the subscriber ids of one message type, scored by their expiry time (ms)."""
    return f"{PREFIX}msg:subscribers:{message_type}"


def node_live(machine_id: str) -> str:
    return f"{PREFIX}node:{machine_id}:live"


def bootstrap_lock() -> str:
    return f"{PREFIX}bootstrap"


#: the schema version of the store's layout (an integer; absent: written before versions were kept, 0)
SCHEMA_VERSION = f"{PREFIX}schema:version"
#: held (SET NX with expiry) by the one node that migrates the store
SCHEMA_LOCK = f"{PREFIX}schema:lock"


def auth_failures(address: str) -> str:
    return f"{PREFIX}auth:fail:{address}"


def auth_lockout(address: str) -> str:
    return f"{PREFIX}auth:lock:{address}"


def auth_calls(address: str) -> str:
    return f"{PREFIX}auth:calls:{address}"


PROBE = f"{PREFIX}probe"


# --- tasks (ovsd/tasks/) ---------------------------------------------------------------------------------
#: set of the ids of PENDING and STARTED tasks (upkept with each record, for the task overview)
TASKS_UNFINISHED = f"{PREFIX}tasks:unfinished"
#: sorted set of revoked task ids, scored by the time of revocation (kept as long as their records)
TASKS_REVOKED = f"{PREFIX}tasks:revoked"
#: stream with one entry per finished task (field id): what task waiters block on
TASKS_DONE = f"{PREFIX}tasks:done"
#: hash machine_id -> worker name (ovsd@<node name>), written by each node's worker when it starts
TASK_WORKERS = f"{PREFIX}tasks:workers"


def storagerouter_status(guid: str) -> str:
    """The last status announced for a StorageRouter, as JSON ``{status, heartbeats}`` (the heartbeats it was
    derived from), swapped by a compare-and-set script so one node, not every node, fires the event."""
    return f"{PREFIX}srstatus:{guid}"


def driver_live(guid: str) -> str:
    """A StorageDriver's process state as its node last pushed it (expires when the node stops pushing)."""
    return f"{PREFIX}sd:{guid}:live"


def driver_measured(guid: str) -> str:
    """What a StorageDriver's node last measured of it (JSON ``{counters, stored, at}``; expires when the
    node stops measuring, so a silent node's figures go away instead of staying fresh)."""
    return f"{PREFIX}sd:{guid}:measured"


def vdisk_measured(guid: str) -> str:
    """What the node serving a vDisk last measured of it (JSON ``{counters, stored, at}``; expires likewise)."""
    return f"{PREFIX}vd:{guid}:measured"


def statistics_previous(kind: str, guid: str) -> str:
    """An object's previous statistics dictionary, the base of its next ``_ps`` rates (the original's
    ``<object key>_statistics_previous``)."""
    return f"{PREFIX}stats:{kind}:{guid}:previous"
