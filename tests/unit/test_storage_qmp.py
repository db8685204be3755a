"""The QMP client against a real qemu-storage-daemon (and, for replies QEMU never reorders, a scripted peer)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.testing import StringTransport

from ovsd.storage import qmp
from ovsd.storage.vdisk import VDisk
from tests.storage_support import Daemon, MiB, cleanup, short_dir


def session_of(d: Daemon) -> qmp.QMPProtocol:
    assert d.session is not None
    return d.session


@pytest_twisted.ensureDeferred
async def test_the_session_is_negotiated_and_answers(daemon: Daemon) -> None:
    session = session_of(daemon)
    assert session.greeting is not None and session.greeting["version"]["qemu"]["major"] >= 7
    version = await session.execute("query-version")
    assert version["qemu"] == session.greeting["version"]["qemu"]


@pytest_twisted.ensureDeferred
async def test_a_qemu_error_carries_its_class_and_desc(daemon: Daemon) -> None:
    with pytest.raises(qmp.QMPError) as raised:
        await session_of(daemon).execute("blockdev-del", {"node-name": "nosuchnode"})
    assert raised.value.error_class == "GenericError"
    assert "nosuchnode" in raised.value.desc
    assert raised.value.command == "blockdev-del"
    with pytest.raises(qmp.QMPError) as unknown:
        await session_of(daemon).execute("no-such-command")
    assert unknown.value.error_class == "CommandNotFound"


@pytest_twisted.ensureDeferred
async def test_many_commands_in_flight_each_get_their_own_reply_and_events_go_apart(daemon: Daemon) -> None:
    driver = daemon.driver
    assert driver is not None
    await driver.create(VDisk(guid="ev", image=daemon.image("ev.qcow2"), size=8 * MiB))
    session = session_of(daemon)
    sent: list[defer.Deferred[Any]] = []
    for i in range(60):
        if i % 3 == 0:
            sent.append(session.execute("query-version"))
        elif i % 3 == 1:
            sent.append(session.execute("query-block-exports"))
        else:
            sent.append(session.execute("blockdev-del", {"node-name": f"missing{i}"}))
    # an export removal in the middle: QEMU sends its event among the replies
    gone = session.expect_event("BLOCK_EXPORT_DELETED")
    removal = session.execute("block-export-del", {"id": "nbd-ev", "mode": "hard"})
    results = await defer.DeferredList(sent, consumeErrors=True)
    for i, (ok, value) in enumerate(results):
        if i % 3 == 0:
            assert ok and "qemu" in value
        elif i % 3 == 1:
            assert ok and [e["id"] for e in value] == ["nbd-ev"]
        else:
            assert not ok and f"missing{i}" in value.value.desc
    assert await removal == {}
    assert (await gone) == {"id": "nbd-ev"}
    assert ("BLOCK_EXPORT_DELETED", {"id": "nbd-ev"}) in daemon.events
    assert session.pending == 0


def test_replies_out_of_order_and_between_events_reach_their_commands() -> None:
    clock = task.Clock()
    events: list[str] = []
    session = qmp.QMPProtocol(clock, on_event=lambda name, data, at: events.append(name))
    transport = StringTransport()
    session.makeConnection(transport)
    session.lineReceived(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}')
    negotiate = json.loads(transport.value().splitlines()[-1])
    assert negotiate["execute"] == "qmp_capabilities"
    session.lineReceived(json.dumps({"return": {}, "id": negotiate["id"]}).encode())
    assert session.ready.called
    transport.clear()

    answers: dict[str, Any] = {}
    session.execute("query-version").addCallback(lambda value: answers.setdefault("version", value))
    session.execute("query-block-exports").addCallback(lambda value: answers.setdefault("exports", value))
    ids = [json.loads(line)["id"] for line in transport.value().splitlines()]
    session.lineReceived(json.dumps({"return": [], "id": ids[1]}).encode())
    session.lineReceived(b'{"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": "running"}, '
                         b'"timestamp": {"seconds": 1, "microseconds": 5}}')
    session.lineReceived(json.dumps({"return": {"qemu": {}}, "id": ids[0]}).encode())
    assert answers == {"version": {"qemu": {}}, "exports": []}
    assert events == ["JOB_STATUS_CHANGE"]


@pytest_twisted.ensureDeferred
async def test_a_command_without_reply_times_out_and_the_session_stays_usable(daemon: Daemon) -> None:
    session = session_of(daemon)
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(qmp.QMPTimeout, match="query-version"):
            await session.execute("query-version", timeout=0.3)
        assert time.monotonic() - started < 2
        assert session.pending == 0
    finally:
        os.kill(daemon.process.pid, signal.SIGCONT)
    # the late reply is dropped; the next command gets its own answer
    assert await session.execute("query-block-exports") == []


@pytest_twisted.ensureDeferred
async def test_a_dropped_socket_fails_every_pending_command(daemon: Daemon) -> None:
    session = session_of(daemon)
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGSTOP)
    pending = [session.execute("query-version", timeout=10) for _ in range(5)]
    waiting_event = session.expect_event("BLOCK_EXPORT_DELETED", timeout=10)
    started = time.monotonic()
    daemon.kill(signal.SIGKILL)
    results = await defer.DeferredList([*pending, waiting_event], consumeErrors=True)
    assert time.monotonic() - started < 2
    assert all(not ok and isinstance(value.value, qmp.QMPDisconnected) for ok, value in results)
    assert "closed" in str(results[0][1].value)
    with pytest.raises(qmp.QMPDisconnected):
        await session.execute("query-version")


@pytest_twisted.ensureDeferred
async def test_connecting_where_no_daemon_listens_is_a_clear_error() -> None:
    directory = short_dir()
    try:
        with pytest.raises(qmp.QMPDisconnected, match="cannot connect to QMP"):
            await qmp.connect(reactor, os.path.join(directory, "qmp.sock"), handshake_timeout=1)
    finally:
        cleanup(directory)
