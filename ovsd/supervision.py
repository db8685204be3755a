"""Running a child program as part of the daemon: the core both supervisors share.

The embedded store (:mod:`ovsd.store.embedded`) and the storagedriver processes (:mod:`ovsd.agent.supervisor`)
are run the same way:

- started through :mod:`ovsd.childguard`, so the kernel kills a child with the daemon, even a SIGKILLed one
  (optionally in a process group of its own, so a stop also reaches what it started);
- its output logged line by line (an unfinished line kept up to 64 KiB);
- stopped with TERM, then KILL after a grace, with a Deferred that fires once it has ended;
- after a crash, started again after a pause that grows while it keeps dying young and starts over once a
  run lasted ``stable_after`` seconds (:class:`CrashLoop`).

What each supervisor adds stays with it: the storagedrivers' crash budget, states and readiness checks, the
store's pid file.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.python.failure import Failure

from ovsd.childguard import child_env, guard_argv

__all__ = ["ChildProcess", "CrashLoop", "ExitReason", "doubling", "exit_reason", "signal_group", "spawn", "stepped"]

#: an exit code, a signal name ("SIGKILL"), or why the process was given up ("not ready: …")
ExitReason = int | str

#: the longest unfinished output line kept (a child can print without newlines)
MAX_PARTIAL_LINE = 65536


def exit_reason(reason: Failure) -> ExitReason:
    """The exit code of an ended process, or the name of the signal that ended it."""
    value = reason.value
    if isinstance(value, error.ProcessTerminated) and value.signal is not None:
        try:
            return signal.Signals(value.signal).name
        except ValueError:
            return f"signal {value.signal}"
    if isinstance(value, error.ProcessDone | error.ProcessTerminated) and value.exitCode is not None:
        return int(value.exitCode)
    return reason.getErrorMessage()


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group a child leads (a no-op once every process of it is gone)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ChildProcess(protocol.ProcessProtocol):
    """One run of a supervised program. Subclasses say what a line of output and the end mean."""

    #: end with processEnded (exited, and every holder of its output pipes closed them) instead of
    #: processExited (which does not wait for a grandchild that inherited the pipes)
    end_when_pipes_close = False
    #: signal the process group too (the child was started in a group of its own)
    own_group = False
    #: close the child's stdin once started
    close_stdin = False

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.pid: int | None = None
        self.exited = False
        #: set once a stop was asked for: the end is then not a crash
        self.stopping = False
        self.kill_call: IDelayedCall | None = None
        self._waiters: list[defer.Deferred[None]] = []
        self._partial: dict[int, bytes] = {}

    # -- what a subclass defines ---------------------------------------------------------------------

    def output_line(self, line: str, fd: int) -> None:
        """One non-empty line the child wrote (trailing whitespace removed)."""

    def ended(self, reason: Failure) -> None:
        """The child has ended (called before the waiters of ``when_ended`` fire)."""

    def stop_requested(self) -> None:
        """A stop was asked for (``stopping`` is set); called before the TERM is sent."""

    def killing(self, grace: float) -> None:
        """The child did not stop within ``grace`` seconds; KILL is sent next."""

    # -- the process ----------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        if self.close_stdin:
            assert self.transport is not None
            self.transport.closeStdin()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        *lines, rest = (self._partial.get(childFD, b"") + data).split(b"\n")
        self._partial[childFD] = rest[-MAX_PARTIAL_LINE:]
        for line in lines:
            if line.strip():
                self.output_line(line.decode("utf-8", "replace").rstrip(), childFD)

    def processExited(self, reason: Failure) -> None:
        if not self.end_when_pipes_close:
            self._end(reason)

    def processEnded(self, reason: Failure) -> None:
        if self.end_when_pipes_close:
            self._end(reason)

    def _end(self, reason: Failure) -> None:
        self.exited = True
        self.cancel_kill()
        self.ended(reason)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_ended(self) -> defer.Deferred[None]:
        """Fires once the child has ended (at once if it has)."""
        if self.exited:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def send(self, sig: signal.Signals) -> None:
        """Signal the child (and its process group when it leads one; it may not have made it yet)."""
        if self.transport is not None:
            try:
                self.transport.signalProcess(sig.name[3:])
            except error.ProcessExitedAlready:
                pass
        if self.own_group and self.pid is not None:
            signal_group(self.pid, sig)

    def terminate(self, clock: IReactorTime, grace: float) -> defer.Deferred[None]:
        """TERM the child, KILL it after ``grace`` seconds; fires when it has ended."""
        if not self.stopping and not self.exited:
            self.stopping = True
            self.stop_requested()
            self.send(signal.SIGTERM)
            self.kill_call = clock.callLater(grace, self._kill, grace)
        return self.when_ended()

    def _kill(self, grace: float) -> None:
        self.kill_call = None
        self.killing(grace)
        self.send(signal.SIGKILL)

    def cancel_kill(self) -> None:
        if self.kill_call is not None and self.kill_call.active():
            self.kill_call.cancel()
        self.kill_call = None


def spawn(
    reactor: IReactorProcess, child: ChildProcess, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
    path: str | None = None,
) -> int:
    """Start ``argv`` as ``child`` through the childguard; its pid. OSError when it cannot be started."""
    args = guard_argv(list(argv), new_group=child.own_group)
    options: dict[str, Any] = {} if path is None else {"path": path}
    transport = reactor.spawnProcess(child, args[0], args, env=child_env(dict(env or {})), **options)
    child.pid = transport.pid
    return child.pid


def doubling(first: float, cap: float) -> Callable[[int], float]:
    """Pauses ``first``, twice that, … up to ``cap``, by the number of crashes in a row (1, 2, …)."""
    return lambda crashes: min(first * 2 ** (crashes - 1), cap)


def stepped(delays: Sequence[float]) -> Callable[[int], float]:
    """Pauses taken from ``delays`` by the number of crashes in a row, the last one repeated."""
    return lambda crashes: delays[min(crashes, len(delays)) - 1]


class CrashLoop:
    """The crashes in a row of one supervised program, and the pause before its next start."""

    def __init__(self, pause: Callable[[int], float], stable_after: float) -> None:
        self.pause = pause
        #: a run at least this long was healthy: the next crash counts from 1 again
        self.stable_after = stable_after
        self.crashes = 0

    def crashed(self, ran_for: float) -> float:
        """Count a crash after a run of ``ran_for`` seconds; the pause before the next start."""
        if ran_for >= self.stable_after:
            self.crashes = 0
        self.crashes += 1
        return self.pause(self.crashes)

    def reset(self) -> None:
        self.crashes = 0
