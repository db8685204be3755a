"""This node's identity in the model: its StorageRouter and pMachine, created or updated, never duplicated."""

from __future__ import annotations

import socket

from twisted.logger import Logger

from ovsd.config import Config
from ovsd.dal.repository import DataObject, ObjectNotFound, Repository, UniqueConflict

log = Logger()


async def register_node(repo: Repository, config: Config) -> DataObject:
    """Make sure the StorageRouter of ``node.machine_id`` exists with this name and ip, on its pMachine.

    Keyed by machine_id (unique): a changed name or ip updates the StorageRouter, a second daemon with
    another machine_id on the same host is another StorageRouter.
    """
    node = config.node
    hostname = socket.gethostname()
    router = await repo.find("storagerouter", "machine_id", node.machine_id)
    if router is None:
        pmachine = await repo.create("pmachine", {"name": hostname, "ip": node.ip, "hvtype": "KVM"})
        try:
            router = await repo.create("storagerouter", {
                "name": node.name, "machine_id": node.machine_id, "ip": node.ip, "pmachine_guid": pmachine.guid,
            })
        except UniqueConflict:
            # another start of this node won the race: use its StorageRouter, drop our pMachine
            await repo.delete("pmachine", pmachine.guid)
            found = await repo.find("storagerouter", "machine_id", node.machine_id)
            assert found is not None
            return await register_node(repo, config)
        log.info("registered StorageRouter {name} ({guid}) on pMachine {pmachine}", name=node.name,
                 guid=router.guid, pmachine=pmachine.guid)
        return router
    changes = {k: v for k, v in (("name", node.name), ("ip", node.ip)) if router.data.get(k) != v}
    if changes:
        router = await repo.update("storagerouter", router.guid, changes)
        log.info("StorageRouter {guid} updated: {changes}", guid=router.guid, changes=changes)
    try:
        pmachine = await repo.get("pmachine", str(router.data["pmachine_guid"]))
    except ObjectNotFound:
        return router
    pm_changes = {k: v for k, v in (("name", hostname), ("ip", node.ip)) if pmachine.data.get(k) != v}
    if pm_changes:
        await repo.update("pmachine", pmachine.guid, pm_changes)
    return router
