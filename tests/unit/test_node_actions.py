"""Node-local actions of StorageRouters and StorageDrivers through the API, run as tasks by the node's worker.

The node is in-process (real store, HTTPS API, task engine and worker with the controllers' tasks); the
S3 endpoint is moto's server mode on loopback, with IAM authentication on so wrong keys are refused.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

import ovsd
from ovsd.agent.registration import register_node
from ovsd.controllers.bootstrap import bootstrap
from ovsd.controllers.s3probe import sign_v4
from ovsd.controllers.storagerouter import free_mountpoint, local_addresses, mount_table, vpool_mountpoints
from ovsd.dal.repository import Repository
from ovsd.service import build_node, prepare_data_dir
from ovsd.store import keys
from ovsd.store.connection import Store
from tests.conftest import node_config, serve_api
from tests.support import free_port, wait_for
from tests.views_support import Reply, ViewsNode


@dataclass
class ActionNode:
    node: ViewsNode
    router: str
    token: str

    @property
    def repository(self) -> Repository:
        return self.node.repository

    async def call(self, method: str, path: str, body: Any = None) -> Reply:
        if body is None:
            return await self.node.call(method, path, self.token)
        return await self.node.call(method, path, self.token, body=body)

    async def result(self, task_id: Any) -> Any:
        """The task's result once it ran (the raw value, as GET /api/tasks/<id>/get/ answers it)."""
        assert isinstance(task_id, str), task_id
        reply = await self.call("GET", f"/api/tasks/{task_id}/get/?timeout=20")
        assert reply.status == 200, reply.body
        return reply.body

    async def action(self, method: str, path: str, body: Any = None) -> Any:
        reply = await self.call(method, path, body)
        assert reply.status == 200, reply.body
        return await self.result(reply.body)


@pytest_twisted.async_yield_fixture
async def action_node(store: Store, tmp_path: Path) -> AsyncIterator[ActionNode]:
    data_dir = tmp_path / "sr-one" / "data"
    data_dir.parent.mkdir(parents=True)
    config = node_config(data_dir, node={"name": "sr-one", "machine_id": "mid-sr-one"})
    prepare_data_dir(config)
    # the controllers' own tasks (build_node loads them) on an engine and a worker; no agent: the test registers
    node = build_node(config, reactor, store=store, concurrency=2)
    await bootstrap(node.repository, config)
    router = await register_node(node.repository, config)
    node.mark_ready()
    node.engine.startService()
    node.worker.startService()
    pool = HTTPConnectionPool(reactor, persistent=True)
    views = ViewsNode(await serve_api(node, pool), node.repository, pool)
    yield ActionNode(views, router.guid, await views.admin_token())
    await pool.closeCachedConnections()
    for service in (node.api, node.worker, node.engine):
        await service.stopService()


async def other_router(repo: Repository, name: str = "sr-two") -> str:
    """A StorageRouter of another node, which is not running (its liveness key is absent)."""
    pm = await repo.create("pmachine", {"name": f"pm-{name}", "ip": "10.0.0.2", "hvtype": "KVM"})
    sr = await repo.create("storagerouter", {"name": name, "machine_id": f"mid-{name}", "ip": "10.0.0.2",
                                             "pmachine_guid": pm.guid})
    return sr.guid


# --- StorageRouter actions ---------------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_available_actions_offer_move_away_once_another_storagerouter_exists(action_node: ActionNode) -> None:
    path = f"/api/storagerouters/{action_node.router}/get_available_actions/"
    assert (await action_node.call("GET", path)).body == []
    await other_router(action_node.repository)
    reply = await action_node.call("GET", path)
    assert (reply.status, reply.body) == (200, ["MOVE_AWAY"])


