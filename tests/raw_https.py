"""A raw HTTPS client for the tests of what an HTTP library will not send: a head cut in pieces and trickled,
a Content-Length with no body behind it, a body that never ends, a TLS client offering chosen suites.

It is the standard library's blocking ssl socket, so every call runs in a thread (``threads.deferToThread``)
while the reactor serves the node under test.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RawAnswer:
    """What came back on one connection, and when (seconds since the first byte was sent)."""

    received: bytes = b""
    answered_after: float | None = None  # the first byte of the answer
    closed_after: float | None = None  # the server closed the connection (None: still open at the limit)
    sent: int = 0  # bytes of the request the server took before it closed
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int | None:
        if not self.received.startswith(b"HTTP/1.1 "):
            return None
        return int(self.received[9:12])

    @property
    def body(self) -> Any:
        _, _, body = self.received.partition(b"\r\n\r\n")
        if self.headers.get("transfer-encoding") == "chunked":
            chunks = []
            while body:
                size, _, body = body.partition(b"\r\n")
                chunks.append(body[:int(size, 16)])
                body = body[int(size, 16) + 2:]
            body = b"".join(chunks)
        return json.loads(body) if body else None

    def parse_headers(self) -> None:
        head, _, _ = self.received.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")


def client_context(ca: Path, ciphers: str | None = None, tls12_only: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if tls12_only:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def exchange(port: int, ca: Path, pieces: Sequence[bytes], interval: float = 0.0, limit: float = 5.0,
             at: Sequence[float] | None = None) -> RawAnswer:
    """Send ``pieces`` over one TLS connection, ``interval`` seconds apart (or each at its time in ``at``),
    reading all the while; return when the server closes the connection or ``limit`` seconds have passed
    (blocking: run it in a thread)."""
    answer = RawAnswer()
    times = list(at) if at is not None else [n * interval for n in range(len(pieces))]
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as raw, \
            client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        start = time.monotonic()
        pending = list(pieces)
        while (elapsed := time.monotonic() - start) < limit:
            if pending and elapsed >= times[len(pieces) - len(pending)]:
                try:
                    conn.sendall(pending[0])
                except (OSError, ssl.SSLError):
                    answer.closed_after = time.monotonic() - start
                    break
                answer.sent += len(pending.pop(0))
            wait = times[len(pieces) - len(pending)] - elapsed if pending else limit - elapsed
            conn.settimeout(max(min(wait, limit - elapsed), 0.01))
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                answer.closed_after = time.monotonic() - start
                break
            if answer.answered_after is None:
                answer.answered_after = time.monotonic() - start
            answer.received += data
    answer.parse_headers()
    return answer


def handshake(port: int, context: ssl.SSLContext) -> tuple[str, str, int] | ssl.SSLError:
    """The suite a TLS handshake with ``context`` settles on, or the error it fails with."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                cipher = conn.cipher()
                assert cipher is not None
                return cipher
        except ssl.SSLError as err:
            return err
