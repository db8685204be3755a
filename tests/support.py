"""Test support: configurations, a real embedded store, an in-process HTTPS API, a real twistd node."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPResponse, HTTPSConnection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def node_sections(data_dir: Path, port: int, **extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "node": {"name": data_dir.name, "machine_id": f"mid-{data_dir.name}", "ip": "127.0.0.1",
                 "data_dir": str(data_dir)},
        "api": {"host": "127.0.0.1", "port": port},
        "auth": {"admin_password": "admin-secret-pw"},
        "log": {"level": "info"},
    }
    for section, keys in extra.items():
        sections.setdefault(section, {}).update(keys)
    return sections


def raw_store_command(address: str | tuple[str, int], *args: str) -> Any:
    """Send one command to a Valkey server over a plain socket (the test's own client)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        s.sendall(payload.encode())
        data = s.recv(65536)
    if data.startswith(b"$-1"):
        return None
    if data.startswith(b"$"):
        return data.split(b"\r\n")[1].decode()
    return data.split(b"\r\n")[0][1:].decode()


@dataclass
class TwistdNode:
    """A real `twistd -n ovsd` subprocess, as a user or systemd runs it."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_path(self) -> Path:
        return self.directory / "ovsd.toml"

    @property
    def log_path(self) -> Path:
        return self.directory / "twistd.log"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_config(self.config_path, node_sections(self.data_dir, self.port, **self.extra))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OVSD_", "NOTIFY_SOCKET", "WATCHDOG"))}
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / "twistd"), "--pidfile=", "-n", "ovsd", "-c", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.directory,
        )
        log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"ovsd exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                # ready = what systemd is told: listening, store up, bootstrapped, registered
                if "node ready" in self.log_text() and self.get("/api")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"ovsd not ready in {timeout}s:\n{self.log_text()}")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.pem"))

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any, HTTPResponse]:
        conn = HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            payload: Any = json.loads(raw) if raw else None
        except ValueError:
            payload = raw
        return response.status, payload, response

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        status, payload, _ = self.request("GET", path, headers=headers)
        return status, payload

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def store_pid(self) -> int:
        return int((self.data_dir / "store" / "valkey.pid").read_text())


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains marker (to prove nothing was left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()


def valkey_server(
    port: int, directory: Path, *extra: str, bind: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """An external Valkey server on TCP, started by the test (the store a cluster may use)."""
    from ovsd.store.embedded import find_server_binary

    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [find_server_binary(), "--port", str(port), "--bind", bind, "--dir", str(directory),
         "--appendonly", "yes", "--save", "", "--daemonize", "no", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if not wait_for(lambda: _can_connect(port, bind), 10):
        proc.kill()
        raise AssertionError("valkey did not start")
    return proc


def _can_connect(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class HostileLink:
    """A TCP proxy in front of a server that can turn hostile: while ``resetting`` it accepts every
    connection and resets it at once (RST), as a link to a store that is away can; otherwise it forwards.
    Plain threads and sockets, so it keeps working while the test thread blocks on a request."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.resetting = False
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        sock.close()

    def start_resetting(self) -> None:
        """From now on every connection is reset, the open ones first."""
        self.resetting = True
        with self._lock:
            open_now, self._open = self._open, set()
        for sock in open_now:
            self._reset(sock)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.resetting:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with self._lock:
                self._open.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        self.start_resetting()
