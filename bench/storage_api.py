"""Benchmark of issue 12's storage figures through the HTTPS API of a real node (``twistd -n ovsd``).

    .venv/bin/python bench/storage_api.py        (from the repo root)

The node is started as systemd runs it (``bench/ready_node.py``: READY=1), the admin logs in (password
grant) and a LOCAL vPool is added through ``POST /api/storagerouters/<guid>/add_vpool/``. Every timed call
is the API call, then ``GET /api/tasks/<id>/get/?timeout=60`` (the node answers once the task is over: no
polling), then, where the issue says so, the export answering NBD. "Answering NBD" is an NBD handshake
with the export's name (fixed newstyle, ``NBD_OPT_EXPORT_NAME``: the server answers with the export's size
only if it serves that export), the cheapest real check (well under 1 ms; ``qemu-io``/``qemu-img info``
would add a process start of ~30 ms to every sample). Each figure's data is checked once with ``qemu-io``.

    vdisk_create_ms    p50/p99 of BENCH_CREATE_SAMPLES (50) creates one after the other (64 MiB each):
                       POST /api/vdisks/ -> task SUCCESS -> the export answers NBD
    vdisks_per_s       BENCH_VDISKS (1,000) creates by BENCH_CLIENTS (10) clients at once, each its own
                       connection, create -> task SUCCESS -> NBD, one after the other
    snapshot_ms        p50 of 20 create_snapshot calls on a vDisk holding data (1 MiB written between them)
    clone_ms           clone (no snapshot_id: an automatic snapshot, as the original) of a 4 GiB vDisk holding
                       512 MiB, until the clone's export answers; clone_new_space_kib = the clone's ``stored``
    rollback_ms        p50 of 10 rollbacks of that vDisk (1 MiB written before each), until its export
                       answers again (the rollback drops and re-creates it: the downtime is in the figure)
    replay_s           SIGKILL of the vPool's qemu-storage-daemon (its pid from GET /api/storagedrivers/<guid>/)
                       with every vDisk above exported (> 1,000) -> every export answering NBD again

Prints every figure, the load average before and after, and ``budget: <figure> <= <budget> -> PASS|FAIL``
per budget of issue 12; exits 1 on a FAIL or an error. About 2-3 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any

from common import BenchError, api_headers, bench_main, percentile, verdict
from ready_node import twistd

MiB = 1024 * 1024
GiB = 1024 * MiB
SMALL = 64 * MiB
TASK_WAIT = 60.0
NBD_MAGIC = b"NBDMAGIC"
IHAVEOPT = b"IHAVEOPT"
NBD_OPT_EXPORT_NAME = 1
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# --- the API, over one persistent connection per client ------------------------------------------------------
class Api:
    def __init__(self, port: int, context: ssl.SSLContext, token: str) -> None:
        self.port, self.context = port, context
        self.headers = {**api_headers(token), "Content-Type": "application/json"}
        self.conn = HTTPSConnection("127.0.0.1", port, context=context, timeout=TASK_WAIT + 30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        try:
            self.conn.request(method, path, body=payload, headers=self.headers)
            response = self.conn.getresponse()
        except (OSError, ConnectionError):  # a dropped keep-alive connection: once more on a new one
            self.conn.close()
            self.conn = HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=TASK_WAIT + 30)
            self.conn.request(method, path, body=payload, headers=self.headers)
            response = self.conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if not 200 <= status < 300:
            raise BenchError(f"{method} {path} answered {status}: {answer}")
        return answer

    def task(self, task_id: str) -> Any:
        """The task's result once it is over (the node answers when it is: no polling)."""
        status, answer = self.call("GET", f"/api/tasks/{task_id}/get/?timeout={TASK_WAIT:g}")
        if status != 200:
            raise BenchError(f"task {task_id} answered {status}: {answer}")
        return answer

    def close(self) -> None:
        self.conn.close()


# --- NBD -----------------------------------------------------------------------------------------------------
def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the NBD server closed the connection")
        data += chunk
    return data


