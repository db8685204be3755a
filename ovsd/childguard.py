"""Run a program that dies with its parent: ``python -m ovsd.childguard [--parent PID] [--new-group] PROGRAM ARGS…``.

The daemon starts its children (the embedded store, storagedriver processes) through this guard, which
asks the kernel to SIGKILL the child when the daemon goes away, even by SIGKILL, then execs the program
(same pid). So a killed daemon never leaves an orphan behind.

``--parent`` names the daemon's pid: the guard arms the death signal first and then checks that its parent
is still that pid, which closes the window in which the daemon could die while Python was starting (the
guard would otherwise adopt init as its parent and run the program as an orphan). ``--new-group`` puts the
program in a process group of its own, so a stop can signal everything it started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guard_argv(argv: list[str], new_group: bool = False) -> list[str]:
    """The command line that runs argv under the guard, bound to this (the calling) process."""
    options = ["--parent", str(os.getpid())] + (["--new-group"] if new_group else [])
    return [sys.executable, "-m", "ovsd.childguard", *options, *argv]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A small, predictable environment for a child: PATH, a UTF-8 locale, PYTHONPATH (for the guard)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(extra or {})
    return env


def main(argv: list[str]) -> None:
    expected_parent: int | None = None
    while argv and argv[0].startswith("--"):
        option = argv.pop(0)
        if option == "--parent" and argv:
            expected_parent = int(argv.pop(0))
        elif option == "--new-group":
            os.setpgid(0, 0)
        elif option == "--":
            break
        else:
            sys.stderr.write(f"childguard: unknown option {option}\n")
            raise SystemExit(2)
    if not argv:
        sys.stderr.write("usage: python -m ovsd.childguard [--parent PID] [--new-group] PROGRAM [ARGS...]\n")
        raise SystemExit(2)
    parent = expected_parent if expected_parent is not None else os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise SystemExit(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    if os.getppid() != parent:
        # the parent died before the guard was armed: do not start an orphan
        raise SystemExit(1)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
