"""vPools through the API on real qemu-storage-daemons: add_vpool, extending, refusals, shrinking, events."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from ovsd.store.connection import Store
from tests.storage_api_support import StorageNode, start_storage_node, stop_storage_node, vpool_parameters
from tests.support import free_port
from tests.views_support import store_snapshot
from tests.work_support import eventually

SID = 4242


@pytest_twisted.async_yield_fixture
async def node(store: Store) -> AsyncIterator[StorageNode]:
    n = await start_storage_node(store, "sra")
    yield n
    await stop_storage_node(n)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def children_running(program: str) -> list[int]:
    """pids of processes whose command runs ``program`` (the daemon, under its childguard)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and any(os.path.basename(a) == program for a in cmdline(int(entry))[:8]):
            found.append(int(entry))
    return found


async def storage_keys(store: Store) -> dict[str, Any]:
    """Every stored vPool and StorageDriver key (objects, indexes, unique names, relations) and the tasks."""
    everything = await store_snapshot(store)
    return {k: v for k, v in everything.items() if "vpool" in k or "storagedriver" in k or k.startswith("ovs:task")}


async def events(node: StorageNode, since: int) -> list[dict[str, Any]]:
    answer = await node.ok("GET", f"/api/messages/{SID}/wait/?message_id={since}&timeout=0")
    return [m["body"] for m in answer["messages"] if m["type"] == "EVENT"]


async def subscribe(node: StorageNode) -> int:
    await node.ok("POST", f"/api/messages/{SID}/subscribe/", ["EVENT"])
    return int(await node.ok("GET", f"/api/messages/{SID}/last/"))


@pytest_twisted.ensureDeferred
async def test_add_vpool_runs_a_daemon_and_the_vpool_and_its_driver_are_running(node: StorageNode) -> None:
    since = await subscribe(node)
    images = os.path.join(node.directory, "images")
    added = await node.add_vpool("pool1", images)
    vpool = await node.ok("GET", f"/api/vpools/{added['vpool_guid']}/")
    assert vpool["status"] == "RUNNING" and vpool["type"] == "LOCAL" and vpool["size"] > 0
    assert vpool["storagedrivers_guids"] == [added["storagedriver_guid"]]
    driver = await node.ok("GET", f"/api/storagedrivers/{added['storagedriver_guid']}/")
    assert driver["storagedriver_id"] == f"pool1{node.machine_id}"
    assert driver["status"] == "RUNNING" and driver["mountpoint_bfs"] == images
    # its process is a qemu-storage-daemon whose NBD server listens on the driver's port
    assert "qemu-storage-daemon" in " ".join(cmdline(driver["pid"])), cmdline(driver["pid"])
    with socket.create_connection(("127.0.0.1", driver["port"]), timeout=2):
        pass
    assert os.path.isdir(images) and os.path.isdir(driver["mountpoint_md"])
    assert await node.ok("GET", f"/api/storagedrivers/{driver['guid']}/can_be_deleted/") is True
    assert await node.ok("GET", f"/api/vpools/{added['vpool_guid']}/storagerouters/") == [node.router_guid]
    seen = [(e["type"], e["metadata"].get("status")) for e in await events(node, since)]
    assert ("vpool_status_changed", "INSTALLING") in seen and ("vpool_status_changed", "RUNNING") in seen
    assert seen.index(("vpool_status_changed", "INSTALLING")) < seen.index(("vpool_status_changed", "RUNNING"))

    # the last driver removed: the process stops and the vPool is gone
    task_id = await node.ok("POST", f"/api/vpools/{added['vpool_guid']}/shrink_vpool/",
                            {"storagerouter_guid": node.router_guid})
    assert await node.result(task_id) is True
    assert (await node.call("GET", f"/api/vpools/{added['vpool_guid']}/")).status == 404
    assert (await node.call("GET", f"/api/storagedrivers/{driver['guid']}/")).status == 404
    await eventually(lambda: _gone(driver["pid"]), timeout=10)


async def _gone(pid: int) -> bool:
    return "qemu-storage-daemon" not in " ".join(cmdline(pid))


@pytest_twisted.ensureDeferred
async def test_a_second_node_extends_a_distributed_vpool(node: StorageNode, store: Store) -> None:
    other = await start_storage_node(store, "srb")
    try:
        shared = os.path.join(node.directory, "shared")
        first = await node.add_vpool("dist", shared, "DISTRIBUTED")
        params = vpool_parameters("dist", shared, other.directory, "DISTRIBUTED", free_port())
        task_id = await other.ok("POST", f"/api/storagerouters/{other.router_guid}/add_vpool/",
                                 {"call_parameters": params})
        second = await other.result(task_id)
        assert second["vpool_guid"] == first["vpool_guid"]
        vpool = await node.ok("GET", f"/api/vpools/{first['vpool_guid']}/")
        assert vpool["status"] == "RUNNING" and len(vpool["storagedrivers_guids"]) == 2
        assert sorted(await node.ok("GET", f"/api/vpools/{first['vpool_guid']}/storagerouters/")) == sorted(
            [node.router_guid, other.router_guid])
        sd = await other.ok("GET", f"/api/storagedrivers/{second['storagedriver_guid']}/")
        assert sd["status"] == "RUNNING" and sd["storagedriver_id"] == f"dist{other.machine_id}"

        # a DISTRIBUTED vPool keeps one image directory: another one is refused, and nothing is made
        elsewhere = vpool_parameters("dist", os.path.join(other.directory, "x"), other.directory, "DISTRIBUTED",
                                     free_port())
        third = await start_storage_node(store, "src")
        try:
            error = await third.error(await third.ok("POST", f"/api/storagerouters/{third.router_guid}/add_vpool/",
                                                     {"call_parameters": elsewhere}))
            assert "mountpoint_bfs must be that directory" in error
            vpool = await node.ok("GET", f"/api/vpools/{first['vpool_guid']}/")
            assert vpool["status"] == "RUNNING" and len(vpool["storagedrivers_guids"]) == 2
        finally:
            await stop_storage_node(third)
        # shrinking the second node leaves the vPool RUNNING on the first
        task_id = await node.ok("POST", f"/api/vpools/{first['vpool_guid']}/shrink_vpool/",
                                {"storagerouter_guid": other.router_guid})
        assert await node.result(task_id) is True
        vpool = await node.ok("GET", f"/api/vpools/{first['vpool_guid']}/")
        assert vpool["status"] == "RUNNING" and vpool["storagedrivers_guids"] == [first["storagedriver_guid"]]
    finally:
        await stop_storage_node(other)


