"""The node and its store over links a real deployment meets: a store that needs a password or an ACL user,
an IPv6 address, a unix socket, and a link that turns hostile (every connection accepted, then reset)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

from ovsd.store.connection import Store, retry_policy
from ovsd.store.errors import StoreUnavailable
from tests.support import HostileLink, TwistdNode, connected_store, free_port, sleep, valkey_server, wait_for


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[int]:
    """A Valkey that wants a password for the default user and knows an ACL user `ovsd`."""
    port = free_port()
    process = valkey_server(port, tmp_path / "valkey", "--requirepass", "s3cret:/@pw",
                            "--unixsocket", str(tmp_path / "v.sock"), "--unixsocketperm", "700")
    try:
        assert wait_for(lambda: (tmp_path / "v.sock").exists(), 5)
        yield port
    finally:
        process.kill()
        process.wait()


@pytest_twisted.ensureDeferred
async def test_a_password_an_acl_user_and_a_database_in_the_url_are_used(secured_server: int, tmp_path: Path) -> None:
    port = secured_server
    admin = await connected_store(f"redis://:s3cret%3A%2F%40pw@127.0.0.1:{port}/0", tmp_path)
    try:
        assert "s3cret" not in admin.description
        assert await admin.execute("ACL", "SETUSER", "ovsd", "on", ">user-pw", "~*", "+@all") == "OK"
        assert await admin.execute("SET", "where", "db0") == "OK"
    finally:
        await admin.stopService()
    user = await connected_store(f"redis://ovsd:user-pw@127.0.0.1:{port}/3", tmp_path)
    try:
        assert await user.execute("ACL", "WHOAMI") == "ovsd"
        assert await user.execute("GET", "where") is None  # database 3, not 0
        await user.execute("SET", "where", "db3")
    finally:
        await user.stopService()
    query = urlencode({"password": "s3cret:/@pw", "db": "3"})
    over_unix = await connected_store(f"unix://{tmp_path / 'v.sock'}?{query}", tmp_path)
    try:
        assert await over_unix.execute("GET", "where") == "db3"
    finally:
        await over_unix.stopService()


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_keeps_the_store_unavailable_without_crashing(
    secured_server: int, tmp_path: Path,
) -> None:
    wrong = Store(f"redis://:nope@127.0.0.1:{secured_server}", tmp_path, reactor)
    wrong.startService()
    try:
        await sleep(0.5)
        assert not wrong.available
        with pytest.raises(StoreUnavailable):
            await wrong.execute("PING")
    finally:
        await wrong.stopService()


@pytest_twisted.ensureDeferred
async def test_an_ipv6_store(tmp_path: Path) -> None:
    port = free_port()
    process = valkey_server(port, tmp_path / "valkey", bind="::1")
    try:
        store = await connected_store(f"redis://[::1]:{port}/1", tmp_path)
        try:
            assert store.description == f"redis://[::1]:{port}/1"
            assert await store.execute("SET", "six", "yes") == "OK"
            assert await store.execute("GET", "six") == "yes"
        finally:
            await store.stopService()
    finally:
        process.kill()
        process.wait()


def test_a_node_behind_a_link_that_resets_every_connection_answers_within_3_s_of_its_return(tmp_path: Path) -> None:
    port = free_port()
    server = valkey_server(port, tmp_path / "valkey")
    link = HostileLink(("127.0.0.1", port))
    node = TwistdNode(tmp_path / "n1", extra={"store": {"url": f"redis://127.0.0.1:{link.port}/0"}})
    try:
        node.start()
        node.wait_ready()
        body = urlencode({"grant_type": "password", "username": "admin", "password": "admin-secret-pw"}).encode()
        status, token, _ = node.request("POST", "/api/oauth2/token/", body,
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, token
        headers = {"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json; version=1"}
        assert node.get("/api/storagerouters/", headers)[0] == 200

        link.start_resetting()
        assert wait_for(lambda: node.get("/api/storagerouters/", headers)[0] == 503, 5)
        accepted = link.accepted
        time.sleep(30)
        assert link.accepted - accepted >= 15, "the node stopped trying to reconnect"  # ~1 try/s per connection

        link.resetting = False
        returned = time.monotonic()
        answered = wait_for(lambda: node.get("/api/storagerouters/", headers)[0] == 200, 10, interval=0.1)
        took = time.monotonic() - returned
        assert answered, f"no answer 10 s after the link returned:\n{node.log_text()[-3000:]}"
        assert took <= 3.0, f"the node answered {took:.1f} s after the link returned"
        assert json.dumps(node.get("/api/storagerouters/", headers)[1])
        assert node.stop() == 0
    finally:
        node.kill()
        link.close()
        server.kill()
        server.wait()


@pytest_twisted.ensureDeferred
async def test_a_store_link_cut_for_a_moment_is_back_within_a_fraction_of_a_second(tmp_path: Path) -> None:
    port = free_port()
    server = valkey_server(port, tmp_path / "valkey")
    link = HostileLink(("127.0.0.1", port))
    failures: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    store = await connected_store(f"redis://127.0.0.1:{link.port}/0", tmp_path)
    try:
        took: list[float] = []
        for _ in range(5):
            link.start_resetting()  # the open connections are reset: the store notices at once
            cut = time.monotonic()
            while store.available:
                assert time.monotonic() - cut < 3, "the store did not notice the cut"
                await sleep(0.005)
            link.resetting = False
            returned = time.monotonic()
            while not await store.ping():
                assert time.monotonic() - returned < 3, "the store did not come back"
                await sleep(0.01)
            took.append(time.monotonic() - returned)
        # the first attempt waits 50 ms and a jitter of at most 50 ms: not a second, as Twisted's default adds
        assert max(took) < 0.5, took

        # a link that accepts and resets every connection: each is a failed attempt, and the attempts back off
        link.start_resetting()
        accepted = link.accepted
        await sleep(2.5)
        tries = link.accepted - accepted
        assert 4 <= tries <= 2 * 9, tries  # per connection 50, 100, 200, 400, 800 ms, then every second
        link.resetting = False
        returned = time.monotonic()
        while not await store.ping():
            assert time.monotonic() - returned < 3, "the store did not come back"
            await sleep(0.01)
        assert not failures, [e.get("log_format") or e.get("log_text") for e in failures]  # nothing but warnings
    finally:
        globalLogPublisher.removeObserver(observe)
        await store.stopService()
        link.close()
        server.kill()
        server.wait()


def test_reconnection_attempts_start_at_50_ms_and_never_wait_much_over_a_second() -> None:
    policy = retry_policy(Store.initial_retry_delay, Store.max_retry_delay)
    first = [policy(0) for _ in range(500)]
    assert 0.05 <= min(first) and max(first) <= 0.1
    assert len({round(d, 6) for d in first}) > 100  # jittered: nodes cut off together do not retry together
    assert all(1.0 <= policy(n) <= 1.05 for n in (5, 10, 1000) for _ in range(100))
