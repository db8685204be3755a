"""Actions of StorageRouters and StorageDrivers (contract §6): node-local work as tasks on the named node.

Each task action answers its task id (a JSON string) at once; the work runs on the StorageRouter the
path names. When that node is down the call fails fast with 503 node_unavailable. A body field an action
does not declare is refused (400), as everywhere (contract §1).
"""

from __future__ import annotations

from typing import Any

from ovsd.api.call import Call
from ovsd.api.declare import RW, R, endpoint
from ovsd.api.errors import invalid_data, node_unavailable
from ovsd.api.params import Param
from ovsd.api.views import storage  # noqa: F401  (declares the storagerouters and storagedrivers resources)
from ovsd.api.views.common import repository
from ovsd.controllers import storagedriver, storagerouter
from ovsd.tasks import NodeUnavailable


async def _on_node(call: Call, task_name: str, **kwargs: Any) -> str:
    try:
        return await storagerouter.run_on_storagerouter(call.context, call.guid, task_name, kwargs)
    except NodeUnavailable:
        router = await repository(call).get("storagerouter", call.guid)
        raise node_unavailable(str(router.data.get("name") or call.guid)) from None


def _names(value: Any, name: str) -> list[str]:
    """A comma-separated string (or a JSON list) of names, without blanks."""
    items = value.split(",") if isinstance(value, str) else value
    if not all(isinstance(item, str) for item in items):
        raise invalid_data(f"Invalid data passed: {name} must be a comma-separated list of paths")
    return [item.strip() for item in items if item.strip()]


@endpoint(resource="storagerouters", method="GET", link="get_available_actions", roles=R, returns="value")
async def get_available_actions(call: Call) -> Any:
    """The actions this StorageRouter offers: ["MOVE_AWAY"] when another StorageRouter exists, else []."""
    return await storagerouter.available_actions(repository(call), call.guid)


@endpoint(resource="storagerouters", method="POST", action="get_physical_metadata", roles=RW, returns="task", fields=(),
          params=(Param("files", (str, list), default="",
                        description="comma-separated paths to check for existence on the node"),))
async def get_physical_metadata(call: Call) -> Any:
    """Task: mountpoints, ip addresses, existence of the given files, allow_vpool, gathered on that node."""
    return await _on_node(call, "storagerouter.get_physical_metadata", files=_names(call.params["files"], "files"))


@endpoint(resource="storagerouters", method="GET", link="get_version_info", roles=R, returns="task")
async def get_version_info(call: Call) -> Any:
    """Task: versions of ovsd, its key dependencies and the store server on that node."""
    return await _on_node(call, "storagerouter.get_version_info")


@endpoint(resource="storagerouters", method="POST", action="check_mtpt", roles=RW, returns="task", fields=(),
          params=(Param("name", str, mandatory=True,
                        description="an absolute path, or a name under /mnt"),))
async def check_mtpt(call: Call) -> Any:
    """Task: true when the path on that node is missing, or an empty directory that is a mountpoint."""
    name = call.params["name"].strip()
    if not name or "\0" in name:
        raise invalid_data("Invalid data passed: name must be a path")
    return await _on_node(call, "storagerouter.check_mtpt", name=name)


@endpoint(resource="storagerouters", method="POST", action="check_s3", roles=RW, returns="task", fields=(), params=(
    Param("host", str, mandatory=True), Param("port", int, mandatory=True),
    Param("accesskey", str, mandatory=True), Param("secretkey", str, mandatory=True),
))
async def check_s3(call: Call) -> Any:
    """Task: true when that node reaches the S3 endpoint and a request signed with the keys succeeds."""
    p = call.params
    host = p["host"].strip()
    if not host or any(c in host for c in "/?#@ "):
        raise invalid_data("Invalid data passed: host must be a host name or an ip address")
    if not 0 < p["port"] < 65536:
        raise invalid_data("Invalid data passed: port must be between 1 and 65535")
    return await _on_node(call, "storagerouter.check_s3", host=host, port=p["port"], accesskey=p["accesskey"],
                          secretkey=p["secretkey"])


@endpoint(resource="storagedrivers", method="GET", link="can_be_deleted", roles=R, returns="value")
@endpoint(resource="storagedrivers", method="POST", action="can_be_deleted", roles=R, returns="value",
          fields=())
async def can_be_deleted(call: Call) -> Any:
    """Whether the StorageDriver may be removed: false while it serves a vDisk of its vPool."""
    return await storagedriver.can_be_deleted(repository(call), call.guid)
