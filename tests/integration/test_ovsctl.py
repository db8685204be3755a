"""ovsctl as an operator runs it (the console script of the venv) against a real `twistd -n ovsd` node."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ovsd
from tests.support import TwistdNode

OVSCTL = Path(sys.executable).parent / "ovsctl"
ADMIN_PASSWORD = "admin-secret-pw"  # what TwistdNode configures


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwistdNode]:
    n = TwistdNode(tmp_path_factory.mktemp("ovsctl") / "n1")
    n.start()
    try:
        n.wait_ready()
        yield n
    finally:
        n.kill()


def ovsctl(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OVSD_", "OVSCTL_"))}
    done = subprocess.run([str(OVSCTL), *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def whoami(node: TwistdNode, token: str) -> tuple[str | None, list[str]]:
    status, meta = node.get("/api", headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    return meta["username"], meta["roles"]


def api_status(node: TwistdNode, token: str) -> int:
    status, _ = node.get("/api/users/", headers={"Authorization": f"Bearer {token}",
                                                  "Accept": "application/json; version=1"})
    return status


def test_version_needs_no_node() -> None:
    assert ovsctl("version").stdout.strip() == f"ovsd {ovsd.__version__}"


def test_an_operator_manages_users_clients_and_tokens(node: TwistdNode) -> None:
    config = str(node.config_path)
    admin_token = ovsctl("-c", config, "token", "--username", "admin", "--password", ADMIN_PASSWORD).stdout.strip()
    assert whoami(node, admin_token) == ("admin", ["manage", "read", "write"])

    # ovsctl logs in as admin with auth.admin_password from the configuration
    added = ovsctl("-c", config, "user", "add", "bob", "--group", "viewers", "--password", "bob-pw-1").stdout
    assert added.startswith("user bob created: ")
    bob_token = ovsctl("-c", config, "token", "--username", "bob", "--password", "bob-pw-1").stdout.strip()
    assert whoami(node, bob_token) == ("bob", ["read"])

    changed = ovsctl("-c", config, "user", "passwd", "bob", "--password", "bob-pw-2").stdout
    assert "password of bob changed" in changed
    assert api_status(node, bob_token) == 401
    refused = ovsctl("-c", config, "token", "--username", "bob", "--password", "bob-pw-1", ok=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "ovsctl: 400 invalid_client: Invalid username or password"
    bob_token = ovsctl("-c", config, "token", "--username", "bob", "--password", "bob-pw-2").stdout.strip()
    assert api_status(node, bob_token) == 200

    lines = ovsctl("-c", config, "client", "add", "--user", "bob", "--name", "app").stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines if line.startswith("client_"))
    client_id, secret = fields["client_id"].strip(), fields["client_secret"].strip()
    client_token = ovsctl("-c", config, "token", "--client-id", client_id, "--client-secret", secret).stdout.strip()
    assert whoami(node, client_token) == ("bob", ["read"])


def test_ovsctl_logs_in_with_ovsctl_password_and_says_why_it_fails(node: TwistdNode, tmp_path: Path) -> None:
    # a configuration without the admin password: the operator gives it in OVSCTL_PASSWORD
    stripped = tmp_path / "ovsd.toml"
    stripped.write_text(node.config_path.read_text().replace(f'admin_password = "{ADMIN_PASSWORD}"', ""))
    added = ovsctl("-c", str(stripped), "user", "add", "carol", "--group", "administrators", "--password", "c-pw",
                   env={"OVSCTL_PASSWORD": ADMIN_PASSWORD}).stdout
    assert added.startswith("user carol created: ")
    carol = ovsctl("-c", str(stripped), "token", "--username", "carol", "--password", "c-pw").stdout.strip()
    assert whoami(node, carol) == ("carol", ["manage", "read", "write"])
    wrong = ovsctl("-c", str(stripped), "user", "add", "dan", "--password", "d-pw",
                   env={"OVSCTL_PASSWORD": "not-the-password"}, ok=False)
    assert (wrong.returncode, wrong.stderr.strip()) == (1, "ovsctl: 400 invalid_client: Invalid username or password")
    taken = ovsctl("-c", str(stripped), "user", "add", "carol", "--password", "x",
                   env={"OVSCTL_PASSWORD": ADMIN_PASSWORD}, ok=False)
    assert (taken.returncode, taken.stderr.strip()) == (
        1, "ovsctl: 409 conflict: A user with this username already exists")
