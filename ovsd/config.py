"""The node's configuration: TOML file plus ``OVSD_<SECTION>_<KEY>`` overrides, parsed into frozen objects.

The table of keys is a contract (DESIGN.md): tools and people script against it. Every key is declared
once in ``_SCHEMA`` with its type, default and check, so an unknown key, a wrong type or an impossible
value is refused with one message that names the key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ovsd.store.connection import parse_store_url


class ConfigError(Exception):
    """A configuration key is unknown, of the wrong type or impossible."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration error: {key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class NodeConfig:
    name: str
    machine_id: str
    ip: str
    data_dir: Path


@dataclass(frozen=True)
class ApiConfig:
    host: str
    port: int
    cors_origins: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    static_dir: str = ""  # served at / on the API port when set


@dataclass(frozen=True)
class StoreConfig:
    url: str


@dataclass(frozen=True)
class AuthConfig:
    admin_password: str = field(repr=False)
    password_token_lifetime: int
    client_token_lifetime: int


@dataclass(frozen=True)
class AgentConfig:
    heartbeat_interval: float
    warning_after: float
    failure_after: float


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int


@dataclass(frozen=True)
class StoragedriverConfig:
    command: tuple[str, ...]
    stop_grace: float
    max_restarts: int


@dataclass(frozen=True)
class LogConfig:
    level: str
    json_file: str


@dataclass(frozen=True)
class Config:
    node: NodeConfig
    api: ApiConfig
    store: StoreConfig
    auth: AuthConfig
    agent: AgentConfig
    worker: WorkerConfig
    storagedriver: StoragedriverConfig
    log: LogConfig

    @property
    def tls_dir(self) -> Path:
        return self.node.data_dir / "tls"

    @property
    def store_dir(self) -> Path:
        return self.node.data_dir / "store"


LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def _hostname() -> str:
    return socket.gethostname()


def _machine_id() -> str:
    try:
        value = Path("/etc/machine-id").read_text().strip()
    except OSError:
        value = ""
    return value or _hostname()


def _default_ip() -> str:
    # connect() on a UDP socket only selects the route; no packet leaves the machine.
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class _Key:
    kind: type
    default: Callable[[], Any]
    check: Check | None = None


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be between 0 and 65535"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _nonempty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _ip(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return "is not an IP address"
    return None


def _host(v: str) -> str | None:
    return _ip(v)


def _store_url(v: str) -> str | None:
    # the store layer owns what a store URL may say
    try:
        parse_store_url(v, Path("."))
    except ValueError as e:
        return str(e)
    return None


def _level(v: str) -> str | None:
    return None if v in LOG_LEVELS else "must be one of " + ", ".join(LOG_LEVELS)


def _ips(v: tuple[str, ...]) -> str | None:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not an IP address or network"
    return None


def _origins(v: tuple[str, ...]) -> str | None:
    for item in v:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{item!r} is not an origin like https://host[:port]"
    return None


def _directory(v: str) -> str | None:
    # empty: no files served; else it must be there at start (a typo would otherwise serve 404s silently)
    return None if not v or Path(v).is_dir() else "is not a directory"


def _command(v: tuple[str, ...]) -> str | None:
    return None if v and v[0] else "must name a program"


def _concurrency(v: int) -> str | None:
    return None if 1 <= v <= 1000 else "must be between 1 and 1000"


def _non_negative(v: int) -> str | None:
    return None if v >= 0 else "must not be negative"


#: a StorageRouter's status: WARNING once its worker's heartbeat is this old, FAILURE once either beat is
#: (defaults of [agent]; the object model's own default for a repository built without a configuration)
WARNING_AFTER = 15.0
FAILURE_AFTER = 30.0

