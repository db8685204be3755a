"""The calls the seed era's web GUI makes (its pages' exact parameters, ``Accept: ...; version=*``) answer as
that era's API did, for the parts ovsd has."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest_twisted

from tests.views_support import ViewsNode, cheap_user, populate, views_node

__all__ = ["views_node"]  # fixtures


@pytest_twisted.ensureDeferred
async def test_every_page_s_reads_answer(views_node: ViewsNode) -> None:
    node = views_node
    cluster = await populate(node.repository)
    token = await node.admin_token()
    vm_query = '{"type":"AND","items":[["is_vtemplate","EQUALS",false],["status","NOT_EQUALS","CREATED"]]}'
    admin = await node.user("admin")
    calls = [
        ("storagerouters", {"sort": "name", "contents": ""}),  # about
        ("vmachines", {"contents": "statistics,stored_data", "sort": "-stored_data,name", "page": "1",
                       "query": vm_query}),  # dashboard: top vMachines
        ("vmachines", {"contents": "statistics,stored_data", "sort": "-statistics[data_transferred_ps],name",
                       "page": "1", "query": vm_query}),
        ("vmachines", {"query": vm_query}),
        ("vpools", {"contents": "statistics,stored_data", "sort": "-stored_data,name"}),
        ("vpools", {"contents": "statistics,stored_data", "sort": "-statistics[data_transferred_ps],name"}),
        ("storagerouters", {"contents": "status", "sort": "name,vdisks_guids"}),
        ("storagerouters", {"sort": "name", "contents": "storagedrivers"}),  # add vPool wizard
        ("pmachines", {"sort": "name", "contents": "mgmtcenter"}),
        ("mgmtcenters", {"sort": "name", "contents": "hosts"}),
        (f"pmachines/{cluster.pmachine}", {"contents": "mgmtcenter"}),
        ("storagerouters", {"sort": "name", "contents": "stored_data,status"}),
        ("storagerouters", {"sort": "name", "page": "1",
                            "contents": "_relations,statistics,stored_data,vdisks_guids,status"}),
        (f"storagerouters/{cluster.storagerouter}", {"contents": "_dynamics,_relations"}),
        (f"storagerouters/{cluster.storagerouter}/get_available_actions", {}),
        ("vpools", {"sort": "name", "contents": "storagedrivers"}),  # StorageRouter detail
        (f"vpools/{cluster.vpool}", {"contents": "_dynamics,_relations"}),
        (f"vpools/{cluster.vpool}/storagerouters", {"contents": ""}),
        ("vdisks", {"vpoolguid": cluster.vpool, "sort": "devicename", "contents": "_dynamics,_relations", "page": "1"}),
        ("vdisks", {"vmachineguid": cluster.vmachine, "sort": "devicename", "contents": "_dynamics,_relations"}),
        (f"vdisks/{cluster.vdisk}", {}),
        ("vmachines", {"vpoolguid": cluster.vpool, "sort": "name", "contents": "_dynamics,_relations"}),
        (f"vmachines/{cluster.vmachine}", {"contents": "_dynamics,_relations"}),
        (f"storagedrivers/{cluster.storagedriver}", {}),
        ("users", {"sort": "username", "contents": "_relations", "page": "1"}),
        (f"users/{admin.guid}", {}),
        ("clients", {"sort": "name", "contents": "_relations", "userguid": admin.guid, "type": "USER"}),
        ("groups", {"sort": "name", "contents": "_relations"}),
        ("roles", {"sort": "name", "contents": "_relations"}),
        ("branding", {}),
        ("statistics/memcache", {}),
        ("tasks", {}),
    ]
    for path, options in calls:
        query = f"?{urlencode(options)}" if options else ""
        reply = await node.call("GET", f"/api/{path}/{query}", token, version="*")
        assert reply.status == 200, (path, options, reply.body)
        assert reply.header("Content-Type") == "application/json; version=1", path
        if "/" not in path and path not in ("statistics/memcache", "tasks"):
            assert isinstance(reply.body, list), path


@pytest_twisted.ensureDeferred
async def test_the_users_page_changes(views_node: ViewsNode) -> None:
    node = views_node
    token = await node.admin_token()
    viewers = await node.group("viewers")
    dave = await cheap_user(node.repository, "dave", (await node.group("administrators")).guid)
    # the user page moves a user to another group, asking for the relations back
    moved = await node.call("PATCH", f"/api/users/{dave.guid}/?contents=_relations", token, version="*",
                            body={"group_guid": viewers.guid})
    assert moved.status == 202, moved.body
    assert moved.body["group_guid"] == viewers.guid and isinstance(moved.body["clients_guids"], list)
    # an administrator resets another user's password with new_password alone
    reset = await node.call("POST", f"/api/users/{dave.guid}/set_password/", token, version="*",
                            body={"new_password": "dave-New-1"})
    assert reset.status == 202, reset.body
