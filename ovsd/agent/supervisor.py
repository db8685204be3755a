"""Keeps this node's storagedriver processes running: start, restart with back-off, stop without orphans.

The idea is Twisted's ``ProcessMonitor`` (``twisted.runner.procmon``): one process protocol per child,
restart delays that double while a process keeps dying young and reset once it ran long enough, TERM
then KILL on stop. ``ProcessMonitor`` itself is not subclassed because a StorageDriver needs what it
lacks: a crash budget that ends in FAILURE, a state per driver pushed to observers, a launch spec that
can change, a readiness check, and a stop that can be awaited. Starting, watching, stopping and the
back-off are :mod:`ovsd.supervision`'s, shared with the embedded store: children are started through
:mod:`ovsd.childguard` (they die with the daemon even when it is SIGKILLed), each driver in a process
group of its own (a stop or a crash reaches whatever it started, which would also hold its output pipes).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ovsd.agent.drivers import FAILURE, HALTED, RUNNING, DriverState, ExitReason, exit_reason
from ovsd.agent.launcher import LaunchSpec
from ovsd.config import StoragedriverConfig
from ovsd.supervision import ChildProcess, CrashLoop, doubling, signal_group, spawn

log = Logger()

__all__ = ["FAILURE", "HALTED", "RUNNING", "DriverState", "DriverSupervisor", "ExitReason", "OnChange"]

#: called (and awaited, in order) on every change of a driver's state: (guid, new state, previous status)
OnChange = Callable[[str, DriverState, str | None], "defer.Deferred[Any] | Coroutine[Any, Any, Any] | None"]


class _DriverProcess(ChildProcess):
    """One run of a StorageDriver's process."""

    own_group = True
    close_stdin = True

    def __init__(self, supervisor: DriverSupervisor, driver: _Driver, started_at: float) -> None:
        super().__init__(started_at)
        self.supervisor = supervisor
        self.driver = driver
        self.readiness: defer.Deferred[None] | None = None
        self.not_ready: str | None = None

    def output_line(self, line: str, fd: int) -> None:
        log.info("storagedriver {guid}: {line}", guid=self.driver.guid, line=line, fd=fd)

    def ended(self, reason: Failure) -> None:
        # on processExited, not processEnded: that also waits for every holder of its output pipes
        self.supervisor._process_exited(self, reason)

    def stop_requested(self) -> None:
        if self.readiness is not None:
            self.readiness.cancel()

    def killing(self, grace: float) -> None:
        log.warn(
            "storagedriver {guid} (pid {pid}) did not stop in {grace}s; killing it",
            guid=self.driver.guid, pid=self.pid, grace=grace,
        )

    def cancel_timers(self) -> None:
        self.cancel_kill()
        if self.readiness is not None:
            self.readiness.cancel()


class _Driver:
    """The supervisor's record of one StorageDriver."""

    def __init__(self, guid: str, spec: LaunchSpec, crash_loop: CrashLoop) -> None:
        self.guid = guid
        self.spec = spec
        #: False once removed: its process is stopping and the record goes when it has ended
        self.wanted = True
        self.process: _DriverProcess | None = None
        self.state: DriverState | None = None
        #: crashes in a row; reset by a stable run, a new spec, reset() or a service start
        self.crash_loop = crash_loop
        self.restart_call: IDelayedCall | None = None

    def cancel_restart(self) -> None:
        if self.restart_call is not None and self.restart_call.active():
            self.restart_call.cancel()
        self.restart_call = None


