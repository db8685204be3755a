"""ovsctl: the operator's command line for one node."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

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


def _task_state(client: ApiClient, task_id: str) -> dict[str, Any]:
    return dict(client.request("GET", f"/api/tasks/{task_id}/"))


def cmd_wait(args: argparse.Namespace) -> int:
    """Follow a task to its end: long-polls of GET /api/tasks/<id>/get/, its progress as a bar."""
    client = _client(args)
    task_id = args.task_id
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    bar = tqdm(total=100, desc=f"task {task_id[:8]}", unit="%", file=sys.stderr, leave=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]{postfix}")
    try:
        while True:
            poll = args.interval if deadline is None else max(0.0, min(args.interval, deadline - time.monotonic()))
            try:
                # answers at the task's end, or after `poll` seconds with the task still going
                client.request("GET", f"/api/tasks/{task_id}/get/?timeout={poll:g}", timeout=poll + 30)
            except ApiFailure as e:
                if e.status != 406:  # 406 is the task's own failure (or revocation): reported below
                    raise
            # the task object says which of the two happened (a result may look like anything)
            state = _task_state(client, task_id)
            status = state["status"]
            progress = 100 if status == "SUCCESS" else state.get("progress")
            if progress is not None and progress > bar.n:
                bar.update(progress - bar.n)
            bar.set_postfix_str(status)
            if state["ready"]:
                break
            if deadline is not None and time.monotonic() >= deadline:
                bar.close()
                sys.stderr.write(f"ovsctl: task {task_id} is still {status} after {args.timeout:g} s\n")
                return 1
    finally:
        bar.close()
    if status == "SUCCESS":
        print(json.dumps(state["result"]))
        return 0
    detail = state["result"] if status == "FAILURE" else "revoked before it started"
    sys.stderr.write(f"ovsctl: task {task_id} {status}: {detail}\n")
    return 1


def cmd_events(args: argparse.Namespace) -> int:
    """Print messages as they arrive (one JSON object a line), from the messages long-poll."""
    client = _client(args)
    sid = args.sid if args.sid is not None else secrets.randbelow(9 * 10**9) + 10**9  # 10 digits, as the GUI
    types = client.request("POST", f"/api/messages/{sid}/subscribe/", ["TASK_COMPLETE", "EVENT"])
    last = int(client.request("GET", f"/api/messages/{sid}/last/"))
    sys.stderr.write(f"subscriber {sid} ({', '.join(types)}), from message {last}\n")
    sys.stderr.flush()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    printed = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            wait = 60.0 if deadline is None else max(0.0, min(60.0, deadline - time.monotonic()))
            body = client.request("GET", f"/api/messages/{sid}/wait/?message_id={last}&timeout={wait:g}",
                                  timeout=wait + 30)
            if body.get("missed"):
                sys.stderr.write(f"ovsctl: messages after {last} were dropped before they could be read\n")
            for message in body["messages"]:
                print(json.dumps(message, separators=(",", ":")), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    return 0
            last = int(body["last_message_id"])
    except KeyboardInterrupt:
        return 130
    # the time is up: that is the end asked for, unless a count of messages was asked for too
    return 1 if args.count is not None else 0


def cluster_status(client: ApiClient, now: float) -> dict[str, list[dict[str, Any]]]:
    """Every StorageRouter (status, heartbeat ages in s) and every StorageDriver (process status, restarts)."""
    routers = client.request("GET", "/api/storagerouters/?contents=status")
    drivers = client.request("GET", "/api/storagedrivers/?contents=status,pid,restarts,last_exit,storagerouter,vpool")
    router_names = {r["guid"]: r["name"] for r in routers}
    vpool_names = {v["guid"]: v["name"] for v in client.request("GET", "/api/vpools/?contents=")}
    return {
        "storagerouters": [{
            "guid": r["guid"], "name": r["name"], "ip": r["ip"], "machine_id": r["machine_id"], "status": r["status"],
            "heartbeat_ages": {k: round(now - float(v), 1) for k, v in sorted((r.get("heartbeats") or {}).items())},
        } for r in routers],
        "storagedrivers": [{
            "guid": d["guid"], "name": d["name"], "storagerouter": router_names.get(d["storagerouter_guid"]),
            "storagerouter_guid": d["storagerouter_guid"], "vpool": vpool_names.get(d["vpool_guid"]),
            "vpool_guid": d["vpool_guid"], "status": d["status"], "pid": d["pid"], "restarts": d["restarts"],
            "last_exit": d["last_exit"],
        } for d in sorted(drivers, key=lambda d: (router_names.get(d["storagerouter_guid"]) or "", d["name"]))],
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def cmd_status(args: argparse.Namespace) -> int:
    """The cluster at a glance, as tables or (--json) one JSON document."""
    status = cluster_status(_client(args), time.time())
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(_table(["STORAGEROUTER", "IP", "STATUS", "PROCESS AGE", "WORKER AGE"], [
        [r["name"], r["ip"], r["status"], r["heartbeat_ages"].get("process"), r["heartbeat_ages"].get("celery")]
        for r in status["storagerouters"]]))
    print()
    print(_table(["STORAGEDRIVER", "STORAGEROUTER", "VPOOL", "STATUS", "PID", "RESTARTS", "LAST EXIT"], [
        [d["name"], d["storagerouter"], d["vpool"], d["status"], d["pid"], d["restarts"], d["last_exit"]]
        for d in status["storagedrivers"]]))
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "version": (cmd_version, "print the version"),
    "init": (cmd_init, "create the data dir, the cluster CA and the node certificate (never overwrites)"),
    "token": (cmd_token, "print an access token for a client id/secret or a username/password"),
    "user": (cmd_user, "add a user or change a password"),
    "client": (cmd_client, "add an API client (client credentials) for a user"),
    "wait": (cmd_wait, "follow a task to its end with a progress bar (exit 0 on SUCCESS, 1 otherwise)"),
    "events": (cmd_events, "print the cluster's messages (TASK_COMPLETE, EVENT) as they arrive"),
    "status": (cmd_status, "every StorageRouter (status, heartbeat ages) and StorageDriver (process, restarts)"),
}


def _common_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The options every command takes, before or after the command's name (``ovsctl -c F status`` or
    ``ovsctl status -c F``): after it they are only set when given, so they never undo the ones before."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("-c", "--config", default=default(None),
                        help="configuration file (TOML); OVSD_* variables override it")
    parser.add_argument("--url", default=default(None), help="API url (default https://127.0.0.1:<api.port>)")
    parser.add_argument("--ca", default=default(None), help="CA certificate (default <data_dir>/tls/ca.pem)")
    parser.add_argument("--token", default=default(None),
                        help="bearer token (default: $OVSCTL_TOKEN, else log in as --as-user)")
    parser.add_argument("--as-user", default=default("admin"),
                        help="user to log in as (password: $OVSCTL_PASSWORD, auth.admin_password, "
                             "<data_dir>/admin-password, else asked)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovsctl", description="Operate an ovsd node.")
    _common_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return _add_parser(name, parents=[common], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]
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
    wait = sub.add_parser("wait", help=COMMANDS["wait"][1])
    wait.add_argument("task_id")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1)")
    wait.add_argument("--interval", type=float, default=2.0, help="seconds per long-poll (progress refresh)")
    events = sub.add_parser("events", help=COMMANDS["events"][1])
    events.add_argument("--count", type=int, help="stop after this many messages")
    events.add_argument("--timeout", type=float, help="stop after this many seconds")
    events.add_argument("--sid", type=int, help="subscriber id (default: 10 random digits)")
    status = sub.add_parser("status", help=COMMANDS["status"][1])
    status.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        raise SystemExit(handler(args))
    except ApiFailure as e:
        sys.stderr.write(f"ovsctl: {e}\n")
        raise SystemExit(1) from None