def nbd_answers(host: str, port: int, export: str, timeout: float = 5.0) -> int:
    """An NBD handshake for one export (fixed newstyle, NBD_OPT_EXPORT_NAME): its size in bytes.

    ConnectionError when the server does not serve that export (it closes the connection) or is not there.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        greeting = _read(sock, 18)
        if greeting[:16] != NBD_MAGIC + IHAVEOPT:
            raise ConnectionError(f"not an NBD newstyle server: {greeting!r}")
        server_flags = struct.unpack(">H", greeting[16:])[0]
        client_flags = server_flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
        name = export.encode()
        sock.sendall(struct.pack(">I", client_flags) + IHAVEOPT + struct.pack(">II", NBD_OPT_EXPORT_NAME, len(name))
                     + name)
        size, _ = struct.unpack(">QH", _read(sock, 10))
        if not client_flags & FLAG_NO_ZEROES:
            _read(sock, 124)
        # NBD_CMD_DISC: leave the transmission phase as a client should
        sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 1, 0, 0))
        return int(size)


def until_answers(host: str, port: int, export: str, deadline: float) -> None:
    while True:
        try:
            nbd_answers(host, port, export)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"export {export} did not answer NBD in time") from None
            # not faster: every refused handshake is a line on the daemon's stderr that the node logs, which
            # would slow the very replay it waits for
            time.sleep(0.02)


def qemu_io(uri: str, *commands: str) -> str:
    args = ["qemu-io", "-f", "raw"]
    for command in commands:
        args += ["-c", command]
    done = subprocess.run([*args, uri], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or "Pattern verification failed" in done.stdout:
        raise BenchError(f"qemu-io {commands} on {uri}: {done.stdout}{done.stderr}")
    return done.stdout


# --- the storage calls ---------------------------------------------------------------------------------------
class Storage:
    """The node's vPool and the calls the figures time."""

    def __init__(self, api: Api, router: str, vpool: str, driver: dict[str, Any]) -> None:
        self.api, self.router, self.vpool = api, router, vpool
        self.host, self.port = str(driver["storage_ip"]), int(driver["port"])

    def uri(self, guid: str) -> str:
        return f"nbd://{self.host}:{self.port}/{guid}"

    def create(self, api: Api, name: str, size: int = SMALL) -> str:
        """POST /api/vdisks/ -> task SUCCESS -> the export answers NBD; the new vDisk's guid."""
        status, task_id = api.call("POST", "/api/vdisks/", {"name": name, "size": size, "vpool_guid": self.vpool,
                                                            "storagerouter_guid": self.router})
        if status != 202:
            raise BenchError(f"create {name} answered {status}: {task_id}")
        guid = str(api.task(task_id))
        if nbd_answers(self.host, self.port, guid) != size:
            raise BenchError(f"the export of {name} has the wrong size")
        return guid

    def action(self, guid: str, name: str, body: dict[str, Any]) -> Any:
        return self.api.task(self.api.ok("POST", f"/api/vdisks/{guid}/{name}/", body))


