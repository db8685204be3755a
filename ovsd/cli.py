"""ovsctl: the operator's command line for one node."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import ovsd
from ovsd.config import Config, ConfigError, load


def _config(args: argparse.Namespace) -> Config:
    try:
        return load(args.config)
    except ConfigError as e:
        sys.stderr.write(f"ovsctl: {e}\n")
        raise SystemExit(2) from None


def cmd_version(args: argparse.Namespace) -> int:
    print(f"ovsd {ovsd.__version__}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from ovsd.service import prepare_data_dir

    config = _config(args)
    created = prepare_data_dir(config)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"{config.tls_dir}: TLS material already present, nothing changed")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "version": (cmd_version, "print the version"),
    "init": (cmd_init, "create the data dir, the cluster CA and the node certificate (never overwrites)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovsctl", description="Operate an ovsd node.")
    parser.add_argument("-c", "--config", help="configuration file (TOML); OVSD_* variables override it")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler, _ = COMMANDS[args.command]
    raise SystemExit(handler(args))
