"""One client process of the messages fan-out benchmark: thousands of GUIs, each with its own subscriber id,
its own TLS connection and one long-poll in flight (``bench/messages_fanout.py`` starts several).

Not a benchmark itself. Driven over stdin/stdout with one JSON object a line:

    {"cmd": "connect"}                  opens the connections, subscribes each sid to EVENT (POST …/subscribe/)
    {"cmd": "arm", "after": N, "rate": R, "round": K}
                                        each GUI long-polls (GET /api/messages/<sid>/wait/?message_id=N
                                        &timeout=60; started R a second at most) until it has the message
                                        whose body's metadata says bench_round K, waiting again after any other
    {"cmd": "collect", "expect": M}     waits for every GUI; each must have got round K's message as id M
    {"cmd": "peek"}                     how many waits were answered already, and a few of those answers
    {"cmd": "quit"}

and answers each with ``{"ok": …}`` (collect adds the monotonic arrival times and the CPU seconds the
process spent from the end of arming to the last arrival). Time is ``time.monotonic()``, the system's
CLOCK_MONOTONIC, so the coordinator can compare it with the moment it published.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aio_https import Connection, HttpError, open_all


class Guis:
    def __init__(self, args: argparse.Namespace) -> None:
        context = ssl.create_default_context(cafile=args.ca)
        # the token comes in the environment, not on the command line (where ps would show it)
        headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}", "Accept": "application/json; version=1"}
        self.sids = list(range(args.first_sid, args.first_sid + args.count))
        self.connections = [Connection("127.0.0.1", args.port, context, headers) for _ in self.sids]
        self.waits: list[asyncio.Task[tuple[int, float]]] = []
        self.armed_cpu = 0.0
        self.foreign = 0  # answers that carried other messages than the round's

    async def connect(self) -> dict[str, Any]:
        await open_all(self.connections)
        for start in range(0, len(self.sids), 500):
            pairs = list(zip(self.sids[start:start + 500], self.connections[start:start + 500], strict=True))
            accepted = await asyncio.gather(*(
                c.request("POST", f"/api/messages/{sid}/subscribe/", ["EVENT"]) for sid, c in pairs))
            if any(a != ["EVENT"] for a in accepted):
                raise HttpError(f"subscribe answered {accepted[0]}")
        return {"ok": "connected", "connections": len(self.connections)}

    async def arm(self, after: int, rate: float, round_: int) -> dict[str, Any]:
        """Start every GUI's long-poll, at most ``rate`` a second (a burst of thousands at once would only
        measure how the daemon copes with a herd, and its store commands would time out behind it)."""
        self.waits = []
        self.foreign = 0
        batch = 50
        started = time.monotonic()
        for start in range(0, len(self.sids), batch):
            pairs = zip(self.sids[start:start + batch], self.connections[start:start + batch], strict=True)
            for sid, conn in pairs:
                self.waits.append(asyncio.ensure_future(self.follow(sid, conn, after, round_)))
            ahead = started + (start + batch) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.armed_cpu = time.process_time()
        return {"ok": "armed"}

    async def follow(self, sid: int, conn: Connection, after: int, round_: int) -> tuple[int, float]:
        """One GUI: long-poll until the benchmark's message of this round is in; (its id, its arrival).

        Another message (the daemon announcing a status change, say) answers the wait early: the GUI waits
        again from there, as a real one does."""
        while True:
            conn.send("GET", f"/api/messages/{sid}/wait/?message_id={after}&timeout=60")
            status, body, at = await conn.response()
            if status != 200:
                raise HttpError(f"wait answered {status}: {body[:300]!r}")
            answer = json.loads(body)
            for message in answer["messages"]:
                if (message["body"].get("metadata") or {}).get("bench_round") == round_:
                    return message["id"], at
            self.foreign += 1
            after = answer["last_message_id"]

    async def collect(self, expect: int) -> dict[str, Any]:
        answers = await asyncio.gather(*self.waits)
        cpu = time.process_time() - self.armed_cpu
        wrong = [message_id for message_id, _ in answers if message_id != expect]
        if wrong:
            raise HttpError(f"{len(wrong)} GUIs got the round's message as id {wrong[0]}, not {expect}")
        return {"ok": "collected", "arrivals": [at for _, at in answers], "cpu_s": cpu, "foreign": self.foreign}

    def peek(self) -> dict[str, Any]:
        """How many waits were answered already, and a few of those answers (to explain a stalled round)."""
        done = [w for w in self.waits if w.done()]
        shown = []
        for w in done[:3]:
            error = w.exception()
            shown.append(repr(error) if error else f"message {w.result()[0]}")
        return {"ok": "peeked", "answered": len(done), "examples": shown}

    def quit(self) -> None:
        for c in self.connections:
            c.close()


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    guis = Guis(args)
    while line := await commands.readline():
        command = json.loads(line)
        try:
            if command["cmd"] == "connect":
                reply = await guis.connect()
            elif command["cmd"] == "arm":
                reply = await guis.arm(int(command["after"]), float(command["rate"]), int(command["round"]))
            elif command["cmd"] == "peek":
                reply = guis.peek()
            elif command["cmd"] == "collect":
                reply = await guis.collect(int(command["expect"]))
            else:
                guis.quit()
                return 0
        except (HttpError, OSError, asyncio.IncompleteReadError, ValueError, KeyError) as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    guis.quit()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--first-sid", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    return asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
