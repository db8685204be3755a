"""The HTTP plumbing under Klein: the limits of a request (size of its head and body, time to send its
head), the headers of every answer, the 500 of last resort, in-flight tracking, graceful stop."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from io import BytesIO
from typing import Any, BinaryIO, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import Logger
from twisted.protocols import basic
from twisted.python import runtime
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from ovsd.api.errors import internal_error
from ovsd.twisted_private import BadRequestHook, klein_path

T = TypeVar("T")

log = Logger()

MAX_BODY = 1024 * 1024
#: the longest request line (so the longest URL: a list's query is JSON in it), and the longest header line;
#: Twisted's own limit, so every URL that was served before still is
MAX_LINE = 16 * 1024
#: a request's whole head: request line and header lines, in bytes and in lines
MAX_HEAD = 32 * 1024
MAX_HEAD_LINES = 100
#: seconds a client has to send a request's head, from its first byte; also how long a body may pause
HEADER_TIMEOUT = 15.0
#: seconds a connection may wait for a request without sending a byte of one (Twisted's idle timeout)
IDLE_TIMEOUT = 60.0
#: seconds a refused or timed-out client has to take its answer and close before the connection is cut
CLOSE_GRACE = 5

#: on every answer: no software version for a scanner to match, and HTTPS only from now on (the API port
#: serves nothing else; a browser ignores the header on plain HTTP anyway)
SERVER = b"ovsd"
HSTS = b"max-age=31536000"
_SERVER = [SERVER]
_HSTS = [HSTS]

TOO_LARGE_BODY = b'{"error":"request_too_large","error_description":"The request body is larger than 1 MiB"}'


def _refusal(status: int, reason: bytes, body: bytes) -> bytes:
    """A whole answer to a request that will not be served, written by the connection itself."""
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, reason),
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n" % len(body),
        b"Server: %s\r\nStrict-Transport-Security: %s\r\n\r\n" % (SERVER, HSTS),
        body,
    ])


def _error(code: str, description: str) -> bytes:
    return json.dumps({"error": code, "error_description": description}, separators=(",", ":")).encode("ascii")


URI_TOO_LONG = _refusal(414, b"URI Too Long", _error(
    "request_too_large", f"The request line is longer than {MAX_LINE // 1024} KiB"))
HEADERS_TOO_LARGE = _refusal(431, b"Request Header Fields Too Large", _error(
    "request_too_large", f"A header line is longer than {MAX_LINE // 1024} KiB, or the request head longer than "
    f"{MAX_HEAD // 1024} KiB or {MAX_HEAD_LINES} lines"))
BODY_TOO_LARGE = _refusal(413, b"Content Too Large", TOO_LARGE_BODY)
HEAD_TIMEOUT = _refusal(408, b"Request Timeout", _error(
    "request_timeout", "The request was not sent in time"))
BAD_REQUEST = _refusal(400, b"Bad Request", _error(
    "invalid_request", "The request is not valid HTTP/1.1 (request line, a header, or the body's framing)"))


def _ignore(*args: object) -> None:
    return None


class ApiChannel(BadRequestHook, http.HTTPChannel):
    """One HTTP/1.1 connection of the API: a head or body over its limit is refused at once (414, 431, 413,
    before the body is read), and a client has ``timeOut`` seconds from the first byte of a request head to
    send all of it (408, then close), however steadily it trickles; a connection may still wait
    ``idle_timeout`` seconds for a request to begin.

    Both deadlines ride on the channel's one timer (Twisted's TimeoutMixin): Twisted arms it for ``timeOut``
    when the connection opens and after each answer, and stops it while a request is served, so a deadline
    costs no timer per request. Twisted also pushes it back on every read; here only reads of a body do (a
    body must not stall), and the start of a head is noted instead (one clock read). When the timer fires
    early for a head that began late in its period, or for a connection still within its idle time, it is
    armed again for what is left; that happens only on connections that wait.

    The limits are Twisted's own attributes (``MAX_LENGTH``, ``totalHeadersSize``, ``maxHeaders``), checked
    here first so that the answer is the contract's JSON with the right status instead of a bare 400.
    """

    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEAD
    maxHeaders = MAX_HEAD_LINES
    abortTimeout = CLOSE_GRACE

    #: set by ApiSite from its clock (the clock that runs this channel's timer)
    seconds: Callable[[], float] = staticmethod(runtime.seconds)
    header_timeout = HEADER_TIMEOUT
    idle_timeout = IDLE_TIMEOUT

    _head_size = 0  # bytes of the current request's head so far (0: its request line is still to come)
    _head_lines = 0
    _head_began: float | None = None  # when the first byte of the current head arrived
    _idle_periods = 0  # timer periods passed without a byte of a request
    _closing = False

    _host: IAddress | None = None
    _peer: IAddress | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        # Twisted's timeOut is the period of the timer, which _rearm changes
        self.header_timeout = float(self.timeOut or HEADER_TIMEOUT)

    # Every request asks its channel for both addresses; they cannot change while the connection lasts, and
    # asking the socket (getsockname) each time was 2% of an object fetch
    def getHost(self) -> IAddress:
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self) -> IAddress:
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer

    def dataReceived(self, data: bytes) -> None:
        if not self.line_mode:  # a body (while a request is served the timeout is off: this does nothing)
            self.resetTimeout()
        elif self._head_began is None:
            self._head_began = self.seconds()
            self._idle_periods = 0
        basic.LineReceiver.dataReceived(self, data)

    def lineReceived(self, line: bytes) -> None:
        self._head_size += len(line)
        self._head_lines += 1
        if self._head_size > self.totalHeadersSize or self._head_lines > self.maxHeaders:
            self.refuse(HEADERS_TOO_LARGE)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.refuse(URI_TOO_LONG if self._head_size == 0 else HEADERS_TOO_LARGE)

    def allHeadersReceived(self) -> None:
        self._head_size = self._head_lines = 0
        self._head_began = None
        if self.length is not None and self.length > MAX_BODY:
            self.refuse(BODY_TOO_LARGE)  # before any of it is read (and before a 100 Continue asks for it)
            return
        super().allHeadersReceived()
        if self.length != 0:
            self.resetTimeout()  # the body gets its own timeOut: the head's deadline is met

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        # every answer passes here: a handler's, an error's, a preflight's, a long-poll's
        headers.setRawHeaders(b"Server", _SERVER)
        headers.setRawHeaders(b"Strict-Transport-Security", _HSTS)
        super().writeHeaders(version, code, reason, headers)

    def timeoutConnection(self) -> None:
        transport: Any = self.transport
        period = self.header_timeout
        if self._closing:
            # refused or timed out, and still there after abortTimeout: it will not take its answer
            transport.abortConnection()
        elif not self.line_mode:
            self._timed_out(transport, "a request body stalled")
        elif self._head_began is not None:
            left = self._head_began + period - self.seconds()
            if left > 0.001:
                self._rearm(left)  # the head began after the timer was armed
            else:
                self._timed_out(transport, "a request head was not complete in time")
        else:
            self._idle_periods += 1
            if self._idle_periods < math.ceil(self.idle_timeout / period):
                self._rearm(period)
            else:
                self._close()  # idle: no answer, a client opens a new connection when it needs one

    def _rearm(self, seconds: float) -> None:
        self.setTimeout(seconds)
        # what Twisted arms the timer with after the next answer (typed int there; any number of seconds works)
        self.timeOut = self.header_timeout  # type: ignore[assignment]

    def _timed_out(self, transport: Any, what: str) -> None:
        log.info("{peer}: {what} ({seconds} s): closing", peer=str(transport.getPeer()), what=what,
                 seconds=self.header_timeout)
        self.refuse(HEAD_TIMEOUT)

    def bad_request(self) -> None:
        # twisted.web refused the request line, a header, the Content-Length or the chunk framing: the
        # contract's 400 instead of Twisted's bare one (through ovsd.twisted_private.BadRequestHook)
        self.refuse(BAD_REQUEST)

    def refuse(self, answer: bytes) -> None:
        """Answer a request this connection will not serve (``answer`` is a whole HTTP answer), and close."""
        transport: Any = self.transport
        transport.write(answer)
        self._close()

    def _close(self) -> None:
        self._closing = True
        # nothing more from this client is parsed or served; its bytes are still read (and dropped), so that
        # unread data does not turn the close into a reset that could destroy the answer before it is read
        self.dataReceived = _ignore  # type: ignore[method-assign, assignment]
        self.allContentReceived = _ignore  # type: ignore[method-assign]
        self.loseConnection()
        # the client gets abortTimeout to read the answer and close; a new timer rather than moving the head
        # deadline sooner, which Twisted's reactor does with a linear search of every timer
        self.setTimeout(None)
        self.setTimeout(self.abortTimeout)


def answer_internal_error(request: http.Request, failure: Failure) -> None:
    """Answer 500 for a failure nobody expected; the description carries the id its log event has."""
    err = internal_error(failure, request.method, request.path)
    if request.finished or (isinstance(request, ApiRequest) and request.gone):
        return  # no one to answer; the failure and its id are logged
    if request.startedWriting:
        # the status line is out: only a cut connection can tell the client its answer is incomplete
        request.loseConnection()
        return
    body = json.dumps(err.body(), separators=(",", ":")).encode("ascii")
    request.setResponseCode(err.status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


class ApiRequest(server.Request):
    """A request whose body is capped at MAX_BODY bytes: the excess is not even buffered.

    A declared Content-Length over the cap never gets here (ApiChannel answers 413 first); a chunked body is
    refused as soon as it passes the cap.
    """

    too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > MAX_BODY:
            self.too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            if isinstance(self.channel, ApiChannel):
                self.channel.refuse(BODY_TOO_LARGE)  # else the rest is read (and dropped) and 413 answered after
            return
        super().handleContentChunk(data)

    # told directly when the request ends (the site's in-flight count) and when its client goes away first
    # (cancel the handler): a notifyFinish Deferred for each costs a few percent of answering a long-poll
    on_end: Callable[[], None] | None = None
    on_lost: Callable[[], object] | None = None
    # the whole call's Deferred; a hang-up cancels it only once the endpoint said it may (cancel_on_hangup)
    call: defer.Deferred[Any] | None = None
    cancellable = False
    gone = False

    def cancel_on_hangup(self) -> None:
        """The endpoint is a read or a long-poll: a client that goes away stops it (at once if it has)."""
        self.cancellable = True
        self._arm()

    def track(self, call: defer.Deferred[Any]) -> None:
        """``call`` serves this request: the request is in flight until the call ends, whatever its client
        does (a stop waits for a write whose client hung up, instead of closing the store under it)."""
        self.call = call
        call.addBoth(self._call_ended)
        self._arm()

    def _arm(self) -> None:
        # the endpoint is known while the call's first steps run, before its Deferred exists: either order
        call = self.call
        if call is None or not self.cancellable or call.called:
            return
        if self.gone:
            call.cancel()
        else:
            self.on_lost = call.cancel

    def _call_ended(self, result: object) -> object:
        if self.gone:
            self._ended()
        return result

    def processingFailed(self, reason: Failure) -> Failure:
        # what Klein or twisted.web could not render: the contract's 500, not Twisted's HTML page
        answer_internal_error(self, reason)
        return reason

    def finish(self) -> None:
        super().finish()
        self.on_lost = None
        self._ended()

    def connectionLost(self, reason: Any) -> None:
        # Twisted closes the body when the client goes; a call still running (a write runs to its end) may not
        # have read it yet (it is read after the caller is authenticated): it keeps its own copy
        content, kept = self.content, None
        if self.call is not None and not self.call.called and isinstance(content, BytesIO):
            kept = content.getvalue()
        super().connectionLost(reason)
        if kept is not None:
            self.content = BytesIO(kept)
        self.gone = True
        on_lost, self.on_lost = self.on_lost, None
        try:
            if on_lost is not None:
                on_lost()
        finally:
            if self.call is None or self.call.called:
                self._ended()

    def _ended(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()


class ApiSite(server.Site):
    """A Site that counts requests in flight so a stop can wait for them.

    Its connections are plain ApiChannels: the API offers no HTTP/2 (its TLS options negotiate no ALPN), so
    Twisted's wrapper that would switch a connection to HTTP/2 only adds a call to every read.
    """

    requestFactory = ApiRequest
    protocol = ApiChannel  # type: ignore[assignment]  # Twisted types it as its HTTP/2-switching wrapper

    def __init__(self, root: resource.IResource, clock: IReactorTime, header_timeout: float = HEADER_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(root, timeout=header_timeout, **kwargs)
        self.idle_timeout = idle_timeout  # for connections opened from now on
        self.clock = clock
        self.in_flight = 0
        self.requests = 0  # answered since start (for /api/statistics)
        self._drained: list[defer.Deferred[None]] = []
        self.noisy = False
        self.access_log = False
        self.protocols: set[Any] = set()

    @property
    def header_timeout(self) -> float:
        """Seconds a connection has to send a request head from its first byte (and a body may pause)."""
        return float(self.timeOut or 0)

    @header_timeout.setter
    def header_timeout(self, seconds: float) -> None:
        self.timeOut = seconds  # for connections opened from now on

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        if proto is None:
            return None
        proto.callLater = self.clock.callLater
        proto.seconds = self.clock.seconds
        proto.idle_timeout = self.idle_timeout
        self.protocols.add(proto)
        original = proto.connectionLost

        def lost(reason: Any) -> None:
            self.protocols.discard(proto)
            original(reason)

        proto.connectionLost = lost
        return proto

    def getContentFile(self, length: int | None) -> BinaryIO:
        """Where a request body goes: memory, as ApiRequest keeps at most MAX_BODY of it.

        Without this method twisted.web finds out by catching an AttributeError on every request, and
        spools a body of unknown or large length to a temporary file (an open and unlink on disk).
        """
        return BytesIO()

    def log(self, request: http.Request) -> None:
        # the access log costs a write per request: only at log level debug
        if self.access_log:
            super().log(request)

    def request_started(self, request: server.Request) -> None:
        self.requests += 1
        self.in_flight += 1
        if isinstance(request, ApiRequest):
            request.on_end = self._request_done
        else:
            request.notifyFinish().addBoth(self._request_done)

    def _request_done(self, _: object = None) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def drain(self, timeout: float) -> defer.Deferred[None]:
        """Fire when no request is in flight, or after timeout seconds; then close what is left."""
        if self.in_flight == 0:
            d: defer.Deferred[None] = defer.succeed(None)
        else:
            d = defer.Deferred()
            self._drained.append(d)
            d.addTimeout(timeout, self.clock).addErrback(lambda _: None)

        def close(_: object) -> None:
            for proto in list(self.protocols):
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.loseConnection()

        return d.addCallback(close)


class ApiResource(resource.Resource):
    """The root: 413 for an oversized body before any routing, declared endpoints straight to ``declared``,
    everything else to the Klein app.

    ``declared(request)`` serves the call and returns NOT_DONE_YET, or None when the path is not one of
    the declared endpoints' (Klein then routes it: its static routes and its errors for odd paths).
    """

    isLeaf = True

    def __init__(self, app: resource.IResource, declared: Callable[[server.Request], Any] | None = None) -> None:
        super().__init__()
        self.app = app
        self.declared = declared

    def render(self, request: server.Request) -> Any:
        if isinstance(request, ApiRequest) and request.too_large:
            request.setResponseCode(413)
            request.setHeader("Content-Type", "application/json")
            return TOO_LARGE_BODY
        if self.declared is not None:
            served = self.declared(request)
            if served is not None:
                return served
        return self.app.render(request)


def api_path(path: bytes) -> str | None:
    """The part after ``/api/`` of a request path (``""`` for ``/api`` itself), decoded as Klein decodes paths
    (each segment unquoted, then UTF-8), or None for a path outside the API. A path that is not UTF-8 is
    refused by dispatch with a 400 naming the segment; it gets a rest that names nothing, never a route."""
    if path == b"/api":
        return ""
    if not path.startswith(b"/api/"):
        return None
    rest = klein_path(path[5:])
    return rest if rest is not None else "//"
