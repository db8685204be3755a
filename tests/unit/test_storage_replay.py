"""A qemu-storage-daemon run by the agent's supervisor: SIGKILLed, restarted, every vDisk replayed with its data."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ovsd.agent.launcher import LaunchError
from ovsd.agent.supervisor import RUNNING, DriverState, DriverSupervisor
from ovsd.config import StoragedriverConfig
from ovsd.storage.daemon import DriverDaemon
from ovsd.storage.launcher import StorageDaemonLauncher, command_line, nbd_uri
from ovsd.storage.vdisk import VDisk
from tests.storage_support import MiB, assert_pattern, cleanup, short_dir, write
from tests.support import free_port

GUID = "5d0c6a52-8f0e-4a39-9d43-3c1b2a7e0001"


async def wait_until(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await task.deferLater(reactor, 0.02, lambda: None)
    return predicate()


class Node:
    """What the agent will hold: the vDisk descriptions it stored, the daemon of the running driver."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.vdisks: dict[str, VDisk] = {}
        self.daemon: DriverDaemon | None = None
        self.replays: list[dict[str, str]] = []
        self.states: list[DriverState] = []
        self.launcher = StorageDaemonLauncher(reactor, os.path.join(directory, "run"), on_ready=self.ready)
        config = StoragedriverConfig(command=("true",), stop_grace=5.0, max_restarts=5)
        self.supervisor = DriverSupervisor(reactor, config, self.changed)

    async def ready(self, guid: str, daemon: DriverDaemon) -> None:
        self.replays.append(await daemon.replay(self.vdisks.values()))
        self.daemon = daemon

    def changed(self, guid: str, state: DriverState, old: str | None) -> None:
        self.states.append(state)

    def running_pid(self, other_than: int | None = None) -> int | None:
        state = self.supervisor.state(GUID)
        if state is None or state.status != RUNNING or state.pid in (None, other_than):
            return None
        return state.pid

    def keep(self, vdisk: VDisk) -> VDisk:
        self.vdisks[vdisk.guid] = vdisk
        return vdisk

    def uri(self, export: str) -> str:
        return nbd_uri("127.0.0.1", self.port, export)

    def image(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.qcow2")


@pytest_twisted.async_yield_fixture
async def node() -> AsyncIterator[Node]:
    directory = short_dir()
    n = Node(directory)
    try:
        yield n
    finally:
        if n.supervisor.running:
            await n.supervisor.stopService()
        cleanup(directory)


@pytest_twisted.ensureDeferred
async def test_a_sigkilled_driver_comes_back_with_every_export_and_its_data(node: Node) -> None:
    await node.launcher.prepare(GUID)
    spec = node.launcher.launch_spec({"guid": GUID, "storage_ip": "127.0.0.1", "port": node.port}, {"type": "LOCAL"})
    assert spec.control_socket == node.launcher.qmp_socket(GUID)
    node.supervisor.startService()
    node.supervisor.ensure(GUID, spec)
    pid = await wait_until(node.running_pid, 15)
    assert pid and node.daemon is not None
    daemon = node.daemon

    for i in range(12):
        vdisk = node.keep(await daemon.create(VDisk(guid=f"plain{i}", image=node.image(f"plain{i}"), size=16 * MiB)))
        await write(node.uri(vdisk.export), 0x10 + i, 0, MiB)
    await daemon.create(VDisk(guid="snapped", image=node.image("snapped"), size=16 * MiB))
    await write(node.uri("snapped"), 0x51, 0, MiB)
    snapped, snapshot = await daemon.snapshot("snapped")
    node.keep(snapped)
    await write(node.uri("snapped"), 0x52, MiB, MiB)
    node.keep(await daemon.clone(VDisk(guid="clone", image=node.image("clone"), size=0), snapshot))
    await daemon.create(VDisk(guid="tmpl", image=node.image("tmpl"), size=16 * MiB))
    await write(node.uri("tmpl"), 0x61, 0, MiB)
    template = node.keep(await daemon.set_as_template("tmpl"))
    for name in ("child0", "child1"):
        node.keep(await daemon.create_from_template(template, VDisk(guid=name, image=node.image(name), size=0)))
    await write(node.uri("child0"), 0x62, 0, MiB)

    os.kill(pid, signal.SIGKILL)
    new_pid = await wait_until(lambda: node.running_pid(other_than=pid), 15)
    assert new_pid, node.states
    assert node.daemon is not daemon and node.replays[-1] == {}
    # RUNNING means replayed: every export answers at once
    exported = {e["vdisk"] for e in await node.daemon.exports()}
    assert exported == set(node.vdisks)
    for i in range(12):
        await assert_pattern(node.uri(f"plain{i}"), 0x10 + i, 0, MiB)
    await assert_pattern(node.uri("snapped"), 0x51, 0, MiB)
    await assert_pattern(node.uri("snapped"), 0x52, MiB, MiB)
    await assert_pattern(node.uri("clone"), 0x51, 0, MiB)
    await assert_pattern(node.uri("clone"), 0x00, MiB, MiB)
    await assert_pattern(node.uri("tmpl"), 0x61, 0, MiB)
    await assert_pattern(node.uri("child0"), 0x62, 0, MiB)
    await assert_pattern(node.uri("child1"), 0x61, 0, MiB)
    # and the replayed disks work as before: a rollback on the restarted daemon
    await node.daemon.rollback("snapped", snapshot)
    await assert_pattern(node.uri("snapped"), 0x00, MiB, MiB)


@pytest_twisted.ensureDeferred
async def test_replay_reports_a_vdisk_whose_image_is_gone_and_serves_the_others(node: Node) -> None:
    await node.launcher.prepare(GUID)
    node.vdisks = {"lost": VDisk(guid="lost", image=node.image("lost"), size=MiB)}
    spec = node.launcher.launch_spec({"guid": GUID, "storage_ip": "127.0.0.1", "port": node.port}, {"type": "LOCAL"})
    node.supervisor.startService()
    node.supervisor.ensure(GUID, spec)
    assert await wait_until(node.running_pid, 15)
    assert node.daemon is not None
    assert "lost" in node.replays[-1] and "No such file" in node.replays[-1]["lost"]
    assert await node.daemon.exports() == []
    kept = await node.daemon.create(VDisk(guid="kept", image=node.image("kept"), size=MiB))
    await write(node.uri(kept.export), 0x01, 0, 4096)


def test_the_launch_spec_names_what_a_storagedriver_lacks() -> None:
    launcher = StorageDaemonLauncher(reactor, "/tmp/ovsd-run")
    with pytest.raises(LaunchError, match="storage_ip"):
        launcher.launch_spec({"guid": GUID, "port": 26203}, {"type": "LOCAL"})
    with pytest.raises(LaunchError, match="too long"):
        command_line("/tmp/" + "x" * 120 + "/qmp.sock", "127.0.0.1", 26203)
    argv = command_line("/tmp/a,b/qmp.sock", "10.0.0.5", 26203)
    assert "socket,id=qmp0,path=/tmp/a,,b/qmp.sock,server=on,wait=off" in argv
    assert "addr.type=inet,addr.host=10.0.0.5,addr.port=26203" in argv
    assert nbd_uri("fd00::5", 26203, "vd") == "nbd://[fd00::5]:26203/vd"
