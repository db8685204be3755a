"""Benchmark of the messages long-poll: 10,000 GUIs waiting on ONE daemon, one message fanned out to all.

    .venv/bin/python bench/messages_fanout.py [--waiters 10000] [--rounds 5] [--clients 2] [--arm-rate 1000]
    .venv/bin/python bench/messages_fanout.py --direct      (the bus alone, in-process, no HTTP)

Default (HTTPS, the real API): a real daemon (``twistd -n ovsd``, embedded Valkey, log level warn), ready
once it sent systemd's READY=1, and an admin token (password grant). ``--clients`` client processes
(``bench/fanout_client.py``) hold the GUIs between them: each GUI has its own subscriber id and TLS
connection, subscribes to EVENT (``POST /api/messages/<sid>/subscribe/``) and long-polls
``GET /api/messages/<sid>/wait/?message_id=N&timeout=60`` (an answer with another message, e.g. the daemon
announcing a status change, is followed by the next wait, as a GUI does). The waits are sent
``--arm-rate`` a second (arming is not measured). Once the daemon reports in ``GET /api/statistics/``
that it holds every wait, this process publishes one EVENT straight into the daemon's store with ovsd's
own publish script (as another node would) and takes the time; the clients timestamp each answer's last
byte with CLOCK_MONOTONIC, one clock for every process. A round ends when every GUI has the message.

The client is kept from being the bottleneck: a raw asyncio HTTP/1.1 client (``bench/aio_https.py``: one
read per answer, no header objects) split over processes, with every connection, handshake and
subscription made before any clock runs. Each round prints the CPU the daemon and the clients used during
the fan-out (``server_cpu_ms``, ``client_cpu_ms``) and when the first answer arrived (``first_ms``), which
shows where the time went. The file limit is raised to the hard limit first (the daemon and the clients
inherit it).

The daemon's RSS is read (/proc) after a warm-up of 100 GUIs that came and went, once all GUIs are
connected and once they all wait; then the same run measures what an idle TLS connection costs the bare
Klein baseline on the same TLS material. Prints per round, then

    daemon_rss_kb_baseline=… daemon_rss_kb_growth=… (connections: … KB each, long-polls: … KB each)
    bare_klein_rss_per_tls_connection_kb=…
    ovsd_own_rss_per_waiter_kb=…  (per waiter, less that baseline)
    mode=https|direct
    waiters=N
    rss_per_waiter_kb=…          (daemon RSS growth ÷ waiters, first round)
    fanout_all_ms_p50=…          (publish → the last GUI has the message, over the rounds)
    fanout_all_ms_p99=…
    response_ms_p50=… response_ms_p99=…   (publish → each answer, every answer of every round)
    budget: rss_per_waiter_kb <= 15 -> PASS|FAIL
    budget: fanout_all_ms_p50 <= 1000 -> PASS|FAIL
    budget: fanout_all_ms_p99 <= 2000 -> PASS|FAIL

and exits 0 when all pass, 1 otherwise (or on any error).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from http.client import HTTPSConnection
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from common import BenchError, percentile, rss_kb, verdict  # noqa: E402
from ready_node import ReadyNode, bare_tls_connection_kb, twistd  # noqa: E402

from devnode import free_port, raw_store_command, valkey_server  # noqa: E402
from ovsd.store import keys  # noqa: E402
from ovsd.store.connection import load_lua  # noqa: E402

RSS_BUDGET_KB = 15.0
FANOUT_P50_BUDGET_MS = 1000.0
FANOUT_P99_BUDGET_MS = 2000.0
WARMUP_WAITERS = 100
ARM_TIMEOUT = 180.0
FIRST_SID = 1_000_000_000  # 10 digits, like the GUI's


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise BenchError(f"the open file limit is {hard}; {needed} are needed (raise `ulimit -Hn`)")


def publish_raw(address: str | tuple[str, int], round_: int) -> int:
    """Publish one EVENT with ovsd's own script over a plain socket: another node, as far as the daemon knows."""
    body = json.dumps({"type": "vdisk_created", "metadata": {"bench_round": round_}})
    reply = raw_store_command(
        address, "EVAL", load_lua("message_publish"), "2", keys.MESSAGE_SEQ, keys.MESSAGE_LOG,
        "EVENT", body, "10000", "300000",
    )
    return int(reply)


def report(mode: str, waiters: int, per_waiter_kb: float, rounds_ms: list[float], responses_ms: list[float]) -> int:
    p50, p99 = percentile(rounds_ms, 0.50), percentile(rounds_ms, 0.99)
    print(f"mode={mode}")
    print(f"waiters={waiters}")
    print(f"rss_per_waiter_kb={per_waiter_kb:.2f}")
    print(f"fanout_all_ms_p50={p50:.1f}")
    print(f"fanout_all_ms_p99={p99:.1f}")
    if responses_ms:
        print(f"response_ms_p50={percentile(responses_ms, 0.5):.1f} "
              f"response_ms_p99={percentile(responses_ms, 0.99):.1f}")
    ok = [
        verdict("rss_per_waiter_kb", per_waiter_kb, "<=", RSS_BUDGET_KB, digits=2),
        verdict("fanout_all_ms_p50", p50, "<=", FANOUT_P50_BUDGET_MS, digits=1),
        verdict("fanout_all_ms_p99", p99, "<=", FANOUT_P99_BUDGET_MS, digits=1),
    ]
    return 0 if all(ok) else 1


