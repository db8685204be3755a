"""Run a program that dies with its parent: ``python -m ovsd.childguard PROGRAM ARGS…``.

The daemon starts its children (the embedded store, storagedriver processes) through this guard, which
asks the kernel to SIGKILL the child when the daemon goes away, even by SIGKILL, then execs the program
(same pid). So a killed daemon never leaves an orphan behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    if not argv:
        sys.stderr.write("usage: python -m ovsd.childguard PROGRAM [ARGS...]\n")
        raise SystemExit(2)
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    if os.getppid() != parent:
        # the parent died before the guard was armed
        raise SystemExit(1)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
