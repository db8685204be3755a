"""Is an S3 endpoint there, and does it accept these keys? One AWS Signature V4 signed ListBuckets request.

``GET /`` (ListBuckets) is the cheapest request that needs valid credentials and no bucket. The request
goes over plain HTTP unless the port is 443 (HTTPS, the server verified against the system's trust
store), as the original's check did (``is_secure = port == 443``): S3-compatible backends inside a
cluster (Ceph RGW, Swift's S3 layer, a local test server) usually listen on plain HTTP ports.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import treq
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http_headers import Headers

log = Logger()

ALGORITHM = "AWS4-HMAC-SHA256"
#: S3-compatible servers accept the default region for ListBuckets
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def sign_v4(
    method: str, host: str, path: str, headers: Mapping[str, str], access_key: str, secret_key: str,
    when: datetime.datetime, region: str = REGION, service: str = "s3", payload_sha256: str = EMPTY_SHA256,
    query: str = "",
) -> dict[str, str]:
    """The headers of a Signature V4 signed request: ``headers`` plus Host, X-Amz-Date, Authorization.

    ``path`` and ``query`` are given already URI-encoded and sorted (the canonical form).
    """
    amz_date = when.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    signed = {"host": host, "x-amz-date": amz_date, **{k.lower(): v.strip() for k, v in headers.items()}}
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join([method, path, query, canonical_headers, signed_headers, payload_sha256])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    signature = hmac.new(signing_key(secret_key, amz_date[:8], region, service), string_to_sign.encode(),
                         hashlib.sha256).hexdigest()
    authorization = (f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, "
                     f"Signature={signature}")
    return {**dict(headers), "Host": host, "X-Amz-Date": amz_date, "Authorization": authorization}


def host_header(host: str, port: int) -> str:
    """The Host value (what is signed): the port is left out when it is the scheme's default."""
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    # 443 is HTTPS and 80 plain HTTP here: both are their scheme's default port
    return name if port in (80, 443) else f"{name}:{port}"


async def s3_reachable(
    reactor: Any, host: str, port: int, access_key: str, secret_key: str, timeout: float = 10.0,
) -> bool:
    """True when a signed ListBuckets to host:port answers 2xx within ``timeout`` seconds.

    False for a refusal of the keys (403), any other answer, a refused or failed connection, or silence.
    """
    scheme = "https" if port == 443 else "http"
    authority = host_header(host, port)
    headers = sign_v4("GET", authority, "/", {"x-amz-content-sha256": EMPTY_SHA256}, access_key, secret_key,
                      datetime.datetime.fromtimestamp(reactor.seconds(), datetime.UTC))

    async def ask() -> int:
        response = await treq.get(f"{scheme}://{authority}/", headers=Headers({k: [v] for k, v in headers.items()}),
                                  allow_redirects=False, persistent=False, reactor=reactor)
        await response.content()  # read the answer out, so the connection closes cleanly
        return int(response.code)

    asking = defer.Deferred.fromCoroutine(ask())
    asking.addTimeout(timeout, reactor)
    try:
        code = await asking
    except defer.TimeoutError:
        log.info("S3 {host}:{port}: no answer in {timeout} s", host=host, port=port, timeout=timeout)
        return False
    except Exception as e:
        log.info("S3 {host}:{port} unreachable: {error}", host=host, port=port, error=str(e) or type(e).__name__)
        return False
    if not 200 <= code < 300:
        log.info("S3 {host}:{port} refused the request: HTTP {code}", host=host, port=port, code=code)
    return 200 <= code < 300