def timed_ms(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def add_vpool(api: Api, workdir: Path) -> Storage:
    routers = api.ok("GET", "/api/storagerouters/")
    if len(routers) != 1:
        raise BenchError(f"expected the node's one StorageRouter, found {routers}")
    router = str(routers[0])
    base = workdir / "vpool"
    port = _free_port()
    params = {
        "vpool_name": "bench", "type": "LOCAL", "connection_host": "", "connection_port": 0, "connection_timeout": 0,
        "connection_username": "", "connection_password": "", "mountpoint_temp": f"{base}/temp",
        "mountpoint_bfs": f"{base}/images", "mountpoint_md": f"{base}/md", "mountpoint_readcache1": f"{base}/read1",
        "mountpoint_readcache2": "", "mountpoint_writecache": f"{base}/write", "mountpoint_foc": f"{base}/foc",
        "storage_ip": "127.0.0.1", "vrouter_port": port,
    }
    made = api.task(api.ok("POST", f"/api/storagerouters/{router}/add_vpool/", {"call_parameters": params}))
    driver = api.ok("GET", f"/api/storagedrivers/{made['storagedriver_guid']}/")
    return Storage(api, router, str(made["vpool_guid"]), driver)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the figures ---------------------------------------------------------------------------------------------
def creates(storage: Storage, samples: int) -> dict[str, float]:
    times = [timed_ms(lambda i=i: storage.create(storage.api, f"seq{i}"))[0] for i in range(samples)]
    return {"vdisk_create_ms_p50": statistics.median(times), "vdisk_create_ms_p99": percentile(times, 0.99),
            "vdisk_create_ms_max": max(times)}


def concurrent_creates(storage: Storage, count: int, clients: int, port: int, context: ssl.SSLContext,
                       token: str) -> tuple[dict[str, float], list[str]]:
    apis = [Api(port, context, token) for _ in range(clients)]
    for api in apis:
        api.ok("GET", "/api/")  # connected and handshaken before the clock runs
    names = iter(range(count))
    lock = threading.Lock()
    guids: list[str] = []
    times: list[float] = []

    def client(api: Api) -> None:
        while True:
            with lock:
                i = next(names, None)
            if i is None:
                return
            ms, guid = timed_ms(lambda i=i: storage.create(api, f"many{i}"))
            with lock:
                guids.append(guid)
                times.append(ms)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done in [pool.submit(client, api) for api in apis]:
            done.result()
    elapsed = time.perf_counter() - started
    for api in apis:
        api.close()
    return {"vdisks_created": len(guids), "vdisks_per_s": len(guids) / elapsed,
            "concurrent_create_ms_p50": statistics.median(times),
            "concurrent_create_ms_p99": percentile(times, 0.99)}, guids


def snapshots_clone_rollback(storage: Storage) -> dict[str, float]:
    figures: dict[str, float] = {}
    big = storage.create(storage.api, "big", 4 * GiB)
    uri = storage.uri(big)
    qemu_io(uri, "write -P 0x5a 0 512M")
    times = []
    for i in range(20):
        qemu_io(uri, f"write -P 0x{i + 16:x} {600 + i}M 1M")
        ms, _ = timed_ms(lambda i=i: storage.action(big, "create_snapshot", {"name": f"s{i}"}))
        times.append(ms)
    figures["snapshot_ms_p50"] = statistics.median(times)
    figures["snapshot_ms_p99"] = percentile(times, 0.99)

    def clone() -> str:
        made = storage.action(big, "clone", {"name": "big-clone", "storagerouter_guid": storage.router})
        guid = str(made["diskguid"])
        until_answers(storage.host, storage.port, guid, time.monotonic() + 10)
        return guid

    figures["clone_ms"], copy = timed_ms(clone)
    qemu_io(storage.uri(copy), "read -P 0x5a 100M 1M", "read -P 0x10 600M 1M")
    info = storage.api.ok("GET", f"/api/vdisks/{copy}/")["info"]
    figures["clone_new_space_kib"] = int(info["stored"]) / 1024

    snapshot = storage.api.ok("GET", f"/api/vdisks/{big}/")["snapshots"][0]
    times = []
    for _ in range(10):
        qemu_io(uri, "write -P 0xee 200M 1M")

        def rollback() -> None:
            storage.action(big, "rollback", {"timestamp": snapshot["timestamp"]})
            until_answers(storage.host, storage.port, big, time.monotonic() + 10)

        ms, _ = timed_ms(rollback)
        times.append(ms)
    qemu_io(uri, "read -P 0x5a 200M 1M")
    figures["rollback_ms_p50"] = statistics.median(times)
    figures["rollback_ms_p99"] = percentile(times, 0.99)
    return figures


def daemon_children(node_pid: int) -> set[int]:
    """The qemu-storage-daemon children of the node process."""
    found = set()
    for task_dir in Path(f"/proc/{node_pid}/task").iterdir():
        for child in (task_dir / "children").read_text().split():
            try:
                if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].endswith(b"qemu-storage-daemon"):
                    found.add(int(child))
            except OSError:
                continue
    return found


