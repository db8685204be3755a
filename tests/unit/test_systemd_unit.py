"""The shipped systemd unit: a notify service with a watchdog, restarts, its own user, hardening."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from ovsd import notify

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "ovsd.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_is_a_hardened_notify_service() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["User"] == "ovsd"
    assert "--nodaemon ovsd" in service["ExecStart"]
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert service[option] in ("yes", "strict")
    assert "/var/lib/ovsd" in service["ReadWritePaths"]


def test_notify_send_and_watchdog_interval(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notify.send("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1"
    assert not notify.send("READY=1", {})
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == pytest.approx(15.0)
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert notify.watchdog_interval({}) is None
