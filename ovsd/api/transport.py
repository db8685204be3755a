"""The API's listening port: TLS over TCP connections that write at once when nothing is queued.

Twisted's transports buffer every write and register the socket with epoll to send it on the next reactor
turn, then unregister it: two epoll_ctl calls and a turn per answer. An answer is a few hundred bytes to a
socket whose send buffer is empty, so it goes out at once here; whatever the socket does not take (or an
error) goes the normal way, after what is already queued, so order and flow control stay Twisted's. On
10,000 long-polls answered at once that was a quarter of the daemon's CPU. Knowing whether the buffer is
empty takes Twisted's private buffer attributes: that connection class lives in ``ovsd.twisted_private``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IListeningPort, IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from ovsd.twisted_private import DirectWriteServer, name_tls_port

__all__ = ["DirectWritePort", "DirectWriteServer", "listen_tls"]


class DirectWritePort(tcp.Port):
    transport = DirectWriteServer


def listen_tls(reactor: Any, port: int, site: Site, options: IOpenSSLServerConnectionCreator,
               interface: str) -> IListeningPort:
    """Listen for TLS connections to ``site`` (what ``reactor.listenSSL`` does, with the port above)."""
    listening = DirectWritePort(port, TLSMemoryBIOFactory(options, False, site), 50, interface, reactor)
    name_tls_port(listening)
    listening.startListening()
    return listening