@pytest_twisted.ensureDeferred
async def test_add_vpool_refusals_name_the_field_and_change_nothing(node: StorageNode, store: Store) -> None:
    path = f"/api/storagerouters/{node.router_guid}/add_vpool/"
    good = vpool_parameters("refused", os.path.join(node.directory, "img"), node.directory, "LOCAL", free_port())
    before = await storage_keys(store)
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "mountpoint_md"}, "Invalid data passed: mountpoint_md is missing"),
        ({k: v for k, v in good.items() if k != "vpool_name"}, "Invalid data passed: vpool_name is missing"),
        ({**good, "type": "AMAZON_S3"}, "type AMAZON_S3 has no block backend"),
        ({**good, "type": "NFS"}, "type must be one of LOCAL, DISTRIBUTED"),
        ({**good, "storage_ip": "not-an-ip"}, "storage_ip must be an ip address"),
        ({**good, "vrouter_port": 70000}, "vrouter_port must be between 1 and 65535"),
        ({**good, "vrouter_port": "x"}, "vrouter_port must be a whole number"),
        ({**good, "vpool_name": "bad name"}, "vpool_name must be letters and digits"),
        ({**good, "mountpoint_bfs": "relative/dir"}, "mountpoint_bfs must be an absolute path"),
        ({**good, "mountpoint_foc": "/a/../b"}, "mountpoint_foc must be an absolute path"),
        ({**good, "surprise": 1}, "surprise is not an add_vpool parameter"),
    ]
    for params, expected in cases:
        reply = await node.call("POST", path, {"call_parameters": params})
        assert reply.status == 406 and reply.body["error"] == "invalid_data", (params, reply.body)
        assert expected in reply.body["error_description"], (expected, reply.body)
    reply = await node.call("POST", path, {})
    assert reply.status == 406 and reply.body["error_description"] == "Invalid data passed: call_parameters is missing"
    after = await storage_keys(store)
    assert before == after
    assert not os.path.exists(os.path.join(node.directory, "img"))

    # a LOCAL vPool lives on one node: another node may not extend it
    await node.add_vpool("local1", os.path.join(node.directory, "l1"))
    other = await start_storage_node(store, "srd")
    try:
        params = vpool_parameters("local1", os.path.join(other.directory, "l1"), other.directory, "LOCAL", free_port())
        reply = await other.call("POST", f"/api/storagerouters/{other.router_guid}/add_vpool/",
                                 {"call_parameters": params})
        assert reply.error == (406, "not_acceptable")
        assert reply.body["error_description"] == "A local vPool with name local1 already exists"
        pool = await node.repo.find("vpool", "name", "local1")
        assert pool is not None
        reply = await other.call("POST", f"/api/vpools/{pool.guid}/shrink_vpool/",
                                 {"storagerouter_guid": other.router_guid})
        assert reply.status == 406 and "is not a member of vPool local1" in reply.body["error_description"]
    finally:
        await stop_storage_node(other)


@pytest_twisted.ensureDeferred
async def test_a_failed_add_leaves_nothing_behind_and_says_why(node: StorageNode, store: Store) -> None:
    since = await subscribe(node)
    # the NBD port is taken: FAILURE naming it, no vPool, no driver, no directory made
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        params = vpool_parameters("busy", os.path.join(node.directory, "busy-img"), node.directory, "LOCAL", busy)
        task_id = await node.ok("POST", f"/api/storagerouters/{node.router_guid}/add_vpool/",
                                {"call_parameters": params})
        error = await node.error(task_id)
    assert error == f"port {busy} on 127.0.0.1 is in use"
    assert await node.repo.find("vpool", "name", "busy") is None
    assert await node.repo.guids("storagedriver") == []
    assert not os.path.exists(os.path.join(node.directory, "busy-img"))
    assert not os.path.exists(os.path.join(node.directory, "mnt", "busy", "md"))
    failures = [e["metadata"] for e in await events(node, since) if e["metadata"].get("status") == "FAILURE"]
    assert failures and failures[-1]["reason"] == error and failures[-1]["vpool_name"] == "busy"


@pytest_twisted.ensureDeferred
async def test_a_node_without_qemu_storage_daemon_names_the_package(store: Store) -> None:
    bare = await start_storage_node(store, "bare", tool_search="/nonexistent")
    try:
        params = vpool_parameters("nope", os.path.join(bare.directory, "img"), bare.directory, "LOCAL", free_port())
        task_id = await bare.ok("POST", f"/api/storagerouters/{bare.router_guid}/add_vpool/",
                                {"call_parameters": params})
        error = await bare.error(task_id)
        assert error == "qemu-storage-daemon is not installed on this node (Debian package qemu-system-common)"
        assert await bare.repo.find("vpool", "name", "nope") is None
        assert not os.path.exists(os.path.join(bare.directory, "img"))
    finally:
        await stop_storage_node(bare)
