"""Management centers (registered only when they answer TLS) and pMachines through the API."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint

from tests.support import free_port
from tests.views_support import ViewsNode, populate, store_snapshot, tls_server, views_node

__all__ = ["views_node"]  # fixtures

INVALID = {"error": "not_acceptable", "error_description": "The given information is invalid."}


def center(port: int, **changes: Any) -> dict[str, Any]:
    body = {"name": "vcenter", "username": "administrator@vsphere.local", "password": "vc-pw", "ip": "127.0.0.1",
            "port": port, "type": "VCENTER", "description": "lab"}
    return {**body, **changes}


class _HangUp(protocol.Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_a_management_center_that_answers_tls_is_registered(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    server = await tls_server(node.tls_dir)
    try:
        reply = await node.call("POST", "/api/mgmtcenters/", token, body=center(server.port))
    finally:
        await server.stop()
    assert reply.status == 201, reply.body
    created = reply.body
    assert {k: created[k] for k in ("name", "username", "ip", "port", "type", "description")} == {
        "name": "vcenter", "username": "administrator@vsphere.local", "ip": "127.0.0.1", "port": server.port,
        "type": "VCENTER", "description": "lab"}
    assert created["hosts"] == {} and created["pmachines_guids"] == []
    assert "password" not in created
    assert (await node.call("GET", "/api/mgmtcenters/", token)).body == [created["guid"]]
    assert (await node.call("GET", f"/api/mgmtcenters/{created['guid']}/", token)).body == created
    # the ip is unique
    again = await tls_server(node.tls_dir)
    try:
        reply = await node.call("POST", "/api/mgmtcenters/", token, body=center(again.port, name="other"))
    finally:
        await again.stop()
    assert reply.body == {"error": "conflict", "error_description": "A mgmtcenter with this ip already exists"}


@pytest_twisted.ensureDeferred
async def test_an_unreachable_management_center_is_refused_and_not_stored(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    before = await store_snapshot(node.store)
    reply = await node.call("POST", "/api/mgmtcenters/", token, body=center(free_port()))
    assert (reply.status, reply.body) == (406, INVALID)
    # something listens, but it does not speak TLS
    plain = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(_HangUp))
    try:
        reply = await node.call("POST", "/api/mgmtcenters/", token, body=center(plain.getHost().port))
    finally:
        await plain.stopListening()
    assert (reply.status, reply.body) == (406, INVALID)
    for changes in ({"type": "HYPERV"}, {"port": 0}, {"port": 70000}, {"name": ""}):
        reply = await node.call("POST", "/api/mgmtcenters/", token, body={**center(443), **changes})
        assert reply.error == (400, "invalid_data"), changes
    assert await store_snapshot(node.store) == before


@pytest_twisted.ensureDeferred
async def test_deleting_a_management_center_unlinks_its_pmachines(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    cluster = await populate(node.repository)
    pmachine = (await node.call("GET", f"/api/pmachines/{cluster.pmachine}/", token)).body
    assert pmachine["mgmtcenter_guid"] == cluster.mgmtcenter
    writer = await node.admin_token("read+write")
    assert (await node.call("DELETE", f"/api/mgmtcenters/{cluster.mgmtcenter}/", writer)).error == (
        403, "invalid_roles")
    reply = await node.call("DELETE", f"/api/mgmtcenters/{cluster.mgmtcenter}/", token)
    assert (reply.status, reply.raw) == (204, b"")
    assert (await node.call("GET", "/api/mgmtcenters/", token)).body == []
    pmachine = (await node.call("GET", f"/api/pmachines/{cluster.pmachine}/", token)).body
    assert pmachine["mgmtcenter_guid"] is None


@pytest_twisted.ensureDeferred
async def test_a_manager_patches_a_pmachine(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token()
    path = f"/api/pmachines/{cluster.pmachine}/"
    reply = await node.call("PATCH", path, token, body={"name": "host-a", "description": "rack 4", "hvtype": "VMWARE",
                                                        "mgmtcenter_guid": None})
    assert reply.status == 202, reply.body
    assert {k: reply.body[k] for k in ("name", "description", "hvtype", "mgmtcenter_guid", "ip")} == {
        "name": "host-a", "description": "rack 4", "hvtype": "VMWARE", "mgmtcenter_guid": None, "ip": "10.0.0.1"}
    assert reply.body["host_status"] == "UNKNOWN"
    assert (await node.call("GET", path, token)).body == reply.body
    writer = await node.admin_token("read+write")
    before = await store_snapshot(node.store)
    reply = await node.call("PATCH", path, token, body={"name": "host-b", "bogus": 1})
    assert reply.body == {"error": "invalid_data", "error_description": "Invalid data passed: unknown field(s): bogus"}
    reply = await node.call("PATCH", path, token, body={"hvtype": "BEOS"})
    assert reply.body == {"error": "invalid_data",
                          "error_description": "Invalid data passed: hvtype must be one of HYPERV, VMWARE, XEN, KVM"}
    reply = await node.call("PATCH", path, writer, body={"name": "host-c"})
    assert reply.body == {"error": "invalid_roles",
                          "error_description": "This call requires roles: read, write, manage"}
    assert await store_snapshot(node.store) == before
