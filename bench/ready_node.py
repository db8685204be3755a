"""A node process for the work benchmarks, started on a free port and ready once it told systemd so; and the
bare Klein baseline's cost of an idle TLS connection.

Not a benchmark itself. ``ReadyNode(workdir, argv)`` writes a node configuration (``devnode``:
127.0.0.1, embedded Valkey, an admin password, log level warn) and runs ``argv + [config]`` with
``NOTIFY_SOCKET`` set, so "ready" is the daemon's own READY=1 (API listening, store up, bootstrap and
registration done), not a guess from polling. ``twistd(workdir)`` is the daemon as systemd runs it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BenchError, rss_kb, stop_process, token_at, wait_answer

from devnode import BIN, free_port, node_sections, write_config

READY_TIMEOUT = 60.0


class ReadyNode:
    """One node process: start() returns once it sent READY=1 and answers GET /api over its TLS."""

    def __init__(self, workdir: Path, argv: list[str], **sections: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.data_dir = workdir / "node" / "data"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.config = write_config(workdir / "ovsd.toml", node_sections(
            self.data_dir, self.port, **{"log": {"level": "warn"}, **sections},
        ))
        self.argv = [*argv, str(self.config)]
        self.log_path = workdir / "node.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.context: ssl.SSLContext | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def store_socket(self) -> Path:
        """The embedded Valkey's unix socket (what another node's publish would reach)."""
        return self.data_dir / "store" / "valkey.sock"

    def cpu_seconds(self) -> float:
        """User + system CPU time the node process used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> str | None:
        if self.process is None or self.process.poll() is None:
            return None
        return f"the node exited with {self.process.returncode}:\n{self.log_path.read_text(errors='replace')}"

    def start(self) -> ssl.SSLContext:
        notify_path = self.workdir / "notify.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(0.2)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OVSD_", "WATCHDOG", "NOTIFY_SOCKET"))}
            env["NOTIFY_SOCKET"] = str(notify_path)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                                env=env)
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                why = self.alive()
                if why is not None:
                    raise BenchError(why)
                if time.monotonic() > deadline:
                    raise BenchError(f"the node did not send READY=1 within {READY_TIMEOUT:.0f}s")
                try:
                    if b"READY=1" in notify.recv(4096):
                        break
                except TimeoutError:
                    continue
        self.context = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "ca.pem"))
        wait_answer(self.port, self.context, self.alive)
        return self.context

    def admin_token(self) -> str:
        """A bearer token of the admin (password grant, as the GUI logs in)."""
        assert self.context is not None, "start() first"
        return token_at(self.port, self.context)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def twistd(workdir: Path, **sections: dict[str, Any]) -> ReadyNode:
    """The real daemon: ``twistd --pidfile= -n ovsd -c <config>``."""
    return ReadyNode(workdir, [str(BIN / "twistd"), "--pidfile=", "-n", "ovsd", "-c"], **sections)


def python_node(workdir: Path, script: Path, *args: str, **sections: dict[str, Any]) -> ReadyNode:
    """A node run by a benchmark script of its own (``python <script> <args> <config>``)."""
    return ReadyNode(workdir, [sys.executable, str(script), *args], **sections)


def bare_tls_connection_kb(node: ReadyNode, count: int, warmup: int = 100) -> float:
    """RSS per idle, handshaken TLS connection of the bare Klein baseline (bench/bare_klein.py) on the node's
    TLS material: what any Twisted TLS server pays for a connection before ovsd does anything with it."""
    from aio_https import Connection, open_all

    context = node.context
    assert context is not None, "start() the node first"
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "bare_klein.py"), "--tls-dir", str(node.data_dir / "tls"),
         "--port", str(port), "--body-hex", b"{}".hex(), "--content-type", "application/json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=node.workdir,
    )

    def alive() -> str | None:
        return None if bare.poll() is None else f"bare_klein exited with {bare.returncode}"

    async def hold() -> float:
        warm = [Connection("127.0.0.1", port, context) for _ in range(warmup)]
        await open_all(warm)
        for c in warm:
            c.close()
        await asyncio.sleep(1.0)
        before = rss_kb(bare.pid)
        connections = [Connection("127.0.0.1", port, context) for _ in range(count)]
        await open_all(connections)
        await asyncio.sleep(1.0)
        grown = rss_kb(bare.pid) - before
        for c in connections:
            c.close()
        return grown / count

    try:
        wait_answer(port, context, alive)
        return asyncio.run(hold())
    finally:
        stop_process(bare)