class DriverSupervisor(Service):
    """Runs one process per StorageDriver of this node, as described by each driver's launch spec."""

    name = "storagedrivers"

    def __init__(
        self,
        reactor: IReactorProcess,
        config: StoragedriverConfig,
        on_change: OnChange | None = None,
        clock: IReactorTime | None = None,
        *,
        first_delay: float = 0.2,
        max_delay: float = 5.0,
        stable_after: float = 10.0,
        ready_timeout: float = 30.0,
    ) -> None:
        self.reactor = reactor
        if clock is None:
            assert IReactorTime.providedBy(reactor)
            clock = reactor
        self.clock: IReactorTime = clock
        self.stop_grace = config.stop_grace
        #: restarts allowed in a crash loop; the crash after the last one ends in FAILURE
        self.max_restarts = config.max_restarts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.ready_timeout = ready_timeout
        self.on_change = on_change
        self._drivers: dict[str, _Driver] = {}
        self._notifications: defer.Deferred[None] = defer.succeed(None)

    # -- what other code calls -------------------------------------------------------------------

    def state(self, guid: str) -> DriverState | None:
        driver = self._drivers.get(guid)
        return driver.state if driver is not None else None

    def states(self) -> dict[str, DriverState]:
        return {guid: d.state for guid, d in self._drivers.items() if d.state is not None}

    def ensure(self, guid: str, spec: LaunchSpec) -> None:
        """Keep a process running for this StorageDriver; a changed spec restarts it (and ends a FAILURE)."""
        driver = self._drivers.get(guid)
        if driver is None:
            crash_loop = CrashLoop(doubling(self.first_delay, self.max_delay), self.stable_after)
            driver = self._drivers[guid] = _Driver(guid, spec, crash_loop)
            if self.running:
                self._spawn(driver, restarts=0)
            else:
                self._update(driver, status=HALTED)
            return
        changed = spec != driver.spec
        driver.spec = spec
        if not changed and driver.wanted:
            return
        driver.wanted = True
        if changed:
            driver.crash_loop.reset()
            driver.cancel_restart()
        if driver.process is not None:
            # the end of the old process starts the new one (see _process_exited)
            if changed:
                self._terminate(driver.process)
        elif self.running:
            self._spawn(driver, restarts=self._restarts(driver))

    def remove(self, guid: str) -> defer.Deferred[None]:
        """Stop and forget a StorageDriver's process; fires once it is gone and HALTED was reported."""
        driver = self._drivers.get(guid)
        if driver is None:
            return self.notified()
        driver.wanted = False
        driver.cancel_restart()
        if driver.process is not None:
            ended = self._terminate(driver.process)
            return ended.addCallback(lambda _: self.notified())
        self._update(driver, status=HALTED, pid=None)
        self._forget(driver)
        return self.notified()

    def reset(self, guid: str) -> None:
        """Start a FAILED (or backing-off) driver again now, with a fresh crash budget. KeyError if unknown."""
        driver = self._drivers[guid]
        driver.crash_loop.reset()
        if driver.process is None and driver.wanted and self.running:
            driver.cancel_restart()
            self._spawn(driver, restarts=self._restarts(driver))

    def notified(self) -> defer.Deferred[None]:
        """Fires once every state change so far has been handed to on_change (and it returned)."""
        waiter: defer.Deferred[None] = defer.Deferred()

        def release(result: object) -> object:
            waiter.callback(None)
            return result

        self._notifications.addBoth(release)
        return waiter

    def startService(self) -> None:
        super().startService()
        for driver in self._drivers.values():
            if driver.wanted and driver.process is None:
                driver.crash_loop.reset()
                driver.cancel_restart()
                self._spawn(driver, restarts=self._restarts(driver))

    def stopService(self) -> defer.Deferred[None]:
        """Stop every process (TERM, KILL after stop_grace); fires when all are gone and reported."""
        super().stopService()
        ending = []
        for driver in self._drivers.values():
            driver.cancel_restart()
            if driver.process is not None:
                ending.append(self._terminate(driver.process))
        gone = defer.DeferredList(ending)
        return gone.addCallback(lambda _: self.notified())

    # -- process lifecycle -----------------------------------------------------------------------

    @staticmethod
    def _restarts(driver: _Driver) -> int:
        return driver.state.restarts if driver.state is not None else 0

    def _spawn(self, driver: _Driver, restarts: int) -> None:
        spec = driver.spec
        proto = _DriverProcess(self, driver, self.clock.seconds())
        try:
            spawn(self.reactor, proto, spec.argv, env=spec.env)
        except OSError as e:
            log.error("storagedriver {guid} could not be started: {error}", guid=driver.guid, error=str(e))
            self._update(driver, restarts=restarts)
            self._crashed(driver, proto.started_at, f"spawn failed: {e}")
            return
        driver.process = proto
        log.info(
            "storagedriver {guid} started (pid {pid}): {argv}", guid=driver.guid, pid=proto.pid, argv=spec.argv,
        )
        if spec.ready is None:
            self._update(driver, status=RUNNING, pid=proto.pid, restarts=restarts)
            return
        # it is RUNNING only once its control socket answers
        self._update(driver, pid=proto.pid, restarts=restarts)
        self._await_ready(driver, proto, spec)

    def _await_ready(self, driver: _Driver, proto: _DriverProcess, spec: LaunchSpec) -> None:
        check = spec.ready
        assert check is not None

        async def run() -> None:
            await check()

        waiting = defer.Deferred.fromCoroutine(run())
        waiting.addTimeout(self.ready_timeout, self.clock)
        proto.readiness = waiting

        def ready(_: None) -> None:
            proto.readiness = None
            if driver.process is proto and not proto.stopping:
                log.info("storagedriver {guid} is ready (pid {pid})", guid=driver.guid, pid=proto.pid)
                self._update(driver, status=RUNNING)

        def not_ready(failure: Failure) -> None:
            proto.readiness = None
            if proto.stopping or proto.exited:
                return
            if failure.check(defer.TimeoutError):
                proto.not_ready = f"not ready: no answer in {self.ready_timeout:g}s"
            else:
                proto.not_ready = f"not ready: {failure.getErrorMessage()}"
            log.error("storagedriver {guid} {problem}; killing it", guid=driver.guid, problem=proto.not_ready)
            proto.send(signal.SIGKILL)

        waiting.addCallbacks(ready, not_ready)

    def _terminate(self, proto: _DriverProcess) -> defer.Deferred[None]:
        """TERM the driver's process group, KILL it after stop_grace; fires when the driver has exited."""
        return proto.terminate(self.clock, self.stop_grace)

    def _process_exited(self, proto: _DriverProcess, reason: Failure) -> None:
        proto.cancel_timers()
        if proto.pid is not None:
            # what the driver started is orphaned now and nobody else would stop it
            signal_group(proto.pid, signal.SIGKILL)
        driver = proto.driver
        if driver.process is not proto:
            return
        driver.process = None
        last_exit = proto.not_ready or exit_reason(reason)
        if proto.stopping:
            log.info(
                "storagedriver {guid} stopped (pid {pid}, {last_exit})",
                guid=driver.guid, pid=proto.pid, last_exit=last_exit,
            )
            self._update(driver, status=HALTED, pid=None, last_exit=last_exit)
            if not driver.wanted:
                self._forget(driver)
            elif self.running:
                self._spawn(driver, restarts=self._restarts(driver))
            return
        self._crashed(driver, proto.started_at, last_exit)

    def _crashed(self, driver: _Driver, started_at: float, last_exit: ExitReason) -> None:
        delay = driver.crash_loop.crashed(self.clock.seconds() - started_at)
        if driver.crash_loop.crashes > self.max_restarts:
            log.error(
                "storagedriver {guid} ended ({last_exit}) after {restarts} restarts in a row; FAILURE, "
                "not restarted until its spec changes or it is reset",
                guid=driver.guid, last_exit=last_exit, restarts=driver.crash_loop.crashes - 1,
            )
            self._update(driver, status=FAILURE, pid=None, last_exit=last_exit)
            return
        log.warn(
            "storagedriver {guid} ended ({last_exit}); restarting in {delay}s",
            guid=driver.guid, last_exit=last_exit, delay=delay,
        )
        self._update(driver, status=HALTED, pid=None, last_exit=last_exit)
        if self.running and driver.wanted:
            driver.restart_call = self.clock.callLater(delay, self._restart, driver)

    def _restart(self, driver: _Driver) -> None:
        driver.restart_call = None
        if self.running and driver.wanted and driver.process is None:
            self._spawn(driver, restarts=self._restarts(driver) + 1)

    def _forget(self, driver: _Driver) -> None:
        if self._drivers.get(driver.guid) is driver:
            del self._drivers[driver.guid]

    # -- state and observers ---------------------------------------------------------------------

    def _update(self, driver: _Driver, **changes: Any) -> None:
        now = self.clock.seconds()
        old = driver.state
        base = old if old is not None else DriverState(HALTED, None, 0, None, now)
        new = replace(base, **changes)
        if old is None or new.status != old.status:
            new = replace(new, since=now)
        if new == old:
            return
        driver.state = new
        self._notify(driver.guid, new, old.status if old is not None else None)

    def _notify(self, guid: str, state: DriverState, old_status: str | None) -> None:
        on_change = self.on_change
        if on_change is None:
            return

        def deliver(_: object) -> defer.Deferred[Any] | None:
            try:
                result = on_change(guid, state, old_status)
            except Exception:
                log.failure("reporting the state of storagedriver {guid}", guid=guid)
                return None
            if result is None:
                return None
            waiting = defer.ensureDeferred(result)

            def failed(failure: Failure) -> None:
                log.failure("reporting the state of storagedriver {guid}", failure=failure, guid=guid)

            return waiting.addErrback(failed)

        # in order: a slow report must not be overtaken by a later one for the same driver
        self._notifications.addCallback(deliver)
