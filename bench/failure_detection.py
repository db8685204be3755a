"""Benchmark of failure detection: SIGKILL node B, time until node A reports B as FAILURE.

    .venv/bin/python bench/failure_detection.py        (from the repo root)

Two real daemons (`twistd -n ovsd`, nodes `bench-a` and `bench-b`) share one Valkey started for the run,
with `agent.heartbeat_interval = 1`, `warning_after = 2`, `failure_after = 3` (log level info: readiness is
the daemon's "node ready" line, as in the tests). Each of 5 rounds waits
until A reports B OK, SIGKILLs B's daemon, then measures through A's API (over HTTPS, with A's CA):

- `failure_detection_s`: until `GET /api/storagerouters/<B>/` on A says `status: FAILURE` (polled every
  20 ms; the status is derived from B's heartbeat ages at read time);
- `failure_event_s`: until A's messages long-poll delivers the `storagerouter_status_changed` EVENT
  with status FAILURE (announced by A's agent at its next heartbeat after the threshold).

B is started again between rounds. Prints every round, then the medians

    failure_detection_s=…
    failure_event_s=…
    budget: failure_detection_s <= 4 -> PASS|FAIL

and exits 0 on PASS, 1 on FAIL or on any error (both daemons and the store are stopped in every case).
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devnode import ADMIN_PASSWORD, TwistdNode, free_port, valkey_server  # noqa: E402

BUDGET_S = 4.0
ROUNDS = 5
AGENT = {"heartbeat_interval": 1.0, "warning_after": 2.0, "failure_after": 3.0}
PASSWORD = ADMIN_PASSWORD  # what devnode configures
SID = 4242000001
TIMEOUT = 20.0


class BenchError(Exception):
    """No meaningful figure could be measured."""


class Api:
    """Calls to one node's API with a bearer token."""

    def __init__(self, node: TwistdNode) -> None:
        self.node = node
        form = f"grant_type=password&username=admin&password={PASSWORD}".encode()
        status, body, _ = node.request("POST", "/api/oauth2/token/", form,
                                       {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise BenchError(f"no token from {node.directory.name}: {status} {body}")
        self.token = body["access_token"]

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        headers = {"Accept": "application/json; version=1", "Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, answer, _ = self.node.request(method, path, payload, headers, timeout=timeout)
        if not 200 <= status < 300:
            raise BenchError(f"{method} {path}: {status} {answer}")
        return answer


def status_of(api: Api, guid: str) -> str:
    return str(api.call("GET", f"/api/storagerouters/{guid}/?contents=status")["status"])


def wait_status(api: Api, guid: str, wanted: str, timeout: float = TIMEOUT) -> float:
    """Poll until the StorageRouter has status ``wanted``; the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_of(api, guid) == wanted:
            return time.monotonic()
        time.sleep(0.02)
    raise BenchError(f"StorageRouter {guid} not {wanted} within {timeout:g} s")


def wait_event(api: Api, guid: str, wanted: str, after: int) -> float:
    """Long-poll until the status event of ``guid`` with status ``wanted`` arrives; the time it did."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        answer = api.call("GET", f"/api/messages/{SID}/wait/?message_id={after}&timeout=10", timeout=30)
        for message in answer["messages"]:
            metadata = message["body"]["metadata"]
            if message["body"]["type"] == "storagerouter_status_changed" and metadata["storagerouter_guid"] == guid \
                    and metadata["status"] == wanted:
                return time.monotonic()
        after = answer["last_message_id"]
    raise BenchError(f"no {wanted} event for {guid} within {TIMEOUT:g} s")


def router_guid(api: Api, name: str) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for router in api.call("GET", "/api/storagerouters/?contents="):
            if router["name"] == name:
                return str(router["guid"])
        time.sleep(0.1)
    raise BenchError(f"StorageRouter {name} not registered")


def measure(workdir: Path) -> int:
    port = free_port()
    store = valkey_server(port, workdir / "valkey")
    extra = {"store": {"url": f"redis://127.0.0.1:{port}/0"}, "agent": AGENT, "log": {"level": "info"}}
    a = TwistdNode(workdir / "bench-a", extra={**extra, "node": {"name": "bench-a", "machine_id": "mid-bench-a"}})
    b = TwistdNode(workdir / "bench-b", extra={**extra, "node": {"name": "bench-b", "machine_id": "mid-bench-b"}})
    try:
        a.start()
        b.start()
        a.wait_ready(timeout=40)
        b.wait_ready(timeout=40)
        api = Api(a)
        guid = router_guid(api, "bench-b")
        api.call("POST", f"/api/messages/{SID}/subscribe/", ["EVENT"])
        detections, events = [], []
        with ThreadPoolExecutor(1) as pool:
            for n in range(1, ROUNDS + 1):
                wait_status(api, guid, "OK")
                last = int(api.call("GET", f"/api/messages/{SID}/last/"))
                event: Future[float] = pool.submit(wait_event, api, guid, "FAILURE", last)
                killed = time.monotonic()
                b.stop(signal.SIGKILL, timeout=10)
                detections.append(wait_status(api, guid, "FAILURE") - killed)
                events.append(event.result(TIMEOUT) - killed)
                print(f"round {n}: FAILURE after {detections[-1]:.2f} s (event after {events[-1]:.2f} s)", flush=True)
                if n < ROUNDS:
                    b.start()
                    b.wait_ready(timeout=40)
    finally:
        for node in (b, a):
            if node.process is not None and node.process.poll() is None:
                try:
                    node.stop(signal.SIGTERM, timeout=15)
                except Exception:
                    node.kill()
        store.terminate()
        store.wait(10)
    detection = statistics.median(detections)
    print(f"failure_detection_s={detection:.2f}")
    print(f"failure_event_s={statistics.median(events):.2f}")
    passed = round(detection, 2) <= BUDGET_S
    print(f"budget: failure_detection_s <= {BUDGET_S:g} -> {'PASS' if passed else 'FAIL'}", flush=True)
    return 0 if passed else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ovsd-bench-failure-") as tmp:
        try:
            return measure(Path(tmp))
        except (BenchError, AssertionError, OSError) as e:
            print(f"failure_detection: {e}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    raise SystemExit(main())
