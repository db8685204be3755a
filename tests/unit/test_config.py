"""The configuration contract: defaults, TOML, OVSD_* overrides and the refusals that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovsd.config import ConfigError, load
from tests.support import write_config


def test_defaults_without_a_file() -> None:
    config = load(None, environ={})
    assert config.api.port == 8443
    assert config.api.host == "0.0.0.0"
    assert config.store.url == "embedded"
    assert config.auth.password_token_lifetime == 86400
    assert config.auth.client_token_lifetime == 3600
    assert (config.agent.heartbeat_interval, config.agent.warning_after, config.agent.failure_after) == (5, 15, 30)
    assert config.node.data_dir == Path("/var/lib/ovsd")
    assert config.node.name and config.node.machine_id and config.node.ip
    assert config.log.level == "info" and config.log.json_file == ""
    assert config.api.cors_origins == () and config.api.trusted_proxies == ()


def test_the_shipped_file_is_valid_and_documents_every_key() -> None:
    from ovsd.config import _SCHEMA

    shipped = Path(__file__).resolve().parents[2] / "etc" / "ovsd.toml"
    load(shipped, environ={})
    text = shipped.read_text()
    for section, keys in _SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"{key} =" in text, f"{section}.{key} is not documented in etc/ovsd.toml"


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", {
        "api": {"port": 9000, "cors_origins": ["https://gui.example.com"]},
        "node": {"name": "ovs100", "data_dir": "rel/data"},
    })
    config = load(path, environ={
        "OVSD_API_PORT": "9443", "OVSD_AUTH_ADMIN_PASSWORD": "s3cret",
        "OVSD_API_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16", "OVSD_AGENT_FAILURE_AFTER": "60",
        "OVSD_OTHERTOOL_THING": "ignored",
    })
    assert config.api.port == 9443
    assert config.api.cors_origins == ("https://gui.example.com",)
    assert config.api.trusted_proxies == ("10.0.0.1", "192.168.0.0/16")
    assert config.auth.admin_password == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.agent.failure_after == 60.0
    assert config.node.name == "ovs100"
    assert config.node.data_dir.is_absolute() and config.node.data_dir.name == "data"


@pytest.mark.parametrize(
    ("sections", "env", "key"),
    [
        ({"api": {"port": 70000}}, {}, "api.port"),
        ({"api": {"port": "x"}}, {}, "api.port"),
        ({"api": {"port": True}}, {}, "api.port"),
        ({"api": {"nope": 1}}, {}, "api.nope"),
        ({"nosection": {"a": 1}}, {}, "nosection"),
        ({"node": {"ip": "not-an-ip"}}, {}, "node.ip"),
        ({"store": {"url": "http://x"}}, {}, "store.url"),
        ({"log": {"level": "loud"}}, {}, "log.level"),
        ({"agent": {"warning_after": 40}}, {}, "agent.warning_after"),
        ({"api": {"trusted_proxies": ["bogus"]}}, {}, "api.trusted_proxies"),
        ({"api": {"cors_origins": "https://x"}}, {}, "api.cors_origins"),
        ({}, {"OVSD_API_PORT": "eighty"}, "api.port"),
        ({}, {"OVSD_API_BOGUS": "1"}, "api.bogus"),
        ({}, {"OVSD_AGENT_HEARTBEAT_INTERVAL": "-1"}, "agent.heartbeat_interval"),
        ({}, {"OVSD_WORKER_CONCURRENCY": "0"}, "worker.concurrency"),
    ],
)
def test_refusals_name_the_key(tmp_path: Path, sections: dict, env: dict, key: str) -> None:
    path = write_config(tmp_path / "c.toml", sections)
    with pytest.raises(ConfigError) as info:
        load(path, environ=env)
    assert key in str(info.value)


def test_unreadable_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[api\nport = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(broken, environ={})
