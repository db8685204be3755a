"""How a StorageDriver's process is started: the launcher interface and the generic launcher.

A launcher turns a StorageDriver and its vPool into a :class:`LaunchSpec` (command line, environment,
control socket, readiness check); the supervisor only runs what it is given. The vPool type picks the
launcher, so the real volume driver (qemu-storage-daemon, DESIGN.md) can be added as one more launcher
without touching the supervisor.
"""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ovsd.config import ConfigError, StoragedriverConfig

#: waits until a started process serves its control socket; raises when it cannot become ready
ReadyCheck = Callable[[], Awaitable[object]]

#: the vPool types of the API (spec/API.md)
VPOOL_TYPES = ("LOCAL", "DISTRIBUTED", "CEPH_S3", "AMAZON_S3", "SWIFT_S3")

#: placeholders of ``storagedriver.command``: where each value comes from
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "name": ("storagedriver", "name"),
    "vpool": ("vpool", "name"),
    "storagedriver_id": ("storagedriver", "storagedriver_id"),
    "mountpoint": ("storagedriver", "mountpoint"),
    "guid": ("storagedriver", "guid"),
}


class LaunchError(ValueError):
    """A StorageDriver cannot be launched (its data lacks a value the command needs, unknown vPool type)."""


@dataclass(frozen=True)
class LaunchSpec:
    """What to run for one StorageDriver. Two specs are equal when they would start the same process."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    control_socket: str | None = None
    # a new closure on every launch_spec call must not count as a changed spec (that would restart it)
    ready: ReadyCheck | None = field(default=None, compare=False)


class Launcher(Protocol):
    """Builds the launch spec of a StorageDriver of a vPool (plain dicts of their stored fields)."""

    def launch_spec(self, storagedriver: Mapping[str, Any], vpool: Mapping[str, Any]) -> LaunchSpec: ...


def template_fields(command: tuple[str, ...]) -> set[str]:
    """The placeholders a command template uses; ConfigError for anything but the known ones."""
    used: set[str] = set()
    for argument in command:
        try:
            parsed = list(string.Formatter().parse(argument))
        except ValueError as e:
            raise ConfigError("storagedriver.command", f"{argument!r}: {e}") from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise ConfigError(
                    "storagedriver.command", f"{argument!r} uses an unknown placeholder {{{name}}}; known: {known}",
                )
            used.add(name)
    return used


class GenericLauncher:
    """Runs the command of ``storagedriver.command``, its placeholders filled from the StorageDriver."""

    def __init__(self, config: StoragedriverConfig) -> None:
        # a bad template is a configuration error: refuse it when the daemon starts, not at the first vPool
        self.fields = template_fields(config.command)
        self.command = config.command

    def launch_spec(self, storagedriver: Mapping[str, Any], vpool: Mapping[str, Any]) -> LaunchSpec:
        sources = {"storagedriver": storagedriver, "vpool": vpool}
        values: dict[str, str] = {}
        for name in self.fields:
            source, key = PLACEHOLDERS[name]
            value = sources[source].get(key)
            if value is None or value == "":
                raise LaunchError(
                    f"storagedriver.command uses {{{name}}} but the {source} has no {key} "
                    f"(storagedriver {storagedriver.get('guid')})",
                )
            values[name] = str(value)
        return LaunchSpec(argv=[argument.format(**values) for argument in self.command])


class Launchers:
    """The launcher of each vPool type (all types use the generic one until the volume driver exists)."""

    def __init__(self, config: StoragedriverConfig) -> None:
        generic = GenericLauncher(config)
        self._by_type: dict[str, Launcher] = dict.fromkeys(VPOOL_TYPES, generic)

    def register(self, vpool_type: str, launcher: Launcher) -> None:
        self._by_type[vpool_type] = launcher

    def launcher_for(self, vpool_type: str) -> Launcher:
        try:
            return self._by_type[vpool_type]
        except KeyError:
            raise LaunchError(f"no storagedriver launcher for vPool type {vpool_type!r}") from None

    def launch_spec(self, storagedriver: Mapping[str, Any], vpool: Mapping[str, Any]) -> LaunchSpec:
        """The launch spec of a StorageDriver, by the launcher of its vPool's type."""
        return self.launcher_for(str(vpool.get("type"))).launch_spec(storagedriver, vpool)
