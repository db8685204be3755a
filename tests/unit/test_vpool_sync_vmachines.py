"""sync_vmachines exists (a declared route) and refuses clearly: ovsd has no hypervisor to ask for VMs."""

from __future__ import annotations

import pytest_twisted

from tests.views_support import ViewsNode, populate, store_snapshot, views_node

__all__ = ["views_node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_sync_vmachines_is_refused_for_want_of_a_hypervisor_and_changes_nothing(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token("read+write")
    reader = await node.admin_token("read")
    before = await store_snapshot(node.repository.store)
    reply = await node.call("POST", f"/api/vpools/{cluster.vpool}/sync_vmachines/", token)
    assert reply.error == (406, "not_acceptable"), reply.body
    assert reply.body["error_description"].startswith(
        "sync_vmachines needs a hypervisor integration, which this node does not have")
    assert "POST /api/vmachines/" in reply.body["error_description"]
    reply = await node.call("POST", "/api/vpools/00000000-0000-4000-8000-000000000000/sync_vmachines/", token)
    assert reply.status == 404, reply.body
    # the contract's roles: read and write
    reply = await node.call("POST", f"/api/vpools/{cluster.vpool}/sync_vmachines/", reader)
    assert reply.error == (403, "invalid_roles"), reply.body
    assert await store_snapshot(node.repository.store) == before
