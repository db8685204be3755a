"""Test support for integration tests of the work endpoints: real `twistd -n ovsd` daemons on one store.

``shared_store`` is a Valkey started by the test on TCP, so several daemons (and the test itself) use the
same store; ``daemon(...)`` starts a node on it and waits until it is ready; ``Session`` is a client of
one daemon's API with a bearer token (password grant, as the GUI logs in), over real HTTPS.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import TwistdNode, free_port, valkey_server

ADMIN_PASSWORD = "admin-secret-pw"  # what tests.support.node_sections configures


@dataclass
class SharedStore:
    port: int
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def shared_store(tmp_path: Path) -> Iterator[SharedStore]:
    port = free_port()
    process = valkey_server(port, tmp_path / "valkey")
    yield SharedStore(port, process)
    process.terminate()
    process.wait(10)


StartDaemon = Callable[..., TwistdNode]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """``daemon(name, store_url=None, **sections)``: a ready node named ``name`` (machine_id ``mid-<name>``)."""
    started: list[TwistdNode] = []

    def start(name: str, store_url: str | None = None, **sections: dict[str, Any]) -> TwistdNode:
        extra: dict[str, dict[str, Any]] = {"node": {"name": name, "machine_id": f"mid-{name}"}, **sections}
        if store_url is not None:
            extra["store"] = {"url": store_url}
        node = TwistdNode(tmp_path / name, extra=extra)
        started.append(node)
        node.start()
        node.wait_ready(timeout=40)
        return node

    yield start
    for node in started:
        node.kill()


class Session:
    """One client of one daemon: a bearer token and JSON calls with ``Accept: …; version=1``."""

    def __init__(self, node: TwistdNode, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        self.node = node
        form = f"grant_type=password&username={username}&password={password}".encode()
        status, body, _ = node.request("POST", "/api/oauth2/token/", form,
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, body
        self.token = str(body["access_token"])

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        headers = {"Accept": "application/json; version=1", "Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, answer, _ = self.node.request(method, path, payload, headers, timeout=timeout)
        return status, answer

    def ok(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        status, answer = self.call(method, path, body, timeout)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def storagerouter_guid(self) -> str:
        """The guid of the StorageRouter of the daemon this session talks to."""
        machine_id = f"mid-{self.node.extra['node']['name']}"
        for router in self.ok("GET", "/api/storagerouters/?contents="):
            if router["machine_id"] == machine_id:
                return str(router["guid"])
        raise AssertionError(f"no StorageRouter with machine_id {machine_id}")