@pytest_twisted.ensureDeferred
async def test_physical_metadata_is_gathered_on_the_node(action_node: ActionNode, tmp_path: Path) -> None:
    present = tmp_path / "present.conf"
    present.write_text("x")
    missing = tmp_path / "missing.conf"
    reply = await action_node.call("POST", f"/api/storagerouters/{action_node.router}/get_physical_metadata/",
                                   {"files": f"{present}, {missing}"})
    assert reply.status == 200 and isinstance(reply.body, str)  # the task id, as a JSON string
    result = await action_node.result(reply.body)
    assert result["name"] == "sr-one" and result["machine_id"] == "mid-sr-one"
    assert result["storagerouter_guid"] == action_node.router
    assert result["files"] == {str(present): True, str(missing): False}
    assert result["allow_vpool"] is True
    assert result["mountpoints"] == vpool_mountpoints(mount_table())
    assert "/" not in result["mountpoints"] and not any(m.startswith("/proc") for m in result["mountpoints"])
    assert result["ipaddresses"] == local_addresses()


def test_mount_table_and_addresses_are_the_kernels(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\n"
                     "/dev/vdb /mnt/my\\040disk ext4 rw 0 0\ntmpfs /run/user tmpfs rw 0 0\n")
    assert mount_table(table) == ["/proc", "/", "/mnt/my disk", "/run/user"]
    assert vpool_mountpoints(mount_table(table)) == ["/mnt/my disk"]
    found = local_addresses()
    assert all(not a.startswith("127.") and a != "::1" and not a.startswith("fe80") for a in found)
    # every interface's primary IPv4 address (as the kernel answers SIOCGIFADDR) is among them
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # an interface without an IPv4 address
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                assert address in found


@pytest_twisted.ensureDeferred
async def test_version_info_names_ovsd_its_dependencies_and_the_store(action_node: ActionNode) -> None:
    result = await action_node.action("GET", f"/api/storagerouters/{action_node.router}/get_version_info/")
    assert result["storagerouter_guid"] == action_node.router
    versions = result["versions"]
    assert versions["ovsd"] == ovsd.__version__
    for package in ("twisted", "klein", "hiredis", "treq", "cryptography"):
        assert versions[package], package
    info = await action_node.node.store.execute("INFO", "server")
    server = "valkey-server" if "valkey_version:" in info else "redis-server"
    assert versions[server] and f"_version:{versions[server]}" in info


@pytest_twisted.ensureDeferred
async def test_check_mtpt_accepts_a_missing_path_and_refuses_a_used_one(action_node: ActionNode,
                                                                       tmp_path: Path) -> None:
    path = f"/api/storagerouters/{action_node.router}/check_mtpt/"
    assert await action_node.action("POST", path, {"name": str(tmp_path / "not-there")}) is True
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "data").write_text("x")
    assert await action_node.action("POST", path, {"name": str(tmp_path / "used")}) is False
    (tmp_path / "plain").mkdir()  # empty, but not a mountpoint: a vPool would fill the parent's disk
    assert await action_node.action("POST", path, {"name": str(tmp_path / "plain")}) is False
    reply = await action_node.call("POST", path, {})
    assert reply.error == (406, "invalid_data") and reply.body["error_description"].endswith("name is missing")


