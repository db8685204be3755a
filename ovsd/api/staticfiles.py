"""A directory's files served at ``/`` on the API port (``api.static_dir``): a GUI without a proxy.

Only paths outside ``/api`` reach the files, so the API's routes always win. A path never leaves the
directory: a ``..`` or ``.`` segment, a separator or NUL inside a segment (``%2e%2e``, ``%2f`` arrive here
decoded) is refused, and the file found is resolved (symlinks followed) and must still lie inside the
directory. Directories are never listed: ``/`` and ``/<dir>/`` serve that directory's ``index.html``.
Finding the file runs in a thread; twisted.web's File then sends it with a producer, a chunk at a time, so
a large file does not hold up the reactor (and gives content types, Range, Last-Modified and 304s).
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.web import resource, server, static

from ovsd.api.http import ApiRequest, answer_internal_error

INDEX = "index.html"
#: pages are checked again on every load (a new GUI is seen at once); the files they load may be reused
#: for an hour
PAGE_CACHE = b"no-cache"
ASSET_CACHE = b"public, max-age=3600"
_REFUSED_SEGMENTS = (b"", b".", b"..")


def is_api_path(path: bytes) -> bool:
    return path == b"/api" or path.startswith(b"/api/")


def _not_found(request: server.Request, what: str) -> bytes:
    request.setResponseCode(404)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"error": "not_found", "error_description": f"No file for {what}"}).encode()


def locate(root: str, segments: list[bytes]) -> tuple[str, str] | None:
    """(the file's real path, or a redirect to the directory's slash form) for request path segments, or
    None when nothing may be served. Runs in a thread (it stats the file system)."""
    names: list[str] = []
    for i, segment in enumerate(segments):
        if segment == b"" and i == len(segments) - 1:
            break  # a trailing slash: the directory's index
        if segment in _REFUSED_SEGMENTS or b"/" in segment or b"\\" in segment or b"\x00" in segment:
            return None
        try:
            names.append(segment.decode("utf-8"))
        except UnicodeDecodeError:
            return None
    found = os.path.realpath(os.path.join(root, *names))
    if found != root and not found.startswith(root + os.sep):
        return None  # a symlink that points out of the directory
    if os.path.isdir(found):
        if segments and segments[-1] != b"":
            return ("redirect", "")  # /dir -> /dir/, so that the index's relative links resolve
        index = os.path.realpath(os.path.join(found, INDEX))
        if not index.startswith(root + os.sep) or not os.path.isfile(index):
            return None  # no index: directories are never listed
        return ("file", index)
    if os.path.isfile(found):
        return ("file", found)
    return None


class StaticFiles(resource.Resource):
    """The root of the API port when ``api.static_dir`` is set: ``/api`` to ``api``, the rest to the files."""

    isLeaf = True

    def __init__(self, api: resource.IResource, directory: str) -> None:
        super().__init__()
        self.api = api
        self.root = os.path.realpath(directory)

    def render(self, request: server.Request) -> Any:
        path = request.path.split(b"?", 1)[0]
        if is_api_path(path) or request.method not in (b"GET", b"HEAD"):
            return self.api.render(request)
        # the segments after the first slash, each already percent-decoded by twisted.web
        segments = list(request.postpath or [])
        d = deferToThread(locate, self.root, segments)
        d.addCallback(self._send, request, path)
        d.addErrback(self._failed, request)
        return server.NOT_DONE_YET

    def _send(self, found: tuple[str, str] | None, request: server.Request, path: bytes) -> None:
        if request.finished or (isinstance(request, ApiRequest) and request.gone):
            return
        if found is None:
            body = _not_found(request, path.decode("utf-8", "replace"))
        elif found[0] == "redirect":
            request.setResponseCode(301)
            request.setHeader(b"location", path + b"/")
            body = b""
        else:
            file = static.File(found[1])
            request.setHeader(b"cache-control", PAGE_CACHE if found[1].endswith((".html", ".htm")) else ASSET_CACHE)
            request.setHeader(b"x-content-type-options", b"nosniff")
            body = file.render(request)
            if body is server.NOT_DONE_YET:
                return  # the producer finishes the request
        if not request.responseHeaders.hasHeader(b"content-length"):
            request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def _failed(self, failure: Failure, request: server.Request) -> None:
        answer_internal_error(request, failure)
