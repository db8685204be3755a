"""Management centers: a center is only registered when it really answers TLS at ip:port."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()


@implementer(IHandshakeListener)
class _Probe(protocol.Protocol):
    def __init__(self) -> None:
        self.done: defer.Deferred[bool] = defer.Deferred()

    def handshakeCompleted(self) -> None:
        if not self.done.called:
            self.done.callback(True)
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(False)


async def tls_reachable(reactor: Any, host: str, port: int, timeout: float = 5.0) -> bool:
    """True when a TCP connection to host:port completes a TLS handshake within timeout seconds.

    The center's certificate is not verified here (vCenters usually present self-signed ones): this is a
    reachability check of the given information, not an authenticated session.
    """
    options = ssl.CertificateOptions(verify=False, raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
    endpoint = SSL4ClientEndpoint(reactor, host, port, options, timeout=timeout)
    probe = _Probe()
    try:
        connecting = endpoint.connect(protocol.Factory.forProtocol(lambda: probe))
        connecting.addTimeout(timeout, reactor)
        await connecting
        probe.done.addTimeout(timeout, reactor)
        return await probe.done
    except Exception as e:
        log.info("management center {host}:{port} unreachable: {error}", host=host, port=port, error=str(e))
        return False
