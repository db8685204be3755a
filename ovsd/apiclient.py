"""A small synchronous HTTPS client of the node API for ovsctl (stdlib only; verifies the cluster CA)."""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass, field
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit


class ApiFailure(Exception):
    """The API answered with an error (status, code, description) or could not be reached."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description


@dataclass
class ApiClient:
    url: str
    ca_file: Path
    token: str | None = None
    version: int = 1
    timeout: float = 30.0
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    def _connection(self, timeout: float | None = None) -> HTTPSConnection:
        if self._context is None:
            self._context = ssl.create_default_context(cafile=str(self.ca_file))
        parts = urlsplit(self.url)
        return HTTPSConnection(parts.hostname or "127.0.0.1", parts.port or 443, context=self._context,
                               timeout=timeout or self.timeout)

    def request(
        self, method: str, path: str, body: Any = None, *, form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None, timeout: float | None = None,
    ) -> Any:
        all_headers = {"Accept": f"application/json; version={self.version}"}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        payload: bytes | None = None
        if form is not None:
            payload = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, ssl.SSLError) as e:
            raise ApiFailure(0, "unreachable", f"{self.url}: {e}") from None
        finally:
            conn.close()
        data: Any = json.loads(raw) if raw else None
        if response.status >= 400:
            if isinstance(data, dict):
                raise ApiFailure(response.status, str(data.get("error")), str(data.get("error_description")))
            raise ApiFailure(response.status, "error", raw.decode(errors="replace"))
        return data

    # --- OAuth 2 ---------------------------------------------------------------------------------------
    def password_token(self, username: str, password: str, scope: str | None = None) -> str:
        form = {"grant_type": "password", "username": username, "password": password}
        if scope:
            form["scope"] = scope
        return str(self.request("POST", "/api/oauth2/token/", form=form)["access_token"])

    def client_token(self, client_id: str, client_secret: str, scope: str | None = None) -> str:
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        reply = self.request("POST", "/api/oauth2/token/", form=form, headers={"Authorization": f"Basic {basic}"})
        return str(reply["access_token"])

    # --- lookups ---------------------------------------------------------------------------------------
    def find(self, resource: str, field_name: str, value: str) -> dict[str, Any]:
        for item in self.request("GET", f"/api/{resource}/?contents=") or []:
            if item.get(field_name) == value:
                return dict(item)
        raise ApiFailure(404, "object_not_found", f"no {resource} with {field_name} {value!r}")

    def resolve(self, resource: str, value: str, field_name: str = "name", contents: str = "") -> dict[str, Any]:
        """One object of a resource named by its GUID or by a field (its name): operators type names.

        A name that several objects share is refused (the GUID says which), never guessed."""
        items = self.request("GET", f"/api/{resource}/?contents={contents}") or []
        wanted = value.strip().lower()
        for item in items:
            if str(item.get("guid", "")).lower() == wanted:
                return dict(item)
        matches = [item for item in items if item.get(field_name) == value]
        if len(matches) > 1:
            guids = ", ".join(sorted(str(m["guid"]) for m in matches))
            raise ApiFailure(409, "ambiguous", f"{len(matches)} {resource} have {field_name} {value!r} ({guids}): "
                                               "give the GUID")
        if matches:
            return dict(matches[0])
        raise ApiFailure(404, "object_not_found", f"no {resource} with GUID or {field_name} {value!r}")
