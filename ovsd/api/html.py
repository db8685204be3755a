"""``Accept: text/html``: the same answer as a page for people exploring the API in a browser.

The JSON is pretty-printed and escaped; GUIDs become links to their object when the key says which
resource they belong to (``guid`` → the resource of the page, ``vpool_guid`` → vpools,
``child_vdisks_guids`` → vdisks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from http import HTTPStatus
from typing import Any

from ovsd.api.declare import Resource
from ovsd.api.params import GUID_PATTERN
from ovsd.dal.text import utf8

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}pre{{background:#f6f8fa;padding:1em;overflow:auto}}
.status{{color:#555}}a{{color:#0366d6}}</style></head>
<body><h1>{title}</h1><p class="status">HTTP {status} {reason}</p>
<p><a href="/api/">/api/</a></p>
<pre>{content}</pre></body></html>
"""


class LinkResolver:
    """Which resource a key's GUIDs belong to, learned from the declared resources."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._by_word: dict[str, str] = {}
        for res in resources:
            self._by_word[res.name] = res.name
            self._by_word[res.kind] = res.name
        self._relations: dict[str, str | None] = {}

    def resource_of_path(self, path: str) -> str | None:
        """The resource a page under ``/api/<resource>/…`` shows."""
        parts = path.split("/")
        return self._by_word.get(parts[2]) if len(parts) > 2 and parts[1] == "api" else None

    def relation(self, name: str) -> str | None:
        """``vpool`` → vpools; ``parent_vdisk`` → vdisks (the longest known suffix wins)."""
        if name in self._relations:
            return self._relations[name]
        words = name.split("_")
        found = None
        for start in range(len(words)):
            candidate = self._by_word.get("_".join(words[start:]))
            if candidate is not None:
                found = candidate
                break
        if len(self._relations) < 1024:
            self._relations[name] = found
        return found

    def for_key(self, key: str, own: str | None, current: str | None) -> str | None:
        """The resource of the GUIDs under ``key`` in an object of resource ``own``."""
        if key == "guid":
            return own
        if key == "data":  # the v2 list envelope
            return current
        if key.endswith("_guid"):
            return self.relation(key[:-5])
        if key.endswith("_guids"):
            return self.relation(key[:-6])
        return None


def _scalar(value: Any, resource: str | None) -> str:
    text = escape(json.dumps(value, ensure_ascii=False))
    if resource is not None and isinstance(value, str) and GUID_PATTERN.fullmatch(value):
        return f'<a href="/api/{escape(resource)}/{escape(value)}/">{text}</a>'
    return text


def _emit(value: Any, depth: int, resource: str | None, current: str | None, links: LinkResolver,
          out: list[str]) -> None:
    pad = "  " * depth
    if isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        out.append("{\n")
        last = len(value) - 1
        for i, (key, item) in enumerate(value.items()):
            out.append(f"{pad}  {escape(json.dumps(str(key), ensure_ascii=False))}: ")
            _emit(item, depth + 1, links.for_key(str(key), resource, current), current, links, out)
            out.append(",\n" if i < last else "\n")
        out.append(pad + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        out.append("[\n")
        last = len(value) - 1
        for i, item in enumerate(value):
            out.append(pad + "  ")
            _emit(item, depth + 1, resource, current, links, out)
            out.append(",\n" if i < last else "\n")
        out.append(pad + "]")
    else:
        out.append(_scalar(value, resource))


def render_page(method: str, path: str, status: int, body: Any, links: LinkResolver) -> bytes:
    """The HTML page of one answer."""
    current = links.resource_of_path(path)
    out: list[str] = []
    # the top level is the page's own object, or a list of them (v1 lists of GUIDs)
    _emit(body, 0, current, current, links, out)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return utf8(PAGE.format(
        title=escape(f"{method} {path}"), status=status, reason=escape(reason), content="".join(out),
    ))
