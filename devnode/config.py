"""A node's TOML configuration: the sections a local node needs and how they are written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# the admin password of every throwaway local node (tests and benchmarks log in with it)
ADMIN_PASSWORD = "admin-secret-pw"  # noqa: S105


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    lines: list[str] = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def node_sections(data_dir: Path, port: int, **extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A node on 127.0.0.1 named after its data dir, with the embedded store and a known admin password."""
    sections: dict[str, dict[str, Any]] = {
        "node": {"name": data_dir.name, "machine_id": f"mid-{data_dir.name}", "ip": "127.0.0.1",
                 "data_dir": str(data_dir)},
        "api": {"host": "127.0.0.1", "port": port},
        "auth": {"admin_password": ADMIN_PASSWORD},
        "log": {"level": "info"},
    }
    for section, keys in extra.items():
        sections.setdefault(section, {}).update(keys)
    return sections
