"""A real ``twistd -n ovsd`` subprocess on this machine, as a user or systemd runs it."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPResponse, HTTPSConnection
from pathlib import Path
from typing import Any

from devnode.config import node_sections, write_config
from devnode.host import free_port

# the venv's scripts (twistd, ovsctl) sit next to the interpreter that runs us
BIN = Path(sys.executable).parent


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
