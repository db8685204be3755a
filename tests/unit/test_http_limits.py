"""Oversized and slow requests on the real HTTPS listener: each is refused at once with the contract's JSON
(414 a long URL, 431 a long or large head, 413 a body over 1 MiB before it is read), and a client that
trickles its head is cut off at the header deadline, however steadily it trickles."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import threads

from ovsd.api.http import HEADER_TIMEOUT, MAX_BODY, MAX_HEAD, MAX_HEAD_LINES, MAX_LINE
from tests.conftest import ApiHarness
from tests.raw_https import RawAnswer, exchange

HOST = b"Host: 127.0.0.1\r\n"


def ca(api: ApiHarness) -> Path:
    return api.context.config.tls_dir / "ca.pem"


async def raw(api: ApiHarness, *pieces: bytes, interval: float = 0.0, limit: float = 5.0) -> RawAnswer:
    return await threads.deferToThread(exchange, api.port, ca(api), pieces, interval, limit)


def refused(answer: RawAnswer, status: int, code: str = "request_too_large") -> None:
    """A whole JSON answer with ``status``, in well under a second, and the connection closed after it."""
    assert answer.status == status, answer.received[:200]
    assert answer.body["error"] == code
    assert set(answer.body) == {"error", "error_description"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.answered_after is not None and answer.answered_after < 1.0
    assert answer.closed_after is not None and answer.closed_after < 2.0


@pytest_twisted.ensureDeferred
async def test_a_40_kb_url_is_414_at_once(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api/" + "a" * 40_000)
    assert status == 414
    assert body["error"] == "request_too_large"
    assert body["error_description"] == f"The request line is longer than {MAX_LINE // 1024} KiB"
    answer = await raw(api, b"GET /api/" + b"a" * 40_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n")
    refused(answer, 414)


@pytest_twisted.ensureDeferred
async def test_a_40_kb_header_is_431_at_once(api: ApiHarness) -> None:
    status, body, _ = await api.request("GET", "/api", headers={"X-Big": "a" * 40_000})
    assert status == 431
    assert body["error"] == "request_too_large"
    answer = await raw(api, b"GET /api HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    refused(answer, 431)


@pytest_twisted.ensureDeferred
async def test_a_content_length_of_a_terabyte_is_413_before_any_body(api: ApiHarness) -> None:
    head = b"POST /api/oauth2/token HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
    answer = await raw(api, head + b"Content-Length: 1000000000000\r\n\r\n")
    refused(answer, 413)
    assert answer.body["error_description"] == "The request body is larger than 1 MiB"
    # and not a 100 Continue first: the client must not start sending it
    answer = await raw(api, head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
    refused(answer, 413)


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_is_413_as_soon_as_it_passes_1_mib(api: ApiHarness) -> None:
    head = b"POST /api/oauth2/token HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * (256 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    # 1.25 MiB sent at once, then nothing: the client never ends its body, the answer must not wait for it
    answer = await raw(api, head + chunk * 5)
    refused(answer, 413)


@pytest_twisted.ensureDeferred
async def test_the_limits_are_exact(api: ApiHarness) -> None:
    target = b"/api/x"
    longest = target + b"a" * (MAX_LINE - len(b"GET  HTTP/1.1") - len(target))
    answer = await raw(api, b"GET " + longest + b" HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
    assert answer.status == 404  # served: routing found nothing there
    answer = await raw(api, b"GET " + longest + b"a HTTP/1.1\r\n" + HOST + b"\r\n")
    refused(answer, 414)
    # a head over MAX_HEAD in lines of 4000 bytes
    lines = b"".join(b"X-Part-%d: %s\r\n" % (n, b"a" * 4000) for n in range(MAX_HEAD // 4000 + 1))
    refused(await raw(api, b"GET /api HTTP/1.1\r\n" + HOST + lines + b"\r\n"), 431)
    # more header lines than allowed, each tiny
    lines = b"".join(b"X-%d: 1\r\n" % n for n in range(MAX_HEAD_LINES))
    refused(await raw(api, b"GET /api HTTP/1.1\r\n" + HOST + lines + b"\r\n"), 431)
    # a body of exactly 1 MiB is read (routing refuses the method, not the size)
    status, _, _ = await api.request("POST", "/api", data=b"x" * MAX_BODY)
    assert status == 405


@pytest_twisted.ensureDeferred
async def test_a_slowloris_is_cut_off_at_the_header_deadline(api: ApiHarness) -> None:
    assert 10 <= api.service.site.header_timeout == HEADER_TIMEOUT <= 15  # what a node runs with
    api.service.site.header_timeout = 1.0
    head = b"GET /api HTTP/1.1\r\n" + HOST + b"X-Slow: " + b"a" * 60
    # one byte every 100 ms, for up to 5 s: each byte would have pushed an idle timeout back
    answer = await raw(api, *[bytes([b]) for b in head], interval=0.1, limit=5.0)
    assert answer.closed_after is not None, "the connection was still open after 5 s"
    assert 0.9 <= answer.closed_after < 2.0
    assert answer.status == 408
    assert answer.body["error"] == "request_timeout"
    assert answer.sent < len(head)


@pytest_twisted.ensureDeferred
async def test_a_head_sent_in_pieces_within_the_deadline_is_served(api: ApiHarness) -> None:
    api.service.site.header_timeout = 1.0
    head = b"GET /api HTTP/1.1\r\n" + HOST + b"Accept: application/json\r\nConnection: close\r\n\r\n"
    pieces = [head[i:i + 10] for i in range(0, len(head), 10)]
    answer = await raw(api, *pieces, interval=0.6 / len(pieces))
    assert answer.status == 200
    assert answer.body["versions"] == [1, 2]


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_waits_its_idle_time_for_the_next_request(api: ApiHarness) -> None:
    api.service.site.header_timeout = 0.6
    api.service.site.idle_timeout = 1.8
    request = b"GET /api HTTP/1.1\r\n" + HOST + b"\r\n"
    # idle for longer than the head deadline, then a head in three pieces that straddles a period of the timer
    answer = await threads.deferToThread(
        exchange, api.port, ca(api), [request, request[:10], request[10:20], request[20:]], 0.0, 6.0,
        [0.0, 1.0, 1.15, 1.3])
    assert answer.received.count(b"HTTP/1.1 200 ") == 2
    assert answer.received.count(b"HTTP/1.1 ") == 2  # no 408 for a client that asked nothing more
    # then closed, silently, after the idle time (counted in periods of the head deadline: 3 x 0.6 s)
    assert answer.closed_after is not None and 2.9 <= answer.closed_after < 4.2
