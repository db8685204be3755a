"""Test support: a real twistd node, its configuration and external stores (from ``devnode``, which the
benchmarks share), plus what only tests need: process lookups, a systemd notify socket, a hostile link."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twisted.internet import defer, reactor

from devnode import (
    BIN,
    TwistdNode,
    free_port,
    node_sections,
    raw_store_command,
    toml_value,
    valkey_server,
    wait_for,
    write_config,
)
from ovsd.store.connection import Store

REPO = Path(__file__).resolve().parent.parent

__all__ = [
    "BIN",
    "REPO",
    "HostileLink",
    "TwistdNode",
    "children_of",
    "free_port",
    "node_sections",
    "notify_socket",
    "processes_with",
    "raw_store_command",
    "toml_value",
    "valkey_server",
    "wait_for",
    "write_config",
]


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


@contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()


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
            # wakes a pump thread blocked in recv on it (a close alone would not, and the peer would never know)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def start_resetting(self) -> None:
        """From now on every connection is reset, the open ones first."""
        with self._lock:
            self.resetting = True
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
                # checked again under the lock: a connection made while the link turned must not slip through
                hostile = self.resetting
                if not hostile:
                    self._open.update((client, upstream))
            if hostile:
                self._reset(client)
                self._reset(upstream)
                continue
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
                # shut down first: the other pump may be blocked in recv on it, and a close alone would neither
                # wake it nor tell the peer (the connection would stay established, silent, forever)
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        self.start_resetting()


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the reactor (for tests that run on it)."""
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


async def connected_store(url: str, store_dir: Path, timeout: float = 5.0) -> Store:
    """A started Store for ``url`` once it answers a PING (AssertionError, stopped, if it never does)."""
    store = Store(url, store_dir, reactor)
    store.startService()
    deadline = time.monotonic() + timeout
    while not await store.ping():
        if time.monotonic() > deadline:
            await store.stopService()
            raise AssertionError(f"{store.description} never answered")
        await sleep(0.05)
    return store
