"""Registering a vMachine is all or nothing: the vMachine and every vDisk's link to it reach the store as one
change set, and a vDisk attached elsewhere between the check and the write leaves no vMachine behind."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from ovsd.dal.changeset import Operation
from tests.unit.test_change_sets import record_writes
from tests.views_support import ViewsNode, populate, views_node

__all__ = ["views_node"]  # fixtures


async def loose_disks(node: ViewsNode, vpool: str, count: int) -> list[str]:
    return [(await node.repository.create("vdisk", {"name": f"loose{n}", "size": 1, "vpool_guid": vpool})).guid
            for n in range(count)]


@pytest_twisted.ensureDeferred
async def test_a_vmachine_and_its_disks_links_reach_the_store_as_one_write(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    cluster = await populate(node.repository)
    disks = await loose_disks(node, cluster.vpool, 3)
    token = await node.admin_token()
    writes = await record_writes(node.store, monkeypatch)
    reply = await node.call("POST", "/api/vmachines/", token, body={"name": "web", "vdisks_guids": disks})
    assert reply.status == 201, reply.body
    # the one change set; the rest are cache entries of the answer's dynamics and the vmachine_created event
    assert writes.count("dal_apply") == 1 and set(writes) <= {"dal_apply", "SET", "XADD"}, writes
    assert reply.body["vdisks_guids"] == sorted(disks)
    for order, guid in enumerate(disks):
        stored = await node.repository.get("vdisk", guid)
        assert (stored.data["vmachine_guid"], stored.data["order"]) == (reply.body["guid"], order)


@pytest_twisted.ensureDeferred
async def test_a_disk_attached_elsewhere_meanwhile_leaves_no_vmachine_and_no_link(
    views_node: ViewsNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = views_node
    repo = node.repository
    cluster = await populate(repo)
    disks = await loose_disks(node, cluster.vpool, 2)
    token = await node.admin_token()
    machines_before = set(await repo.guids("vmachine"))
    apply = repo.apply
    raced: list[str] = []

    async def racing(operations: list[Operation], guards: Any = ()) -> Any:
        if not raced:  # another caller attaches the second disk to the existing vMachine just before this write
            raced.append("attached")
            taken = await repo.get("vdisk", disks[1])
            await apply([repo.planned_change(taken, {"vmachine_guid": cluster.vmachine})])
        return await apply(operations, guards)

    monkeypatch.setattr(repo, "apply", racing)
    reply = await node.call("POST", "/api/vmachines/", token, body={"name": "web", "vdisks_guids": disks})
    assert raced and reply.error == (406, "not_acceptable"), reply.body
    assert "attached to another vMachine" in reply.body["error_description"]
    assert set(await repo.guids("vmachine")) == machines_before  # no vMachine with half its disks
    assert (await repo.get("vdisk", disks[0])).data["vmachine_guid"] is None
    assert (await repo.get("vdisk", disks[1])).data["vmachine_guid"] == cluster.vmachine
