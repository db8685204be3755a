"""The private Twisted and Klein names ``ovsd.twisted_private`` relies on still exist and still mean what it
assumes; and no other module of ovsd uses one. A failure here names what an upgrade changed."""

from __future__ import annotations

import inspect
import re
import signal
from io import BytesIO
from pathlib import Path

import pytest
from twisted.internet import abstract, tcp
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.testing import MemoryReactor
from twisted.web import http, server
from twisted.web.test.requesthelper import DummyChannel

import ovsd
from ovsd import twisted_private
from ovsd.twisted_private import DirectWriteServer, forget_exit_signal, klein_path, name_tls_port

#: every private name of Twisted or Klein that ovsd touches (all of them in twisted_private.py)
PRIVATE_NAMES = ("_tempDataBuffer", "_writeDisconnected", "_respondToBadRequestAndDisconnect", "_exitSignal",
                 "_disconnected", "extractURLparts")


def test_only_twisted_private_touches_private_twisted_names() -> None:
    root = Path(ovsd.__file__).parent
    pattern = re.compile(r"\.(?:" + "|".join(PRIVATE_NAMES) + r")\b|\._type\b|[\"'](?:" + "|".join(PRIVATE_NAMES)
                         + r")[\"']")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "twisted_private.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_the_write_buffer_attributes_tell_an_empty_buffer_from_a_queued_write() -> None:
    # DirectWriteServer.write reads these to know nothing is queued; a write queues in _tempDataBuffer
    connection = abstract.FileDescriptor(reactor=MemoryReactor())
    for name in ("_tempDataBuffer", "_writeDisconnected", "dataBuffer", "offset"):
        assert hasattr(connection, name), f"twisted.internet.abstract.FileDescriptor has no {name} any more"
    assert connection._tempDataBuffer == [] and connection.offset == len(connection.dataBuffer) == 0
    assert connection._writeDisconnected is False
    connection.connected = True
    connection.write(b"queued")
    assert connection._tempDataBuffer == [b"queued"], "FileDescriptor.write no longer queues in _tempDataBuffer"
    assert issubclass(DirectWriteServer, tcp.Server)
    # the override is the whole write path: it must still be the method Twisted's transports call
    assert "write" in vars(DirectWriteServer) and hasattr(tcp.Server, "writeSomeData")


def test_a_tls_port_is_named_tls_in_its_log_lines() -> None:
    assert "_type" in vars(tcp.Port), "twisted.internet.tcp.Port has no _type any more"
    port = tcp.Port(0, server.Site(None), reactor=MemoryReactor())  # type: ignore[arg-type]
    name_tls_port(port)
    assert port._type == "TLS"
    assert "self._type" in inspect.getsource(tcp.Port), "tcp.Port no longer logs its _type"


def test_twisted_web_refuses_bad_requests_through_the_hooked_method() -> None:
    name = "_respondToBadRequestAndDisconnect"
    assert hasattr(http.HTTPChannel, name), f"twisted.web.http.HTTPChannel has no {name} any more"
    assert f"self.{name}()" in inspect.getsource(http.HTTPChannel), f"HTTPChannel no longer calls {name}"


def test_twistd_re_raises_the_exit_signal_that_forget_exit_signal_clears() -> None:
    import twisted.application.app
    import twisted.scripts.twistd

    assert "reactor._exitSignal" in inspect.getsource(twisted.application.app), "twistd no longer reads it"
    assert "_exitSignal" in inspect.getsource(twisted.scripts.twistd)
    reactor = SelectReactor()
    try:
        reactor.sigTerm(signal.SIGTERM, None)  # what a SIGTERM does to a running reactor (stop is queued)
        assert reactor._exitSignal == signal.SIGTERM, "the reactor no longer records its exit signal there"
        forget_exit_signal(reactor, signal.SIGINT)
        assert reactor._exitSignal == signal.SIGTERM  # another signal is left to twistd
        forget_exit_signal(reactor, signal.SIGTERM)
        assert reactor._exitSignal is None
    finally:
        reactor.removeReader(reactor.waker)
        reactor.waker.connectionLost(None)


def _klein_sees(path: bytes) -> str | None:
    """The path a Klein route receives for a request of ``path``, served by a real twisted.web Site."""
    from klein import Klein

    app = Klein()
    seen: list[str] = []

    @app.route("/<path:rest>")
    def echo(request: object, rest: str) -> bytes:
        seen.append(rest)
        return b""

    channel = DummyChannel()
    channel.site = server.Site(app.resource())
    request = server.Request(channel, False)
    request.content = BytesIO(b"")
    request.requestReceived(b"GET", path, b"HTTP/1.1")
    return seen[0] if seen else None


@pytest.mark.parametrize("path", [
    b"/widgets/", b"/a%2Fb/%C3%A9", b"/%77idgets/x", b"/x%20y/%25", b"/caf%C3%A9/", b"/%FF", b"/a;b=c/",
])
def test_klein_path_decodes_as_klein_does(path: bytes) -> None:
    assert klein_path(path[1:]) == _klein_sees(path), "Klein decodes request paths differently now"


def test_the_module_names_every_private_name_it_uses() -> None:
    source = inspect.getsource(twisted_private)
    used = set(re.findall(r"\.(_[a-zA-Z]\w*)", source)) - {"__init__"}
    assert used <= {*PRIVATE_NAMES, "_type"}
