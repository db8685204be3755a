"""The API's TLS port writes at once when it can: answers larger than the socket takes, and answers written
in many pieces, still arrive whole and in order, on a real TLS connection."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest_twisted
import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool

from ovsd import tls
from ovsd.api.transport import listen_tls

PIECE = 256 * 1024
PIECES = 64  # 16 MiB: far more than a loopback socket buffer holds


def piece(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest() * (PIECE // 32)


class Pieces(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        for n in range(PIECES - 1):
            request.write(piece(n))
        return piece(PIECES - 1)


@pytest_twisted.ensureDeferred
async def test_a_large_answer_written_in_pieces_arrives_whole_and_in_order(tmp_path: Path) -> None:
    tls.ensure_material(tmp_path, "127.0.0.1", "test-node")
    port = listen_tls(reactor, 0, server.Site(Pieces()), tls.server_options(tmp_path), "127.0.0.1")
    pool = HTTPConnectionPool(reactor, persistent=False)
    client = HTTPClient(Agent(reactor, contextFactory=tls.client_policy((tmp_path / "ca.pem").read_bytes()),
                              pool=pool))
    try:
        for _ in range(2):  # and the connection's next answer after it too
            response = await client.get(f"https://127.0.0.1:{port.getHost().port}/")
            body = await treq.content(response)
            assert response.code == 200
            assert len(body) == PIECE * PIECES
            assert body == b"".join(piece(n) for n in range(PIECES))
    finally:
        await port.stopListening()
        await pool.closeCachedConnections()