def replay(storage: Storage, driver_guid: str, exports: list[str], node_pid: int) -> dict[str, float]:
    before = storage.api.ok("GET", f"/api/storagedrivers/{driver_guid}/")
    pid = before.get("pid")
    if not pid:
        raise BenchError(f"the StorageDriver shows no pid: {before}")
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    if not command.endswith(b"qemu-storage-daemon") or int(pid) not in daemon_children(node_pid):
        raise BenchError(f"pid {pid} is not a qemu-storage-daemon child of the node: {command!r}")
    for guid in exports:
        nbd_answers(storage.host, storage.port, guid)  # every one answers before the kill
    started = time.monotonic()
    os.kill(int(pid), signal.SIGKILL)
    deadline = started + 60
    # check in 4 slices at once: walking 1,000 handshakes one by one would add itself to the figure
    slices = [exports[n::4] for n in range(4)]
    # where the time goes: the node starting a new daemon, then the new daemon serving the first export
    while not daemon_children(node_pid) - {int(pid)}:
        if time.monotonic() > deadline:
            raise BenchError("no new qemu-storage-daemon was started")
        time.sleep(0.002)
    new_pid_s = time.monotonic() - started
    until_answers(storage.host, storage.port, exports[-1], deadline)
    first_s = time.monotonic() - started
    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(lambda part=part: [until_answers(storage.host, storage.port, g, deadline)
                                                    for g in part]) for part in slices]:
            done.result()
    elapsed = time.monotonic() - started
    after = storage.api.ok("GET", f"/api/storagedrivers/{driver_guid}/")
    return {"replay_s": elapsed, "replay_new_daemon_s": new_pid_s, "replay_an_export_s": first_s,
            "replayed_exports": len(exports),
            "driver_restarts": int(after.get("restarts") or 0) - int(before.get("restarts") or 0)}


def run(workdir: Path) -> int:
    samples = env_int("BENCH_CREATE_SAMPLES", 50)
    count = env_int("BENCH_VDISKS", 1000)
    clients = env_int("BENCH_CLIENTS", 10)
    node = twistd(workdir, log={"level": os.environ.get("BENCH_LOG_LEVEL", "warn")})
    figures: dict[str, float] = {}
    print(f"loadavg_before={load_average()}", flush=True)
    try:
        context = node.start()
        token = node.admin_token()
        api = Api(node.port, context, token)
        storage = add_vpool(api, workdir)
        driver_guid = str(api.ok("GET", f"/api/vpools/{storage.vpool}/")["storagedrivers_guids"][0])
        storage.create(api, "warmup")
        figures.update(creates(storage, samples))
        print(f"sequential creates done ({samples})", flush=True)
        more, guids = concurrent_creates(storage, count, clients, node.port, context, token)
        figures.update(more)
        qemu_io(storage.uri(guids[-1]), "write -P 0x42 0 1M", "read -P 0x42 0 1M")
        print(f"concurrent creates done ({count})", flush=True)
        figures.update(snapshots_clone_rollback(storage))
        exported = [str(g) for g in api.ok("GET", f"/api/vpools/{storage.vpool}/")["vdisks_guids"]]
        figures.update(replay(storage, driver_guid, exported, node.pid))
        qemu_io(storage.uri(guids[-1]), "read -P 0x42 0 1M")
        figures["twistd_rss_mib"] = int(next(line.split()[1] for line in Path(f"/proc/{node.pid}/status")
                                             .read_text().splitlines() if line.startswith("VmRSS:"))) / 1024
        api.close()
    finally:
        node.stop()
    print(f"loadavg_after={load_average()}")
    for name, value in figures.items():
        print(f"{name}={value:.{1 if abs(value) >= 10 else 3}f}")
    results = [
        verdict("vdisk_create_ms_p50", figures["vdisk_create_ms_p50"], "<=", 300, 1),
        verdict("snapshot_ms_p50", figures["snapshot_ms_p50"], "<=", 100, 1),
        verdict("clone_ms", figures["clone_ms"], "<=", 500, 1),
        verdict("clone_new_space_kib", figures["clone_new_space_kib"], "<=", 4096, 1),
        verdict("rollback_ms_p50", figures["rollback_ms_p50"], "<=", 500, 1),
        verdict("replay_s", figures["replay_s"], "<=", 5, 2),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(bench_main("storage_api", run))
