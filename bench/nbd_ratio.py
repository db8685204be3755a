"""Benchmark: does an ovsd vDisk export move data as fast as the daemon can? (issue 12's ``nbd_ratio``)

    .venv/bin/python bench/nbd_ratio.py        (from the repo root)

In one run, three targets of the same format (qcow2, same size, fresh):

    ovsd    a vDisk made by ovsd's DriverDaemon (default ImageOptions) in a qemu-storage-daemon started
            with ovsd's command line, exported over NBD on 127.0.0.1
    plain   a qemu-storage-daemon started by hand with QEMU's defaults
            (``--blockdev file`` + ``--blockdev qcow2`` + ``--export nbd``), on 127.0.0.1
    file    the image file itself, opened by qemu-img (no daemon, no NBD: the ceiling)

``qemu-img bench`` moves the whole image in sequential 4 MiB requests (``-s 4M``, depth 64): one
unmeasured write of each target first (it allocates every cluster), then rounds of writes (``-w``) and of
reads, ovsd and plain back to back with the one first in turn, then the file. The figures are medians over
the rounds, and ``nbd_ratio_<dir>`` is the median of each round's ovsd ÷ plain (pairs cancel the load of a
shared machine, which moves single runs by ±15 %). NBD clients use ``-t none`` (no client-side cache); the
file uses qemu-img's default cache, the page cache the daemons write through (cache.direct=off).

Prints every run, MiB/s of each target, each daemon against the file, ``nbd_ratio_write`` /
``nbd_ratio_read`` and ``budget: nbd_ratio_write >= 0.9 -> PASS|FAIL`` (and read). Exits 1 on a FAIL or
an error. The daemon's RSS per 1,000 exports is ``bench/storage_ops.py``'s
``daemon_rss_mib_per_1000_exports`` (not repeated here).

Environment: ``BENCH_NBD_MIB`` (MiB per run, also the images' size; default 512), ``BENCH_NBD_ROUNDS``
(default 8; about 35 s in all).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from twisted.internet import defer, task  # noqa: E402

from devnode import free_port  # noqa: E402
from ovsd.storage import images  # noqa: E402
from ovsd.storage.daemon import DriverDaemon  # noqa: E402
from ovsd.storage.launcher import command_line, nbd_uri, wait_for_session  # noqa: E402
from ovsd.storage.vdisk import VDisk  # noqa: E402

MiB = 1024 * 1024
BLOCK = 4 * MiB
BUDGET = 0.9
DIRECTIONS = ("write", "read")


def bench_args(target: str, direction: str, count: int) -> list[str]:
    args = ["qemu-img", "bench", "-s", "4M", "-c", str(count)]
    if direction == "write":
        args.append("-w")
    if target.startswith("nbd:"):
        return [*args, "-f", "raw", "-t", "none", target]
    return [*args, "-f", "qcow2", target]


def measure(target: str, direction: str, count: int) -> float:
    """MiB/s of one ``qemu-img bench`` run, as the tool itself timed it."""
    done = subprocess.run(bench_args(target, direction, count), capture_output=True, text=True, timeout=120)
    found = re.search(r"Run completed in ([0-9.]+) seconds", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"qemu-img bench {direction} {target}: {done.stdout}{done.stderr}")
    return count * BLOCK / MiB / max(float(found.group(1)), 1e-9)


def plain_daemon(image: str, port: int) -> subprocess.Popen[bytes]:
    """A qemu-storage-daemon as one would start it by hand: every option at QEMU's default."""
    return subprocess.Popen([images.tool_path("qemu-storage-daemon"),
                             "--blockdev", f"driver=file,node-name=file0,filename={image}",
                             "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
                             "--nbd-server", f"addr.type=inet,addr.host=127.0.0.1,addr.port={port}",
                             "--export", "type=nbd,id=exp0,node-name=disk0,name=plain,writable=on"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_answering(uri: str, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        probe = subprocess.run(["qemu-img", "info", "-f", "raw", uri], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            err = process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
            raise RuntimeError(f"{uri} does not answer: {probe.stderr.decode()} {err}")
        time.sleep(0.05)


async def run(reactor: Any, directory: str, size_mib: int, rounds: int) -> dict[str, float]:
    size = size_mib * MiB
    count = size // BLOCK
    ovsd_port, plain_port = free_port(), free_port()
    socket = os.path.join(directory, "qmp.sock")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(subprocess.Popen(command_line(socket, "127.0.0.1", ovsd_port,
                                                       executable=images.tool_path("qemu-storage-daemon")),
                                          stdout=subprocess.DEVNULL))
        session = await wait_for_session(reactor, socket, 10.0)
        driver = DriverDaemon(session, reactor)
        vdisk = await driver.create(VDisk(guid="bench", image=os.path.join(directory, "ovsd.qcow2"), size=size))

        plain_image, file_image = os.path.join(directory, "plain.qcow2"), os.path.join(directory, "file.qcow2")
        for image in (plain_image, file_image):
            await images.create(reactor, image, size)
        processes.append(plain_daemon(plain_image, plain_port))
        targets = {"ovsd": nbd_uri("127.0.0.1", ovsd_port, vdisk.export),
                   "plain": nbd_uri("127.0.0.1", plain_port, "plain"),
                   "file": file_image}
        wait_answering(targets["ovsd"], processes[0])
        wait_answering(targets["plain"], processes[1])

        # the first writes allocate every cluster: done once, unmeasured, so each round compares overwrites
        for name, target in targets.items():
            print(f"allocating write {name:5} {measure(target, 'write', count):8.0f} MiB/s", flush=True)
        runs: dict[str, list[float]] = {}
        for r in range(rounds):
            # ovsd and plain back to back, in turn first: a load that drifts hits both alike
            order = ["ovsd", "plain", "file"] if r % 2 == 0 else ["plain", "ovsd", "file"]
            for direction in DIRECTIONS:
                figures = {name: measure(targets[name], direction, count) for name in order}
                for name, mib_s in figures.items():
                    runs.setdefault(f"{name}_{direction}_mib_s", []).append(mib_s)
                runs.setdefault(f"nbd_ratio_{direction}", []).append(figures["ovsd"] / figures["plain"])
                print(f"round {r + 1} {direction:5} " + " ".join(f"{n}={figures[n]:.0f}" for n in order)
                      + f" MiB/s  ovsd/plain={figures['ovsd'] / figures['plain']:.3f}", flush=True)
        # medians: one slow run (the machine is shared) moves neither figure
        best = {key: statistics.median(values) for key, values in runs.items()}
        session.close()
        return best
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def main() -> int:
    size_mib = max(16, int(os.environ.get("BENCH_NBD_MIB", "512")) // 4 * 4)
    rounds = max(1, int(os.environ.get("BENCH_NBD_ROUNDS", "8")))
    directory = tempfile.mkdtemp(prefix="ovsd-nbd-", dir="/tmp")
    outcome: dict[str, float] = {}
    print(f"load average before: {os.getloadavg()[0]:.2f}; {size_mib} MiB per run, {rounds} rounds")

    async def go(reactor: Any) -> None:
        outcome.update(await run(reactor, directory, size_mib, rounds))

    try:
        task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
    except SystemExit as e:
        if e.code:
            print("nbd_ratio: the benchmark failed (see above)")
            return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    status = 0
    for direction in DIRECTIONS:
        ovsd, plain, file = (outcome[f"{n}_{direction}_mib_s"] for n in ("ovsd", "plain", "file"))
        print(f"ovsd_{direction}_mib_s={ovsd:.0f} plain_{direction}_mib_s={plain:.0f} "
              f"file_{direction}_mib_s={file:.0f}")
        print(f"ovsd_vs_file_{direction}={ovsd / file:.3f} plain_vs_file_{direction}={plain / file:.3f}")
        print(f"nbd_ratio_{direction}={outcome[f'nbd_ratio_{direction}']:.3f}")
    for direction in DIRECTIONS:
        verdict = "PASS" if outcome[f"nbd_ratio_{direction}"] >= BUDGET else "FAIL"
        status = status or int(verdict == "FAIL")
        print(f"budget: nbd_ratio_{direction} >= {BUDGET:g} -> {verdict}")
    return status


if __name__ == "__main__":
    sys.exit(main())
