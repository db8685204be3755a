"""The daemon as a user runs it: a real `twistd -n ovsd` subprocess over real TLS with a real store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsd.store import keys
from tests.support import (
    REPO,
    TwistdNode,
    children_of,
    free_port,
    notify_socket,
    processes_with,
    raw_store_command,
    valkey_server,
    wait_for,
    write_config,
)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[TwistdNode]:
    n = TwistdNode(tmp_path / "n1")
    yield n
    n.kill()


def test_ready_notification_metadata_and_clean_sigterm(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    with notify_socket(notify_path) as sock:
        n = TwistdNode(tmp_path / "n1", env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000"})
        n.start()
        try:
            messages: list[str] = []
            deadline = time.monotonic() + 20
            while "READY=1" not in "".join(messages) and time.monotonic() < deadline:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    assert n.process is not None and n.process.poll() is None, n.log_text()
            assert any("READY=1" in m for m in messages), n.log_text()
            # the API answers as soon as READY=1 was sent: it is sent only once it listens and the store answers
            status, meta = n.get("/api")
            assert status == 200
            assert meta["authenticated"] is False
            assert meta["authentication_state"] == "unauthenticated"
            assert meta["username"] is None and meta["userguid"] is None
            assert meta["roles"] == []
            assert meta["versions"] == [1, 2]
            assert "127.0.0.1" in meta["storagerouter_ips"]
            # the watchdog is pinged at half its interval
            watchdog = wait_for(lambda: _recv_until(sock, "WATCHDOG=1"), 3)
            assert watchdog
            store_pid = n.store_pid()
            assert n.process is not None
            assert store_pid in _descendants(n.process.pid)
            started = time.monotonic()
            assert n.stop(signal.SIGTERM, timeout=10) == 0
            assert time.monotonic() - started < 10
            assert wait_for(lambda: _recv_until(sock, "STOPPING=1"), 1)
            assert not processes_with(str(n.data_dir / "store" / "valkey.sock"))
        finally:
            n.kill()


def _recv_until(sock: socket.socket, text: str) -> bool:
    try:
        return text in sock.recv(4096).decode()
    except TimeoutError:
        return False


def _descendants(pid: int) -> list[int]:
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = children_of(p)
        out += kids
        todo += kids
    return out


def test_killed_store_server_is_restarted_and_keeps_its_data(node: TwistdNode) -> None:
    node.start()
    node.wait_ready()
    sock = str(node.data_dir / "store" / "valkey.sock")
    assert raw_store_command(sock, "SET", "test:survivor", "still here") == "OK"
    old_pid = node.store_pid()
    os.kill(old_pid, signal.SIGKILL)
    started = time.monotonic()
    new_pid = wait_for(lambda: _new_pid(node, old_pid), 5)
    assert new_pid, node.log_text()
    assert wait_for(lambda: _get(sock, "test:survivor") == "still here", 5)
    assert time.monotonic() - started < 2.5
    assert wait_for(lambda: node.get("/api")[0] == 200, 5)
    assert node.stop() == 0


def _new_pid(node: TwistdNode, old: int) -> int | None:
    try:
        pid = node.store_pid()
    except (OSError, ValueError):
        return None
    return pid if pid != old else None


def _get(sock: str, key: str) -> str | None:
    try:
        return raw_store_command(sock, "GET", key)  # type: ignore[no-any-return]
    except OSError:
        return None


def test_daemon_killed_with_sigkill_leaves_no_orphan_and_restarts(node: TwistdNode) -> None:
    node.start()
    node.wait_ready()
    store_pid = node.store_pid()
    node.kill()  # SIGKILL: no chance to clean up
    # the kernel kills the store server with its parent (childguard arms PR_SET_PDEATHSIG)
    assert wait_for(lambda: not processes_with(str(node.data_dir / "store" / "valkey.sock")), 5)
    assert (node.data_dir / "store" / "valkey.pid").exists()  # stale pid file left behind
    node.start()
    node.wait_ready()
    assert node.store_pid() != store_pid
    assert node.stop() == 0


def test_external_store_outage_answers_503_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    server = valkey_server(port, tmp_path / "valkey")
    n = TwistdNode(tmp_path / "n1", extra={"store": {"url": f"redis://127.0.0.1:{port}/0"}})
    try:
        n.start()
        n.wait_ready()
        assert raw_store_command(("127.0.0.1", port), "PING") == "PONG"
        server.kill()
        server.wait()
        status, body = wait_for(lambda: _status_is(n, 503), 5)
        assert status == 503
        assert body["error"] == "store_unavailable"
        assert set(body) == {"error", "error_description"}
        server = valkey_server(port, tmp_path / "valkey")
        status, body = wait_for(lambda: _status_is(n, 200), 10)
        assert status == 200, body
        assert body["versions"] == [1, 2]
        assert n.stop() == 0
    finally:
        n.kill()
        server.kill()
        server.wait()


def _status_is(node: TwistdNode, status: int) -> tuple[int, object] | None:
    result = node.get("/api")
    return result if result[0] == status else None


def test_waits_for_an_external_store_that_is_not_up_yet(tmp_path: Path) -> None:
    port = free_port()
    n = TwistdNode(tmp_path / "n1", extra={"store": {"url": f"redis://127.0.0.1:{port}"}})
    n.start()
    server = None
    try:
        assert wait_for(lambda: "waiting for the store" in n.log_text(), 10), n.log_text()
        assert n.process is not None and n.process.poll() is None  # waiting, not crashed
        status, body = n.get("/api")
        assert (status, body["error"]) == (503, "store_unavailable")
        server = valkey_server(port, tmp_path / "valkey")
        n.wait_ready()
    finally:
        n.kill()
        if server is not None:
            server.kill()
            server.wait()


def test_plain_http_gets_no_http_answer(node: TwistdNode) -> None:
    node.start()
    node.wait_ready()
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not received.startswith(b"HTTP/")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("api", "port", 70000), ("api", "port", "eighty"), ("store", "url", "ftp://x"), ("agent", "bogus", 1)],
)
def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path, section: str, key: str, value: object) -> None:
    config = write_config(tmp_path / "bad.toml", {section: {key: value}, "node": {"data_dir": str(tmp_path)}})
    result = subprocess.run(
        [str(Path(sys.executable).parent / "twistd"), "--pidfile=", "-n", "ovsd", "-c", str(config)],
        capture_output=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert f"{section}.{key}" in result.stderr.decode()


def test_bad_environment_override_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "OVSD_AGENT_FAILURE_AFTER": "soon", "OVSD_NODE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "twistd"), "--pidfile=", "-n", "ovsd"],
        capture_output=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "agent.failure_after" in result.stderr.decode()


def test_non_editable_install_registers_the_twistd_plugin(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # dependencies come from the test venv (appended to the path, its .pth files not run, so the
    # editable checkout is not visible); ovsd itself is installed into the new venv as a wheel would be
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "deps.pth").write_text(str(deps) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(REPO)],
        check=True, cwd=tmp_path, capture_output=True,
    )
    assert (site / "twisted" / "plugins" / "ovsd_plugin.py").exists()
    assert not (site / "twisted" / "__init__.py").exists()
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from twisted.scripts.twistd import run; run()", "--help"],
        capture_output=True, timeout=120, cwd=tmp_path,
    )
    out = result.stdout.decode()
    assert "ovsd" in out, out + result.stderr.decode()
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ovsd, sys; print(ovsd.__file__)"],
        capture_output=True, cwd=tmp_path, check=True,
    )
    assert str(site) in listing.stdout.decode()


def _admin_token(node: TwistdNode) -> str:
    from urllib.parse import urlencode

    status, body, _ = node.request(
        "POST", "/api/oauth2/token/",
        body=urlencode({"grant_type": "password", "username": "admin", "password": "admin-secret-pw"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    return str(body["access_token"])


def test_sigterm_lets_a_request_in_flight_finish(node: TwistdNode) -> None:
    import threading

    node.start()
    node.wait_ready()
    token = _admin_token(node)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json; version=1"}
    node.request("POST", "/api/messages/4242/subscribe/", body=b'["EVENT"]',
                 headers={**headers, "Content-Type": "application/json"})
    answers: list[tuple[int, object]] = []

    def long_poll() -> None:
        status, body, _ = node.request("GET", "/api/messages/4242/wait/?message_id=999999&timeout=30",
                                       headers=headers, timeout=30)
        answers.append((status, body))

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)  # the long-poll is now held by the daemon
    started = time.monotonic()
    assert node.stop(signal.SIGTERM, timeout=15) == 0
    poller.join(5)
    assert answers and answers[0][0] == 200, answers  # answered, not cut off
    assert time.monotonic() - started < 10


def test_json_log_file_has_named_fields(tmp_path: Path) -> None:
    import json

    log_file = tmp_path / "ovsd.jsonl"
    n = TwistdNode(tmp_path / "n1", extra={"log": {"json_file": str(log_file), "level": "info"}})
    try:
        n.start()
        n.wait_ready()
        assert n.stop() == 0
    finally:
        n.kill()
    events = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    listening = [e for e in events if e.get("log_format", "").startswith("API listening on")]
    assert listening and listening[0]["port"] == n.port and listening[0]["host"] == "127.0.0.1"
    assert not [e for e in events if e.get("log_level", {}).get("name") == "debug"]


def test_external_store_on_a_unix_socket(tmp_path: Path) -> None:
    from ovsd.store.embedded import find_server_binary

    sock = tmp_path / "ext.sock"
    server = subprocess.Popen(
        [find_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(tmp_path), "--save", "",
         "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    n = TwistdNode(tmp_path / "n1", extra={"store": {"url": f"unix://{sock}"}})
    try:
        assert wait_for(sock.exists, 10)
        n.start()
        n.wait_ready()
        # the node's objects are in that server, not in an embedded one
        assert raw_store_command(str(sock), "EXISTS", "ovs:idx:storagerouter") == "1"
        assert not (n.data_dir / "store" / "valkey.sock").exists()
        assert n.stop() == 0
    finally:
        n.kill()
        server.kill()
        server.wait()


def test_a_store_written_by_a_newer_ovsd_is_refused_with_a_failing_exit(tmp_path: Path) -> None:
    port = free_port()
    server = valkey_server(port, tmp_path / "valkey")
    n = TwistdNode(tmp_path / "n1", extra={"store": {"url": f"redis://127.0.0.1:{port}/0"}})
    try:
        raw_store_command(("127.0.0.1", port), "SET", keys.SCHEMA_VERSION, "999")
        n.start()
        assert n.process is not None
        status = n.process.wait(30)
        assert status == 3, n.log_text()
        assert "refusing to start" in n.log_text() and "newer ovsd" in n.log_text()
        assert raw_store_command(("127.0.0.1", port), "GET", keys.SCHEMA_VERSION) == "999"  # left untouched
    finally:
        n.kill()
        server.kill()
        server.wait()
