"""The baseline of the API benchmarks: a bare Klein app serving fixed bytes over ovsd's TLS.

No ovsd code path runs per request; only the TLS options are loaded the way ovsd loads them
(``ovsd.tls.server_options``), so both servers present the same certificate chain and protocol floor.
The access log is off, as on ovsd's ApiSite below log level debug.

    python bench/bare_klein.py --tls-dir DIR --port P --body-file F --content-type T [--path /api/…/]
    python bench/bare_klein.py --tls-dir DIR --port P --body-hex HEX --content-type T

``--path`` (default ``/api``) is the one path served (GET), so the baseline routes the same URL as ovsd.

It runs until SIGTERM/SIGINT (the default reactor stops on both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from klein import Klein
from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTCP
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import Request, Site

from ovsd.tls import server_options


class QuietSite(Site):
    """A Site without the access log (one write per request otherwise)."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def make_app(body: bytes, content_type: str, path: str = "/api") -> Klein:
    app = Klein()
    content_type_bytes = content_type.encode("latin-1")

    @app.route(path, methods=["GET"], strict_slashes=False)
    def api(request: Request) -> bytes:
        request.setHeader(b"Content-Type", content_type_bytes)
        return body

    return app


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tls-dir", required=True, type=Path, help="ovsd's <data_dir>/tls")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--content-type", required=True)
    parser.add_argument("--path", default="/api", help="the path served (GET)")
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--body-file", type=Path, help="file holding the exact response body")
    body.add_argument("--body-hex", help="the exact response body, hex-encoded")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    body = args.body_file.read_bytes() if args.body_file is not None else bytes.fromhex(args.body_hex)
    reactor: IReactorCore = _reactor
    tcp: IReactorTCP = _reactor
    site = QuietSite(make_app(body, args.content_type, args.path).resource())
    endpoint = SSL4ServerEndpoint(tcp, args.port, server_options(args.tls_dir), interface=args.host)
    failed: list[Failure] = []

    def listening(port: IListeningPort) -> None:
        print(f"bare_klein listening on https://{args.host}:{args.port}{args.path}", flush=True)

    def cannot_listen(failure: Failure) -> None:
        failed.append(failure)
        print(f"bare_klein: cannot listen on {args.host}:{args.port}: {failure.value}", file=sys.stderr)
        reactor.stop()

    endpoint.listen(site).addCallbacks(listening, cannot_listen)
    reactor.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
