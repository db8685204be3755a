"""The README's front door: `make run` brings up a working node that prints how to reach it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support import REPO, TwistdNode, free_port, wait_for


def test_make_run_starts_a_node_and_says_where_things_are(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"  # where a TwistdNode of tmp_path keeps its data: its client half is reused
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVSD_")}
    env.update({"OVSD_API_PORT": str(port), "OVSD_API_HOST": "127.0.0.1", "OVSD_NODE_IP": "127.0.0.1",
                "OVSD_NODE_MACHINE_ID": "front-door"})
    log = tmp_path / "make.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(["make", "--no-print-directory", "run", f"DATA={data}"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        node = TwistdNode(tmp_path, port=port)
        assert wait_for(lambda: (data / "admin-password").exists() and _answers(node, data), 60), log.read_text()
        printed = log.read_text()
        assert f"{data}/tls/ca.pem" in printed
        assert f"{data}/admin-password" in printed
        assert f"curl --cacert {data}/tls/ca.pem https://127.0.0.1:8443/api" in printed
        assert (data / "admin-password").stat().st_mode & 0o777 == 0o600
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(20)


def _answers(node: TwistdNode, data: Path) -> bool:
    if not (data / "tls" / "ca.pem").exists():
        return False
    try:
        status, body = node.get("/api")
    except OSError:
        return False
    return status == 200 and body["versions"] == [1, 2]
