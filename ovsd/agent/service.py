"""The agent: this node's registration, heartbeats, liveness, status announcements and storagedrivers.

Every ``heartbeat_interval`` it writes ``heartbeats.process`` of its StorageRouter and refreshes the node's
liveness key (read by the task engine to fail node-bound tasks fast), keeps this node's storagedriver
processes in line with the model, pushes their state as node-owned live data, and announces status
changes of every StorageRouter — so a dead node's change is still announced, by whichever node sees it
first (an atomic swap of the last announced status makes that exactly one node). Every
``statistics_interval`` it measures its running StorageDrivers and their vDisks and pushes what it measured
(ovsd.storage.statistics), each figure with its time and an expiry, so a node that stops measuring has no
figures rather than old ones.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from ovsd.agent.announcements import StatusAnnouncer
from ovsd.agent.launcher import LaunchError, Launchers
from ovsd.agent.registration import register_node
from ovsd.agent.supervisor import DriverState, DriverSupervisor
from ovsd.auth.tokens import sweep_expired_tokens
from ovsd.config import Config
from ovsd.dal.repository import DataObject, ObjectNotFound, Repository
from ovsd.storage.node import NodeStorage
from ovsd.store import keys
from ovsd.store.connection import Store, StoreUnavailable

log = Logger()

PublishEvent = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


class NodeAgent(Service):
    """Watches this node and does what only this node can do."""

    name = "agent"
    register_retry = 0.2
    token_sweep_interval = 300.0
    #: seconds between two measurements of this node's StorageDrivers (the seed era's statistics were
    #: cached 5 s: a sample every 2 s keeps every read at most one cache period behind)
    statistics_interval = 2.0

    def __init__(
        self, config: Config, store: Store, repository: Repository, reactor: Any, supervisor: DriverSupervisor,
        launchers: Launchers, publish_event: PublishEvent, storage: NodeStorage | None = None,
        load: Callable[[], dict[str, int]] | None = None, started_at: float = 0.0,
    ) -> None:
        self.config = config
        self.store = store
        self.repo = repository
        self.reactor = reactor
        self.supervisor = supervisor
        self.launchers = launchers
        self.publish_event = publish_event
        # this node's StorageDrivers' daemons (None: a node that serves no block vPool)
        self.storage = storage
        # what this node is doing now ({requests, active_waits, tasks_running}), for its live figures
        self.load = load or (lambda: {})
        self.started_at = started_at
        self.announcer = StatusAnnouncer(store, config.agent, publish_event)
        self.storagerouter_guid: str | None = None
        #: when this agent's own loop last completed a heartbeat (clock seconds)
        self._last_beat: float | None = None
        self._loop: task.LoopingCall | None = None
        self._beating: defer.Deferred[None] | None = None
        self._sampler: task.LoopingCall | None = None
        self._registered: list[defer.Deferred[str]] = []
        self._worker_beat_pending = False
        self._last_sweep = 0.0
        # the heartbeat and a storage task may both bring the drivers in line: one at a time, or a driver a
        # task just removed could be started again from the heartbeat's older list
        self._sync_lock = defer.DeferredLock()

    # --- lifecycle -------------------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.config.agent.heartbeat_interval, now=True).addErrback(
            lambda f: log.failure("agent loop stopped", f))
        self.sample_every(self.statistics_interval)

    def sample_every(self, interval: float) -> None:
        """Measure this node's StorageDrivers every ``interval`` seconds from now on."""
        if self._sampler is not None and self._sampler.running:
            self._sampler.stop()
        self._sampler = task.LoopingCall(self.push_measurements)
        self._sampler.clock = self.reactor
        self._sampler.start(interval, now=False).addErrback(lambda f: log.failure("statistics loop stopped", f))

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._sampler is not None and self._sampler.running:
            self._sampler.stop()
        return self._beating if self._beating is not None and not self._beating.called else None

    def when_registered(self) -> defer.Deferred[str]:
        """Fires with this node's StorageRouter guid once it is registered."""
        if self.storagerouter_guid is not None:
            return defer.succeed(self.storagerouter_guid)
        d: defer.Deferred[str] = defer.Deferred()
        self._registered.append(d)
        return d

    def _tick(self) -> defer.Deferred[None] | None:
        if self._beating is not None and not self._beating.called:
            return None  # the previous beat is still at work (a slow store): never pile up
        self._beating = defer.ensureDeferred(self.beat())
        return self._beating

    async def beat(self) -> None:
        """One heartbeat: register if needed, write the heartbeat, sync drivers, announce status changes."""
        try:
            if self.storagerouter_guid is None:
                router = await register_node(self.repo, self.config)
                self.storagerouter_guid = router.guid
                waiting, self._registered = self._registered, []
                for d in waiting:
                    d.callback(router.guid)
                if self._worker_beat_pending:
                    await self.heartbeat("celery")
            await self.heartbeat("process")
            self._last_beat = self.reactor.seconds()
            await self.store.execute("SET", keys.node_live(self.config.node.machine_id),
                                     json.dumps(self.live_figures()), "PX",
                                     int(self.config.agent.failure_after * 1000))
            await self.sync_drivers()
            await self.sweep_tokens()
            await self.push_driver_states()
            await self.announce_status_changes()
        except StoreUnavailable:
            log.warn("heartbeat skipped: the store is unavailable")
            if self.storagerouter_guid is None and self.running:
                # not registered yet: try again soon rather than a whole heartbeat interval later
                self.reactor.callLater(self.register_retry, self._tick)
        except Exception:
            log.failure("heartbeat failed")

    async def sweep_tokens(self) -> None:
        """Every ``token_sweep_interval``, remove the cluster's expired bearer tokens (any node may do it)."""
        now = self.repo.now()
        if now - self._last_sweep < self.token_sweep_interval:
            return
        self._last_sweep = now
        removed = await sweep_expired_tokens(self.repo, now)
        if removed:
            log.info("removed {count} expired token(s)", count=removed)

    # --- heartbeats ------------------------------------------------------------------------------------
    async def heartbeat(self, *components: str) -> None:
        """Record that components of this node (``process``: the agent, ``celery``: the task worker) are alive."""
        guid = self.storagerouter_guid
        if guid is None:
            return
        # milliseconds, not whole seconds: a truncated beat looks up to 1 s older than it is, which with
        # short intervals (1 s beats, WARNING after 2 s) makes a healthy node flap to WARNING
        now = round(self.repo.now(), 3)
        beats = dict.fromkeys(components, now)
        await self.repo.modify("storagerouter", guid,
                               lambda data: {"heartbeats": {**(data.get("heartbeats") or {}), **beats}})

    async def worker_heartbeat(self) -> None:
        if self.storagerouter_guid is None:
            # the worker beat before this node was registered: record that beat right after registration
            self._worker_beat_pending = True
            return
        components = ["celery"]
        if self._agent_beating():
            # the worker runs in this process, so while the agent's own loop beats too the worker's beat
            # proves the process alive as well. Stamped together, "process" never lags "celery": a node
            # that dies is WARNING for the whole gap between warning_after and failure_after, then FAILURE
            # (a lagging process beat could make FAILURE come first, with no WARNING at all)
            components.append("process")
        try:
            await self.heartbeat(*components)
        except StoreUnavailable:
            log.warn("worker heartbeat skipped: the store is unavailable")

    def _agent_beating(self) -> bool:
        """Whether the agent's loop completed a heartbeat within the last two intervals."""
        last = self._last_beat
        window = 2 * self.config.agent.heartbeat_interval
        return last is not None and self.reactor.seconds() - last <= window

    def live_figures(self) -> dict[str, Any]:
        """This node's figures for /api/statistics, pushed with every heartbeat (gone when the node is)."""
        load = self.load()
        return {
            "storagerouter_guid": self.storagerouter_guid, "node": self.config.node.name,
            "machine_id": self.config.node.machine_id, "requests": load.get("requests", 0),
            "active_waits": load.get("active_waits", 0), "tasks_running": load.get("tasks_running", 0),
            "uptime": round(self.repo.now() - self.started_at, 3), "pushed_at": self.repo.now(),
            "dal": dict(self.repo.counters),
        }

    # --- status ----------------------------------------------------------------------------------------
    async def announce_status_changes(self) -> None:
        """Announce the status changes of every StorageRouter (see ovsd.agent.announcements)."""
        routers = await self.repo.load_all("storagerouter")
        await self.announcer.announce(routers, self.repo.now())

    # --- storagedrivers --------------------------------------------------------------------------------
    async def my_storagedrivers(self) -> list[DataObject]:
        assert self.storagerouter_guid is not None
        guids = await self.repo.reverse_guids("storagerouter", self.storagerouter_guid, "storagedrivers")
        return await self.repo.get_many("storagedriver", guids)

    async def sync_drivers(self) -> None:
        """Run a process for every StorageDriver of this node, and none for those that are gone."""
        async with self._sync_lock:
            await self._sync_drivers()

    async def _sync_drivers(self) -> None:
        drivers = await self.my_storagedrivers()
        wanted = {d.guid for d in drivers}
        for guid in set(self.supervisor.states()) - wanted:
            await self.supervisor.remove(guid)
            await self.store.execute("DEL", keys.driver_live(guid), keys.driver_measured(guid))
            if self.storage is not None:
                self.storage.forget(guid)
        for driver in drivers:
            try:
                vpool = await self.repo.get("vpool", str(driver.data["vpool_guid"]))
                launcher = self.launchers.launcher_for(str(vpool.data.get("type")))
                spec = launcher.launch_spec({**driver.data, "guid": driver.guid}, vpool.data)
                prepare = getattr(launcher, "prepare", None)
                if prepare is not None and self.supervisor.state(driver.guid) is None:
                    # the driver's own directory (its QMP socket) exists before its process starts
                    await prepare(driver.guid)
            except (ObjectNotFound, LaunchError, OSError) as e:
                log.error("cannot launch storagedriver {guid}: {error}", guid=driver.guid, error=str(e))
                continue
            self.supervisor.ensure(driver.guid, spec)

    async def push_driver_states(self) -> None:
        for guid, state in self.supervisor.states().items():
            await self.push_driver_state(guid, state)

    async def push_driver_state(self, guid: str, state: DriverState) -> None:
        document = json.dumps({**state.as_dict(), "pushed_at": self.repo.now()})
        await self.store.execute("SET", keys.driver_live(guid), document, "PX",
                                 int(self.config.agent.failure_after * 1000))

    async def push_measurements(self) -> None:
        """Measure every running StorageDriver of this node and push it, and each of its vDisks, to the store.

        The figures expire after ``failure_after`` (at least three samples): the API reads a node that
        stopped measuring as having nothing measured, never its last figures as current.
        """
        storage = self.storage
        if storage is None:
            return
        try:
            pids = {guid: state.pid for guid, state in self.supervisor.states().items()}
            samples = await storage.sample(pids)
            at = round(self.repo.now(), 3)
            expiry = int(max(self.config.agent.failure_after, 3 * self.statistics_interval) * 1000)
            commands: list[tuple[Any, ...]] = []
            for driver, sample in samples.items():
                commands.append(("SET", keys.driver_measured(driver), json.dumps({
                    "counters": sample.counters(), "stored": sample.stored, "at": at, "pid": pids.get(driver),
                }), "PX", expiry))
                for guid, vdisk in sample.vdisks.items():
                    commands.append(("SET", keys.vdisk_measured(guid), json.dumps({
                        "counters": vdisk.counters(), "stored": vdisk.stored, "at": at,
                        "storagedriver_guid": driver,
                    }), "PX", expiry))
            await self.store.pipeline(commands)
        except StoreUnavailable:
            log.warn("storagedriver statistics not pushed: the store is unavailable")
        except Exception:
            log.failure("storagedriver statistics not measured")

    async def driver_changed(self, guid: str, state: DriverState, old_status: str | None) -> None:
        """The supervisor's report: push the new state at once, announce a status change."""
        try:
            await self.push_driver_state(guid, state)
            if state.status != old_status:
                await self.publish_event("storagedriver_status_changed", {
                    "storagedriver_guid": guid, "status": state.status, "previous": old_status,
                    "pid": state.pid, "restarts": state.restarts, "last_exit": state.last_exit,
                })
        except StoreUnavailable:
            log.warn("storagedriver {guid} state not pushed: the store is unavailable", guid=guid)
