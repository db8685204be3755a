"""Every use of a private attribute of Twisted or Klein in ovsd, in this one module.

Each is here because no public API does the same at the same cost; each is named by
``tests/unit/test_twisted_private.py``, which fails naming the attribute when an upgrade renames, removes or
changes it, and setup.py pins the releases those tests passed on. Nothing outside this module reads or writes
a private name of Twisted or Klein (that test checks it too).

- ``DirectWriteServer.write``: the API's answers skip Twisted's write buffering when the buffer is empty
  (``api/transport.py`` says why; README "Benchmarks" has the figures). Whether it is empty is only known
  from ``abstract.FileDescriptor``'s buffers: ``dataBuffer``, ``offset``, ``_tempDataBuffer`` and
  ``_writeDisconnected``.
- ``name_tls_port``: ``tcp.Port._type`` is what the port's log lines call it ("TLS" as ``listenSSL``'s own).
- ``BadRequestHook``: twisted.web answers a malformed request line, header, Content-Length or chunk framing
  through ``HTTPChannel._respondToBadRequestAndDisconnect`` with a bare 400; overriding it is the only way to
  answer in the contract's JSON.
- ``forget_exit_signal``: twistd re-raises the signal that stopped the reactor (``_exitSignal``) once the
  reactor has stopped, so a clean SIGTERM shutdown would exit as "killed by SIGTERM", not 0.
- ``klein_path``: how Klein decodes a path (twisted.web unquotes each segment, Klein's ``extractURLparts``
  joins them with slashes and decodes UTF-8), for the routes served before Klein is asked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.internet import tcp

__all__ = ["BadRequestHook", "DirectWriteServer", "forget_exit_signal", "klein_path", "name_tls_port"]


class DirectWriteServer(tcp.Server):
    """A server-side TCP connection that sends a write immediately when its buffer is empty."""

    def write(self, data: bytes) -> None:
        if (data and self.connected and not self.disconnecting and not self._writeDisconnected
                and not self._tempDataBuffer and self.offset == len(self.dataBuffer)):
            sent = self.writeSomeData(data)
            if isinstance(sent, int):  # else an error: the buffered write below lets doWrite report it
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)


def name_tls_port(port: tcp.Port) -> None:
    """Call a TCP port carrying TLS "TLS" in its log lines, as ``reactor.listenSSL`` does."""
    port._type = "TLS"


class BadRequestHook:
    """Mixed into an ``HTTPChannel``: the requests twisted.web refuses itself go to ``bad_request``."""

    def bad_request(self) -> None:
        raise NotImplementedError

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.bad_request()


def forget_exit_signal(reactor: Any, signal_number: int) -> None:
    """If ``signal_number`` stopped the reactor, let twistd exit normally instead of re-raising it."""
    if getattr(reactor, "_exitSignal", None) == signal_number:
        reactor._exitSignal = None


def klein_path(path: bytes) -> str | None:
    """The path as a Klein route sees it (each segment percent-decoded, joined by slashes, then UTF-8);
    None when Klein would refuse it (not UTF-8)."""
    try:
        if b"%" not in path:  # nothing to unquote (nearly every API path): the same text, a sixth of the cost
            return path.decode("utf-8")
        return b"/".join([unquote_to_bytes(segment) for segment in path.split(b"/")]).decode("utf-8")
    except UnicodeDecodeError:
        return None
