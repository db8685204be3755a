"""ovsctl: the operator's command line for one node."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import secrets
import socket
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


class TaskUnfinished(Exception):
    """A followed task ended other than in SUCCESS, or was still going at the deadline."""

    def __init__(self, task_id: str, message: str) -> None:
        super().__init__(f"task {task_id} {message}")
        self.task_id = task_id


def follow_task(client: ApiClient, task_id: str, desc: str | None = None, interval: float = 2.0,
                timeout: float | None = None) -> Any:
    """Follow a task to its end with long-polls of GET /api/tasks/<id>/get/, its progress as a bar on
    stderr; the task's result on SUCCESS, else TaskUnfinished saying how it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = tqdm(total=100, desc=desc or f"task {task_id[:8]}", unit="%", file=sys.stderr, leave=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}]{postfix}")
    try:
        while True:
            poll = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
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
                raise TaskUnfinished(task_id, f"is still {status} after {timeout:g} s")
    finally:
        bar.close()
    if status == "SUCCESS":
        return state["result"]
    detail = state["result"] if status == "FAILURE" else "revoked before it started"
    raise TaskUnfinished(task_id, f"{status}: {detail}")


def cmd_wait(args: argparse.Namespace) -> int:
    """Follow a task to its end: a progress bar, then its result as JSON (exit 1 unless SUCCESS)."""
    result = follow_task(_client(args), args.task_id, interval=args.interval, timeout=args.timeout)
    print(json.dumps(result))
    return 0


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


# --- storage: vPools and vDisks ------------------------------------------------------------------------
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
#: the first NBD port ovsctl offers a new StorageDriver (NBD's registered port)
FIRST_NBD_PORT = 10809


