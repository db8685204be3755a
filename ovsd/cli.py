"""ovsctl: the operator's command line for one node."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import ovsd
from ovsd.apiclient import ApiClient, ApiFailure
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


def _client(args: argparse.Namespace, authenticate: bool = True) -> ApiClient:
    """An API client for this node: its URL and CA from the configuration, a token if asked for."""
    config = _config(args)
    url = args.url or f"https://127.0.0.1:{config.api.port}"
    client = ApiClient(url, Path(args.ca or config.tls_dir / "ca.pem"))
    if not authenticate:
        return client
    token = args.token or os.environ.get("OVSCTL_TOKEN")
    if not token:
        password = os.environ.get("OVSCTL_PASSWORD") or config.auth.admin_password
        if not password:
            secret_file = config.node.data_dir / "admin-password"
            try:
                password = secret_file.read_text().strip()
            except OSError:
                password = getpass.getpass(f"password of {args.as_user}: ")
        token = client.password_token(args.as_user, password)
    client.token = token
    return client


def _new_password(given: str | None, prompt: str) -> str:
    if given:
        return given
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise ApiFailure(0, "mismatch", "the passwords differ")
    return first


def cmd_token(args: argparse.Namespace) -> int:
    client = _client(args, authenticate=False)
    if args.client_id:
        secret = args.client_secret or getpass.getpass("client secret: ")
        print(client.client_token(args.client_id, secret, args.scope))
    else:
        username = args.username or args.as_user
        password = args.password or getpass.getpass(f"password of {username}: ")
        print(client.password_token(username, password, args.scope))
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.user_command == "add":
        group = client.find("groups", "name", args.group)
        body = {"username": args.username, "password": _new_password(args.password, "new password: "),
                "is_active": True, "group_guid": group["guid"]}
        if args.language:
            body["language"] = args.language
        user = client.request("POST", "/api/users/", body)
        print(f"user {user['username']} created: {user['guid']}")
    else:
        user = client.find("users", "username", args.username)
        body = {"new_password": _new_password(args.password, f"new password of {args.username}: ")}
        if args.current_password:
            body["current_password"] = args.current_password
        client.request("POST", f"/api/users/{user['guid']}/set_password/", body)
        print(f"password of {args.username} changed; its tokens are revoked")
    return 0


def cmd_client(args: argparse.Namespace) -> int:
    client = _client(args)
    user = client.find("users", "username", args.user)
    body: dict[str, object] = {"name": args.name, "ovs_type": "USER", "user_guid": user["guid"]}
    if args.role:
        body["role_guids"] = [client.find("roles", "code", code)["guid"] for code in args.role]
    created = client.request("POST", "/api/clients/", body)
    print(f"client_id:     {created['client_id']}")
    print(f"client_secret: {created['client_secret']}")
    print("(the secret is shown only now; keep it safe)")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "version": (cmd_version, "print the version"),
    "init": (cmd_init, "create the data dir, the cluster CA and the node certificate (never overwrites)"),
    "token": (cmd_token, "print an access token for a client id/secret or a username/password"),
    "user": (cmd_user, "add a user or change a password"),
    "client": (cmd_client, "add an API client (client credentials) for a user"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovsctl", description="Operate an ovsd node.")
    parser.add_argument("-c", "--config", help="configuration file (TOML); OVSD_* variables override it")
    parser.add_argument("--url", help="API url (default https://127.0.0.1:<api.port>)")
    parser.add_argument("--ca", help="CA certificate (default <data_dir>/tls/ca.pem)")
    parser.add_argument("--token", help="bearer token (default: $OVSCTL_TOKEN, else log in as --as-user)")
    parser.add_argument("--as-user", default="admin",
                        help="user to log in as (password: $OVSCTL_PASSWORD, auth.admin_password, "
                             "<data_dir>/admin-password, else asked)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help=COMMANDS["version"][1])
    sub.add_parser("init", help=COMMANDS["init"][1])
    token = sub.add_parser("token", help=COMMANDS["token"][1])
    token.add_argument("--client-id")
    token.add_argument("--client-secret", help="asked for when omitted")
    token.add_argument("--username")
    token.add_argument("--password", help="asked for when omitted")
    token.add_argument("--scope", help="space-separated role codes")
    user = sub.add_parser("user", help=COMMANDS["user"][1])
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user (and its GUI client)")
    add.add_argument("username")
    add.add_argument("--group", default="viewers", help="administrators or viewers (default viewers)")
    add.add_argument("--password", help="asked for when omitted")
    add.add_argument("--language", choices=["en-US", "nl-NL"])
    passwd = user_sub.add_parser("passwd", help="set a user's password (revokes its tokens)")
    passwd.add_argument("username")
    passwd.add_argument("--password", help="the new password; asked for when omitted")
    passwd.add_argument("--current-password", help="needed when changing your own password")
    client = sub.add_parser("client", help=COMMANDS["client"][1])
    client_sub = client.add_subparsers(dest="client_command", required=True)
    cadd = client_sub.add_parser("add", help="create a client-credentials client; prints its secret once")
    cadd.add_argument("--user", required=True, help="the username the client acts for")
    cadd.add_argument("--name", required=True)
    cadd.add_argument("--role", action="append", help="role code (repeat); default all roles of the user's group")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        raise SystemExit(handler(args))
    except ApiFailure as e:
        sys.stderr.write(f"ovsctl: {e}\n")
        raise SystemExit(1) from None
