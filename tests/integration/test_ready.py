"""Ready means ready: from the moment the process starts, a grant with the right password is never refused
as wrong, nor counted toward the lockout; until the node is bootstrapped the API answers 503 not_ready."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from tests.support import TwistdNode


def test_the_token_endpoint_hammered_from_the_start_never_refuses_the_right_password(tmp_path: Path) -> None:
    node = TwistdNode(tmp_path / "n1")
    body = urlencode({"grant_type": "password", "username": "admin", "password": "admin-secret-pw"}).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    seen: Counter[str] = Counter()
    granted = 0
    try:
        node.start()
        deadline = time.monotonic() + 30
        while granted < 20 and time.monotonic() < deadline:
            try:
                status, answer, response = node.request("POST", "/api/oauth2/token/", body, form, timeout=5)
            except OSError:
                seen["not listening"] += 1
                time.sleep(0.005)
                continue
            error = answer.get("error") if isinstance(answer, dict) else None
            seen[f"{status} {error}"] += 1
            if status == 200:
                granted += 1
            else:
                assert (status, error) in ((503, "not_ready"), (503, "store_unavailable")), (status, answer)
                if error == "not_ready":
                    assert response.getheader("Retry-After") == "1"
        assert granted == 20, (seen, node.log_text()[-2000:])
        status, metadata = node.get("/api")
        assert status == 200 and metadata["ready"] is True
        assert node.stop() == 0
    finally:
        node.kill()


def test_before_it_is_ready_only_get_api_answers_and_says_so(tmp_path: Path) -> None:
    # a node waiting for an external store that is not there: it listens, but is not bootstrapped
    node = TwistdNode(tmp_path / "n1", extra={"store": {"url": "redis://127.0.0.1:9/0"}})
    try:
        node.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                status, answer, _ = node.request("GET", "/api/storagerouters/", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, node.log_text()
                time.sleep(0.05)
        assert (status, answer["error"]) == (503, "not_ready")
        status, answer = node.get("/api")
        assert status == 503 and answer["error"] == "store_unavailable"  # it answers, and says why
    finally:
        node.kill()