def parse_size(text: str) -> int:
    """Bytes from ``10G``, ``512M``, ``1.5T``, ``4096`` (binary units: K = 1024)."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (a number with K, M, G or T)")
    size = int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])
    if size <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a size must be more than 0 bytes")
    return size


def human_size(size: int | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _router(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    """The StorageRouter --storagerouter names (GUID or name), else the one of this node (its machine_id)."""
    if args.storagerouter:
        return client.resolve("storagerouters", args.storagerouter)
    return client.find("storagerouters", "machine_id", _config(args).node.machine_id)


def _port_free(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def _nbd_port(client: ApiClient, router: dict[str, Any], storage_ip: str, local: bool) -> int:
    """The first port from 10809 no StorageDriver of that router uses (and, on this node, nothing listens on)."""
    used = {d.get("port") for d in client.request("GET", "/api/storagedrivers/?contents=storagerouter") or []
            if d.get("storagerouter_guid") == router["guid"]}
    for port in range(FIRST_NBD_PORT, 65536):
        if port not in used and (not local or _port_free(storage_ip, port)):
            return port
    raise ApiFailure(0, "no_port", f"no free port for the NBD server on {storage_ip}")


def cmd_vpool(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.vpool_command == "list":
        return _vpool_list(client)
    config = _config(args)
    router = _router(client, args)
    drivers = client.request("GET", "/api/storagedrivers/?contents=vpool,storagerouter") or []
    existing = next((v for v in client.request("GET", "/api/vpools/?contents=") or [] if v["name"] == args.name),
                    None)
    # extending a vPool: the same type, and (DISTRIBUTED) the images directory all its drivers share
    sibling = next((d for d in drivers if existing and d.get("vpool_guid") == existing["guid"]), None)
    vpool_type = args.type or (existing["type"] if existing else "LOCAL")
    base = config.node.data_dir / "vpools" / args.name
    images = args.directory or (sibling.get("mountpoint_bfs") if sibling and vpool_type == "DISTRIBUTED" else None)
    storage_ip = args.storage_ip or router["ip"]
    local = router["machine_id"] == config.node.machine_id
    port = args.port or _nbd_port(client, router, storage_ip, local)
    parameters = {
        "vpool_name": args.name, "type": vpool_type, "connection_host": "", "connection_port": 0,
        "connection_timeout": 0, "connection_username": "", "connection_password": "",
        "mountpoint_temp": str(base / "temp"), "mountpoint_bfs": str(images or base / "images"),
        "mountpoint_md": str(base / "md"), "mountpoint_readcache1": str(base / "read"), "mountpoint_readcache2": "",
        "mountpoint_writecache": str(base / "write"), "mountpoint_foc": str(base / "foc"),
        "storage_ip": storage_ip, "vrouter_port": port,
    }
    task_id = client.request("POST", f"/api/storagerouters/{router['guid']}/add_vpool/",
                             {"call_parameters": parameters})
    result = follow_task(client, task_id, desc=f"vpool {args.name} on {router['name']}")
    print(f"vpool {args.name} ({vpool_type}) running on {router['name']}")
    print(f"vpool_guid:         {result['vpool_guid']}")
    print(f"storagedriver_guid: {result['storagedriver_guid']}")
    print(f"images:             {parameters['mountpoint_bfs']}")
    print(f"nbd:                {storage_ip}:{port}")
    return 0


def _vpool_list(client: ApiClient) -> int:
    pools = client.request("GET", "/api/vpools/?contents=status,stored_data") or []
    drivers = client.request("GET", "/api/storagedrivers/?contents=vpool,storagerouter,status") or []
    routers = {r["guid"]: r["name"] for r in client.request("GET", "/api/storagerouters/?contents=") or []}
    rows = []
    for pool in pools:
        mine = sorted((d for d in drivers if d.get("vpool_guid") == pool["guid"]),
                      key=lambda d: routers.get(d.get("storagerouter_guid"), ""))
        serving = ", ".join(f"{routers.get(d.get('storagerouter_guid'), '?')}:{d.get('port')} {d.get('status')}"
                            for d in mine)
        rows.append([pool["name"], pool["type"], pool.get("status"), human_size(pool.get("size")),
                     human_size(pool.get("stored_data")), serving or None, pool["guid"]])
    print(_table(["VPOOL", "TYPE", "STATUS", "SIZE", "STORED", "STORAGEDRIVERS", "GUID"], rows))
    return 0


VDISK_CONTENTS = "vpool,info,snapshots,storagerouter_guid,is_vtemplate,parent_vdisk"


def _vdisk(client: ApiClient, value: str) -> dict[str, Any]:
    return client.resolve("vdisks", value, contents=VDISK_CONTENTS)


def _print_vdisk(vdisk: dict[str, Any]) -> None:
    print(f"vdisk {vdisk['name']}: {vdisk['guid']}")
    print(f"size:    {human_size(vdisk['size'])}")
    print(f"nbd_uri: {(vdisk.get('info') or {}).get('nbd_uri')}")


def cmd_vdisk(args: argparse.Namespace) -> int:
    client = _client(args)
    command = args.vdisk_command
    if command == "list":
        return _vdisk_list(client, args.vpool)
    if command == "create":
        vpool = client.resolve("vpools", args.vpool)
        router = _router(client, args)
        task_id = client.request("POST", "/api/vdisks/", {"name": args.name, "size": args.size,
                                                           "vpool_guid": vpool["guid"],
                                                           "storagerouter_guid": router["guid"]})
        guid = follow_task(client, task_id, desc=f"vdisk {args.name}")
        _print_vdisk(dict(client.request("GET", f"/api/vdisks/{guid}/")))
        return 0
    vdisk = _vdisk(client, args.vdisk)
    path = f"/api/vdisks/{vdisk['guid']}"
    if command == "snapshot":
        task_id = client.request("POST", f"{path}/create_snapshot/",
                                 {"name": args.name, "consistent": args.consistent, "sticky": args.sticky})
        snapshot_guid = follow_task(client, task_id, desc=f"snapshot of {vdisk['name']}")
        fresh = client.request("GET", f"{path}/?contents=snapshots")
        snapshot = next(s for s in fresh["snapshots"] if s["guid"] == snapshot_guid)
        print(f"snapshot {snapshot['label']} of {vdisk['name']}: {snapshot_guid}")
        print(f"timestamp: {snapshot['timestamp']}")
    elif command == "clone":
        target = client.resolve("storagerouters", args.storagerouter)["guid"] if args.storagerouter else None
        body = {"name": args.name, "storagerouter_guid": target or vdisk["storagerouter_guid"]}
        if args.snapshot:
            body["snapshot_id"] = args.snapshot
        task_id = client.request("POST", f"{path}/clone/", body)
        cloned = follow_task(client, task_id, desc=f"clone of {vdisk['name']}")
        _print_vdisk(dict(client.request("GET", f"/api/vdisks/{cloned['diskguid']}/")))
    elif command == "rollback":
        task_id = client.request("POST", f"{path}/rollback/", {"timestamp": args.timestamp})
        follow_task(client, task_id, desc=f"rollback of {vdisk['name']}")
        print(f"vdisk {vdisk['name']} rolled back to {args.timestamp}")
    else:
        # DELETE answers once the volume is removed (it waits for its task): nothing to follow
        client.request("DELETE", f"{path}/", timeout=120)
        print(f"vdisk {vdisk['name']} deleted")
    return 0


def _vdisk_list(client: ApiClient, vpool_name: str | None) -> int:
    vdisks = client.request("GET", f"/api/vdisks/?contents={VDISK_CONTENTS}") or []
    pools = {p["guid"]: p["name"] for p in client.request("GET", "/api/vpools/?contents=") or []}
    if vpool_name:
        wanted = client.resolve("vpools", vpool_name)["guid"]
        vdisks = [v for v in vdisks if v.get("vpool_guid") == wanted]
    names = {v["guid"]: v["name"] for v in vdisks}
    rows = [[v["name"], pools.get(v.get("vpool_guid")), human_size(v["size"]),
             human_size((v.get("info") or {}).get("stored")), len(v.get("snapshots") or []),
             "template" if v.get("is_vtemplate") else names.get(v.get("parent_vdisk_guid"), v.get("parent_vdisk_guid")),
             (v.get("info") or {}).get("nbd_uri"), v["guid"]]
            for v in sorted(vdisks, key=lambda v: (pools.get(v.get("vpool_guid")) or "", v["name"]))]
    print(_table(["VDISK", "VPOOL", "SIZE", "STORED", "SNAPSHOTS", "PARENT", "NBD URI", "GUID"], rows))
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
    "vpool": (cmd_vpool, "add a vPool (or extend one) on a StorageRouter, list vPools"),
    "vdisk": (cmd_vdisk, "create, list, snapshot, clone, roll back and delete vDisks"),
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
    _storage_parsers(sub)
    return parser


def _storage_parsers(sub: Any) -> None:
    vpool = sub.add_parser("vpool", help=COMMANDS["vpool"][1])
    vpool_sub = vpool.add_subparsers(dest="vpool_command", required=True)
    vadd = vpool_sub.add_parser("add", help="add the vPool (a StorageDriver) to a StorageRouter; a progress bar")
    vadd.add_argument("name", help="the vPool's name (extends the vPool when it exists)")
    vadd.add_argument("--type", choices=["LOCAL", "DISTRIBUTED"],
                      help="backend (default: the existing vPool's, else LOCAL)")
    vadd.add_argument("--storagerouter", help="GUID or name (default: this node)")
    vadd.add_argument("--directory", help="where the images live (mountpoint_bfs; default <data_dir>/vpools/<name>/"
                                          "images, or the directory of an existing DISTRIBUTED vPool)")
    vadd.add_argument("--port", type=int, help="the NBD port (default: the first free one from 10809)")
    vadd.add_argument("--storage-ip", help="the NBD address (default: the StorageRouter's ip)")
    vpool_sub.add_parser("list", help="vPools with status, sizes and StorageDrivers")

    vdisk = sub.add_parser("vdisk", help=COMMANDS["vdisk"][1])
    vdisk_sub = vdisk.add_subparsers(dest="vdisk_command", required=True)
    create = vdisk_sub.add_parser("create", help="a new vDisk; prints its NBD URI")
    create.add_argument("name")
    create.add_argument("--vpool", required=True, help="GUID or name")
    create.add_argument("--size", required=True, type=parse_size, help="e.g. 10G (units K, M, G, T; 1K = 1024)")
    create.add_argument("--storagerouter", help="GUID or name of the serving node (default: this node)")
    listing = vdisk_sub.add_parser("list", help="vDisks with sizes, snapshots, parents and NBD URIs")
    listing.add_argument("--vpool", help="only this vPool's (GUID or name)")
    snapshot = vdisk_sub.add_parser("snapshot", help="snapshot a vDisk; prints the timestamp to roll back to")
    snapshot.add_argument("vdisk", help="GUID or name")
    snapshot.add_argument("--name", required=True, help="the snapshot's label")
    snapshot.add_argument("--consistent", action="store_true", help="mark it consistent (the guest was quiet)")
    snapshot.add_argument("--sticky", action="store_true", help="keep it from automatic cleanup")
    clone = vdisk_sub.add_parser("clone", help="a thin clone of a snapshot (default: of a new automatic one)")
    clone.add_argument("vdisk", help="GUID or name")
    clone.add_argument("--name", required=True, help="the new vDisk's name")
    clone.add_argument("--snapshot", help="the snapshot's GUID (default: a new automatic snapshot)")
    clone.add_argument("--storagerouter", help="GUID or name of the serving node (default: the source's)")
    rollback = vdisk_sub.add_parser("rollback", help="bring a vDisk back to a snapshot (its clients are cut off)")
    rollback.add_argument("vdisk", help="GUID or name")
    rollback.add_argument("--timestamp", required=True, help="the snapshot's timestamp")
    delete = vdisk_sub.add_parser("delete", help="remove a vDisk and its volume")
    delete.add_argument("vdisk", help="GUID or name")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler, _ = COMMANDS[args.command]
    try:
        raise SystemExit(handler(args))
    except (ApiFailure, TaskUnfinished) as e:
        sys.stderr.write(f"ovsctl: {e}\n")
        raise SystemExit(1) from None