def test_an_empty_mounted_directory_is_a_free_mountpoint(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert free_mountpoint(empty, ["/", str(empty)])
    (empty / "file").write_text("x")
    assert not free_mountpoint(empty, ["/", str(empty)])
    assert free_mountpoint(tmp_path / "missing", ["/"])


@pytest_twisted.ensureDeferred
async def test_an_action_for_a_storagerouter_that_is_down_fails_fast(action_node: ActionNode) -> None:
    down = await other_router(action_node.repository)
    started = reactor.seconds()
    reply = await action_node.call("POST", f"/api/storagerouters/{down}/get_physical_metadata/", {"files": ""})
    assert reply.error == (503, "node_unavailable")
    assert "sr-two" in reply.body["error_description"]
    reply = await action_node.call("GET", f"/api/storagerouters/{down}/get_version_info/")
    assert reply.error == (503, "node_unavailable")
    assert reactor.seconds() - started < 2
    # once its node is up, the task is queued for it (and waits there)
    await action_node.node.store.execute("SET", keys.node_live("mid-sr-two"), "{}", "EX", 30)
    reply = await action_node.call("GET", f"/api/storagerouters/{down}/get_version_info/")
    assert reply.status == 200
    task = await action_node.call("GET", f"/api/tasks/{reply.body}/")
    assert task.body["status"] == "PENDING" and task.body["node"] == "mid-sr-two"


# --- StorageDriver can_be_deleted ----------------------------------------------------------------------------
@pytest_twisted.ensureDeferred
async def test_a_storagedriver_serving_a_vdisk_cannot_be_deleted(action_node: ActionNode) -> None:
    repo = action_node.repository
    vpool = await repo.create("vpool", {"name": "pool", "type": "LOCAL"})
    driver = await repo.create("storagedriver", {"name": "sd", "storagedriver_id": "pool-sr-one",
                                                 "vpool_guid": vpool.guid, "storagerouter_guid": action_node.router})
    vdisk = await repo.create("vdisk", {"name": "vd", "size": 1 << 30, "vpool_guid": vpool.guid})
    path = f"/api/storagedrivers/{driver.guid}/can_be_deleted/"
    # the vDisk is served by no StorageDriver yet: nothing is served by the driver
    for method in ("GET", "POST"):
        reply = await action_node.call(method, path)
        assert (reply.status, reply.body) == (200, True)

    # the vDisk records the StorageDriver that serves it (as vDisk create does)
    await repo.update("vdisk", vdisk.guid, {"storagedriver_guid": driver.guid})
    for method in ("GET", "POST"):
        reply = await action_node.call(method, path)
        assert (reply.status, reply.body) == (200, False)
    other = await repo.create("storagedriver", {"name": "sd2", "storagedriver_id": "pool-sr-two",
                                                "vpool_guid": vpool.guid, "storagerouter_guid": action_node.router})
    assert (await action_node.call("GET", f"/api/storagedrivers/{other.guid}/can_be_deleted/")).body is True
    reply = await action_node.call("GET", "/api/storagedrivers/00000000-0000-4000-8000-000000000000/can_be_deleted/")
    assert reply.error == (404, "object_not_found")


# --- check_s3 against a real S3 server ------------------------------------------------------------------------
@dataclass
class S3Server:
    port: int
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on loopback with an IAM user allowed s3:*; authentication on after the setup."""
    import boto3

    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: _listening(port), 30), "moto did not start"
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="ovs")
        iam.put_user_policy(UserName="ovs", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="ovs")["AccessKey"]
        # from now on every request must be signed by a known key
        conn = HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/moto-api/reset-auth", body=b"0", headers={"Content-Type": "text/plain"})
        assert conn.getresponse().status == 200
        conn.close()
        yield S3Server(port, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        server.kill()
        server.wait(10)
        log.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest_twisted.ensureDeferred
async def test_check_s3_is_true_only_for_the_right_keys_on_a_listening_server(
    action_node: ActionNode, s3_server: S3Server,
) -> None:
    path = f"/api/storagerouters/{action_node.router}/check_s3/"
    right = {"host": "127.0.0.1", "port": s3_server.port, "accesskey": s3_server.access_key,
             "secretkey": s3_server.secret_key}
    started = reactor.seconds()
    assert await action_node.action("POST", path, right) is True
    assert await action_node.action("POST", path, {**right, "secretkey": "not-the-secret"}) is False
    assert await action_node.action("POST", path, {**right, "accesskey": "AKIAUNKNOWNKEY000000"}) is False
    assert await action_node.action("POST", path, {**right, "port": free_port()}) is False  # nothing listens
    assert reactor.seconds() - started < 10
    reply = await action_node.call("POST", path, {**right, "port": 70000})
    assert reply.error == (400, "invalid_data")
    reply = await action_node.call("POST", path, {"host": "127.0.0.1", "port": 80, "accesskey": "a"})
    assert reply.error == (406, "invalid_data")


def test_the_signature_is_aws_signature_v4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our signer agrees with botocore's (the AWS SDK's) on the same request at the same time."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    when = datetime.datetime(2024, 5, 1, 12, 30, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when.replace(tzinfo=None))
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    request = AWSRequest(method="GET", url="http://s3.example.test:9000/", headers={})
    botocore.auth.S3SigV4Auth(Credentials("AKIDEXAMPLE", secret), "s3", "us-east-1").add_auth(request)
    payload = request.headers["X-Amz-Content-SHA256"]
    ours = sign_v4("GET", "s3.example.test:9000", "/", {"x-amz-content-sha256": payload}, "AKIDEXAMPLE", secret, when)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"] == "20240501T123000Z"