_SCHEMA: dict[str, dict[str, _Key]] = {
    "node": {
        "name": _Key(str, _hostname, _nonempty),
        "machine_id": _Key(str, _machine_id, _nonempty),
        "ip": _Key(str, _default_ip, _ip),
        "data_dir": _Key(str, lambda: "/var/lib/ovsd", _nonempty),
    },
    "api": {
        "host": _Key(str, lambda: "0.0.0.0", _host),  # noqa: S104 - the API serves the cluster
        "port": _Key(int, lambda: 8443, _port),
        "cors_origins": _Key(tuple, tuple, _origins),
        "trusted_proxies": _Key(tuple, tuple, _ips),
        "static_dir": _Key(str, str, _directory),
    },
    "store": {"url": _Key(str, lambda: "embedded", _store_url)},
    "auth": {
        "admin_password": _Key(str, str),
        "password_token_lifetime": _Key(int, lambda: 86400, _positive),
        "client_token_lifetime": _Key(int, lambda: 3600, _positive),
    },
    "agent": {
        "heartbeat_interval": _Key(float, lambda: 5.0, _positive),
        "warning_after": _Key(float, lambda: WARNING_AFTER, _positive),
        "failure_after": _Key(float, lambda: FAILURE_AFTER, _positive),
    },
    "worker": {"concurrency": _Key(int, lambda: 4, _concurrency)},
    "storagedriver": {
        "command": _Key(tuple, lambda: ("sleep", "infinity"), _command),
        "stop_grace": _Key(float, lambda: 5.0, _positive),
        "max_restarts": _Key(int, lambda: 5, _non_negative),
    },
    "log": {
        "level": _Key(str, lambda: "info", _level),
        "json_file": _Key(str, str),
    },
}


def _coerce(key: str, spec: _Key, value: Any, from_env: bool) -> Any:
    """Turn a TOML or environment value into the key's type, or refuse it."""
    kind = spec.kind
    if from_env:
        text = str(value)
        if kind is str:
            return text
        if kind is int:
            try:
                return int(text)
            except ValueError:
                raise ConfigError(key, f"expected an integer, got {text!r}") from None
        if kind is float:
            try:
                return float(text)
            except ValueError:
                raise ConfigError(key, f"expected a number, got {text!r}") from None
        # lists: a JSON array, or comma-separated words
        if text.strip().startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ConfigError(key, "expected a JSON array or comma-separated values") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {type(value).__name__}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {type(value).__name__}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {type(value).__name__}")
        return float(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(key, "expected a list of strings")
    return tuple(value)


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration file (optional) and the environment overrides; raise ConfigError."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as e:
            raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("config", f"{path} is not valid TOML: {e}") from None

    values: dict[str, dict[str, Any]] = {section: {} for section in _SCHEMA}
    for section, table in raw.items():
        if section not in _SCHEMA:
            raise ConfigError(section, "unknown section")
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table")
        for key, value in table.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(f"{section}.{key}", "unknown key")
            values[section][key] = _coerce(f"{section}.{key}", _SCHEMA[section][key], value, False)

    for name, value in environ.items():
        if not name.startswith("OVSD_"):
            continue
        section, _, key = name[5:].lower().partition("_")
        if section not in _SCHEMA:
            continue  # OVSD_* variables of other tools are not ours to refuse
        if key not in _SCHEMA[section]:
            raise ConfigError(f"{section}.{key} ({name})", "unknown key")
        values[section][key] = _coerce(f"{section}.{key}", _SCHEMA[section][key], value, True)

    for section, keys in _SCHEMA.items():
        for key, spec in keys.items():
            if key not in values[section]:
                values[section][key] = spec.default()
            problem = spec.check(values[section][key]) if spec.check else None
            if problem:
                raise ConfigError(f"{section}.{key}", problem)

    agent = values["agent"]
    if agent["warning_after"] >= agent["failure_after"]:
        raise ConfigError("agent.warning_after", "must be smaller than agent.failure_after")

    node = values["node"]
    # a relative data dir is taken from the working directory at start, once, so it cannot drift later
    data_dir = Path(node["data_dir"]).resolve()
    return Config(
        node=NodeConfig(name=node["name"], machine_id=node["machine_id"], ip=node["ip"], data_dir=data_dir),
        api=ApiConfig(**values["api"]),
        store=StoreConfig(**values["store"]),
        auth=AuthConfig(**values["auth"]),
        agent=AgentConfig(**values["agent"]),
        worker=WorkerConfig(**values["worker"]),
        storagedriver=StoragedriverConfig(**values["storagedriver"]),
        log=LogConfig(**values["log"]),
    )
