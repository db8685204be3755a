"""Content negotiation: which API version (``Accept: application/json; version=N``) or an HTML page.

Clients send the same few Accept headers over and over, so each distinct header is parsed once and the
answer is kept (bounded: an endless variety of headers cannot grow the memory).
"""

from __future__ import annotations

from typing import Protocol

from twisted.web.server import Request

from ovsd.api.errors import ApiError


class VersionRange(Protocol):
    """What negotiation reads of an endpoint (ovsd.api.declare.Endpoint, which imports this module)."""

    @property
    def versions(self) -> tuple[int, int]: ...

    @property
    def versioned(self) -> bool: ...

# the API versions this node speaks (contract §2); the metadata root lists them
VERSIONS = (1, 2)
JSON = "application/json"
HTML = "text/html; charset=utf-8"


class Media:
    """What an Accept header asks for: a JSON version (a number, or ``*``), or a page for people."""

    __slots__ = ("html", "star", "version")

    def __init__(self, version: int | None = None, star: bool = False, html: bool = False) -> None:
        self.version = version
        self.star = star
        self.html = html

    def __repr__(self) -> str:
        return f"Media(version={self.version}, star={self.star}, html={self.html})"


def parse_accept(header: bytes | None) -> Media:
    """Read an Accept header; a JSON media range with a version wins over text/html."""
    if not header:
        return Media()
    html = False
    for media_range in header.decode("latin-1").split(","):
        media_type, *parameters = media_range.split(";")
        media_type = media_type.strip().lower()
        if media_type == JSON:
            for parameter in parameters:
                name, _, value = parameter.partition("=")
                if name.strip().lower() != "version":
                    continue
                value = value.strip().strip('"')
                if value == "*":
                    return Media(star=True)
                if value.isdigit() and value.isascii():
                    return Media(version=int(value))
                return Media()  # a version that is not one: as good as none
        elif media_type == "text/html":
            html = True
    return Media(html=html)


def missing_header() -> ApiError:
    return ApiError(
        406, "missing_header",
        "Invalid or missing version: send Accept: application/json; version=N (or version=*)",
    )


def invalid_version(low: int, high: int, got: int) -> ApiError:
    return ApiError(406, "invalid_version", f"API version requirements: {low} <= <version> <= {high}. Got {got}")


class Negotiator:
    """Remembers the Media of each Accept header seen (up to ``limit`` distinct headers)."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._known: dict[bytes | None, Media] = {}

    def media(self, request: Request) -> Media:
        lines = request.requestHeaders.getRawHeaders(b"accept")
        header = None if not lines else lines[0] if len(lines) == 1 else b",".join(lines)
        found = self._known.get(header)
        if found is None:
            found = parse_accept(header)
            if len(self._known) < self.limit:
                self._known[header] = found
        return found


def negotiated_version(endpoint: VersionRange, media: Media) -> int:
    """The version a call is served in; 406 when it is missing or outside the endpoint's range.

    Unversioned endpoints and html pages are served in the endpoint's highest version. ``*`` is the
    seed era's version 1 (contract §2): that era's API answered ``*`` with its highest version, which was
    1, and its web GUI sends ``*`` and walks lists as plain arrays. An endpoint that starts above 1 is
    served in its lowest version.
    """
    low, high = endpoint.versions
    if media.star and endpoint.versioned and not media.html:
        return low
    if not endpoint.versioned or media.star or media.html:
        return high
    version = media.version
    if version is None:
        raise missing_header()
    if not low <= version <= high:
        raise invalid_version(low, high, version)
    return version