# --- the HTTPS driver ---------------------------------------------------------------------------------------
class ClientProcess:
    """One bench/fanout_client.py process holding ``count`` GUIs."""

    def __init__(self, node: ReadyNode, token: str, first_sid: int, count: int) -> None:
        env = {**os.environ, "BENCH_TOKEN": token}
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "fanout_client.py"), "--port", str(node.port),
             "--ca", str(node.data_dir / "tls" / "ca.pem"), "--first-sid", str(first_sid), "--count", str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env,
        )
        self.count = count

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()

    def reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchError(f"a client process exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"a client process: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.process.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def everyone(clients: list[ClientProcess], command: dict[str, Any]) -> list[dict[str, Any]]:
    for c in clients:
        c.send(command)
    return [c.reply() for c in clients]


class Api:
    """The coordinator's own blocking calls: the last message id, the daemon's count of held waits."""

    def __init__(self, node: ReadyNode, token: str) -> None:
        assert node.context is not None
        self.node = node
        self.conn = HTTPSConnection("127.0.0.1", node.port, context=node.context, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json; version=1"}

    def get(self, path: str) -> Any:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise BenchError(f"GET {path} answered {response.status}: {raw[:300]!r}")
        return json.loads(raw)

    def last_id(self) -> int:
        return int(self.get(f"/api/messages/{FIRST_SID - 1}/last/"))

    def active_waits(self) -> int:
        name = self.node.data_dir.name  # devnode names the node after its data dir
        for entry in self.get("/api/statistics/")["nodes"]:
            if entry["node"] == name:
                return int(entry["active_waits"])
        raise BenchError(f"/api/statistics/ does not list node {name}")

    def until_waiting(self, count: int) -> None:
        deadline = time.monotonic() + ARM_TIMEOUT
        while (held := self.active_waits()) < count:
            why = self.node.alive()
            if why is not None:
                raise BenchError(why)
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon holds {held} of {count} waits after {ARM_TIMEOUT:.0f}s")
            time.sleep(0.2)


def fan_out(clients: list[ClientProcess], api: Api, store: str, after: int, rate: float, round_: int,
            on_armed: Any = None) -> tuple[int, float, list[float], float, float, int]:
    """One round: arm every wait (``rate`` a second in all), publish once. (message id, ms until all have it,
    per-answer ms, server and client CPU ms during the fan-out, answers that carried other messages)."""
    everyone(clients, {"cmd": "arm", "after": after, "rate": rate / len(clients), "round": round_})
    try:
        api.until_waiting(sum(c.count for c in clients))
    except BenchError as e:
        raise BenchError(f"{e}; answered already: {everyone(clients, {'cmd': 'peek'})}") from None
    if on_armed is not None:
        on_armed()
    server_cpu = api.node.cpu_seconds()
    published_at = time.monotonic()
    published = publish_raw(store, round_)
    results = everyone(clients, {"cmd": "collect", "expect": published})
    server_ms = (api.node.cpu_seconds() - server_cpu) * 1000
    arrivals = [(at - published_at) * 1000 for r in results for at in r["arrivals"]]
    client_ms = sum(r["cpu_s"] for r in results) * 1000
    return published, max(arrivals), arrivals, server_ms, client_ms, sum(r["foreign"] for r in results)


def drive_https(args: argparse.Namespace, workdir: Path) -> int:
    raise_fd_limit(args.waiters + 2000)  # the daemon and the client processes inherit it
    node = twistd(workdir)
    clients: list[ClientProcess] = []
    try:
        node.start()
        token = node.admin_token()
        api = Api(node, token)
        store = str(node.store_socket)
        warm = ClientProcess(node, token, FIRST_SID - WARMUP_WAITERS - 1, WARMUP_WAITERS)
        clients.append(warm)
        everyone([warm], {"cmd": "connect"})
        fan_out([warm], api, store, api.last_id(), args.arm_rate, 0)
        warm.stop()
        time.sleep(1.0)  # the warm-up's connections are closed and collected
        baseline_kb = rss_kb(node.pid)

        share, extra = divmod(args.waiters, args.clients)
        first = FIRST_SID
        for n in range(args.clients):
            count = share + (1 if n < extra else 0)
            clients.append(ClientProcess(node, token, first, count))
            first += count
        gui_clients = clients[1:]
        started = time.monotonic()
        everyone(gui_clients, {"cmd": "connect"})
        print(f"{args.waiters} GUIs connected and subscribed in {time.monotonic() - started:.1f}s "
              f"({args.clients} client processes)", flush=True)
        connected_kb = rss_kb(node.pid) - baseline_kb
        grown: list[int] = []
        rounds: list[float] = []
        responses: list[float] = []
        position = api.last_id()
        for n in range(args.rounds):
            on_armed = (lambda: grown.append(rss_kb(node.pid) - baseline_kb)) if n == 0 else None
            position, ms, arrivals, server_ms, client_ms, foreign = fan_out(
                gui_clients, api, store, position, args.arm_rate, n + 1, on_armed)
            rounds.append(ms)
            responses += arrivals
            print(f"round {n + 1}: {args.waiters} waiters, fanout_all_ms={ms:.1f} "
                  f"first_ms={min(arrivals):.1f} response_ms_p50={percentile(arrivals, 0.5):.1f} "
                  f"server_cpu_ms={server_ms:.0f} "
                  f"client_cpu_ms={client_ms:.0f} other_messages_seen={foreign}", flush=True)
        print(f"daemon_rss_kb_baseline={baseline_kb} daemon_rss_kb_growth={grown[0]} "
              f"(connections: {connected_kb / args.waiters:.1f} KB each, "
              f"long-polls: {(grown[0] - connected_kb) / args.waiters:.1f} KB each)")
        for c in clients:
            c.stop()
        # the same run's baseline: what an idle TLS connection costs a bare Klein server on the same TLS
        bare_kb = bare_tls_connection_kb(node, args.waiters, WARMUP_WAITERS)
        print(f"bare_klein_rss_per_tls_connection_kb={bare_kb:.2f}")
        print(f"ovsd_own_rss_per_waiter_kb={grown[0] / args.waiters - bare_kb:.2f} (per waiter, less that baseline)")
        return report("https", args.waiters, grown[0] / args.waiters, rounds, responses)
    except BenchError as e:
        tail = "\n".join(node.log_path.read_text(errors="replace").splitlines()[-20:]) if node.log_path.exists() else ""
        raise BenchError(f"{e}\nthe daemon's log ends with:\n{tail}") from None
    finally:
        for c in clients:
            c.stop()
        node.stop()


# --- the direct variant: the bus API inside one process -----------------------------------------------------
def drive_direct(args: argparse.Namespace, workdir: Path) -> int:
    from twisted.internet import defer, reactor, task

    from ovsd.messages.bus import MessageBus
    from ovsd.messages.events import publish_event
    from ovsd.messages.subscriptions import subscribe
    from ovsd.store.connection import Store

    store_port = free_port()
    store_proc = valkey_server(store_port, workdir / "valkey")
    url = f"redis://127.0.0.1:{store_port}/0"
    outcome: list[int] = []

    async def run() -> int:
        store, publisher = Store(url, workdir, reactor), Store(url, workdir, reactor)
        for s in (store, publisher):
            s.startService()
            await s.wait_until_available(interval=0.05)
        bus = MessageBus(store, reactor)
        bus.startService()
        try:
            sids = list(range(FIRST_SID, FIRST_SID + args.waiters))
            for i in range(0, len(sids), 500):
                await defer.gatherResults([
                    defer.ensureDeferred(subscribe(store, sid, ["EVENT"])) for sid in sids[i:i + 500]
                ])
            while bus.position is None:
                await task.deferLater(reactor, 0.01, lambda: None)
            position = bus.position
            rounds: list[float] = []
            per_waiter_kb = 0.0
            for n in range(args.rounds):
                before = rss_kb(os.getpid())
                waits = [defer.ensureDeferred(bus.wait(sid, position, 60)) for sid in sids]
                while bus.waiter_count < len(sids):
                    await task.deferLater(reactor, 0.05, lambda: None)
                if n == 0:
                    per_waiter_kb = (rss_kb(os.getpid()) - before) / len(sids)
                started = time.monotonic()
                position = await publish_event(publisher, "vdisk_created", {"bench": True})
                results = await defer.gatherResults(waits)
                ms = (time.monotonic() - started) * 1000
                if any([m["id"] for m in r["messages"]] != [position] for r in results):
                    raise BenchError("a waiter did not get the published message")
                rounds.append(ms)
                print(f"round {n + 1}: {len(sids)} waiters, fanout_all_ms={ms:.1f}", flush=True)
            return report("direct", len(sids), per_waiter_kb, rounds, [])
        finally:
            await bus.stopService()
            await store.stopService()
            await publisher.stopService()

    def done(result: Any) -> None:
        if isinstance(result, int):
            outcome.append(result)
        else:
            print(f"messages_fanout: {result.getErrorMessage()}", file=sys.stderr)
            outcome.append(1)
        reactor.stop()

    try:
        reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addBoth(done))
        reactor.run()
    finally:
        store_proc.terminate()
        store_proc.wait(15)
    return outcome[0] if outcome else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the GUIs (HTTPS)")
    parser.add_argument("--arm-rate", type=float, default=1000.0,
                        help="long-polls sent a second while arming (HTTPS; not part of the measured time)")
    parser.add_argument("--direct", action="store_true", help="wait on the bus API in-process, no HTTP")
    return parser.parse_args(argv)


def terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the processes


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminated)
    with tempfile.TemporaryDirectory(prefix="ovsd-bench-messages-") as tmp:
        try:
            if args.direct:
                return drive_direct(args, Path(tmp))
            return drive_https(args, Path(tmp))
        except (BenchError, ssl.SSLError, OSError) as e:
            print(f"messages_fanout: {e}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
