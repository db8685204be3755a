"""A minimal HTTP/1.1 client over asyncio TLS, for benchmarks that hold thousands of connections.

Not a benchmark itself. One ``Connection`` is one persistent TLS connection with at most one request in
flight (what a browser's long-poll is). It does only what the benchmarks need — send a request, read one
response with Content-Length or chunked framing — so the client costs little next to the server it
measures: no header objects, no redirects, no cookies.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any


class HttpError(Exception):
    """A response that is not what the benchmark expects (status, framing)."""


class Connection:
    """One persistent HTTPS connection: ``await request(...)``, or ``send`` now and ``await response()`` later."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.context = context
        # sent with every request (Authorization, Accept …), encoded once
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.context)

    def send(self, method: str, path: str, body: Any = None) -> None:
        """Write one request (``body`` is sent as JSON when given)."""
        assert self.writer is not None, "open() first"
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)

    async def response(self) -> tuple[int, bytes, float]:
        """(status, body, monotonic time the last byte of the body was in)."""
        assert self.reader is not None, "open() first"
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            body = await self.reader.readexactly(int(lower[at + 17:end]))
        elif b"\r\ntransfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        elif status in (204, 304):
            body = b""
        else:
            raise HttpError(f"a {status} response without Content-Length or chunks: {head!r}")
        return status, body, time.monotonic()

    async def request(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """One request and its JSON answer; HttpError for another status than ``expect``."""
        self.send(method, path, body)
        status, raw, _ = await self.response()
        if status != expect:
            raise HttpError(f"{method} {path} answered {status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def open_all(connections: list[Connection], batch: int = 50) -> None:
    """Open connections a batch at a time (a listen backlog is small; a SYN storm only adds retries)."""
    for start in range(0, len(connections), batch):
        await asyncio.gather(*(c.open() for c in connections[start:start + batch]))
