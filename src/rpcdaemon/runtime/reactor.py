"""The reactor: one thread that judges liveness and decides when to pass; never acts itself.

The loop applies inputs waiting on the intake (heartbeats, notifications, bus
connect/disconnect) as they come, and ticks at most once per ``check_interval``, sooner
only when something is due now (a notification, a follow-up, a finished read or task).
Each tick: finished tasks are collected (once nothing is in flight, a follow-up pass
verifies them, backing off while tasks keep failing, :mod:`rpcdaemon.runtime.work`); the
model is judged with our monotonic clock (deaths, returns and new agents call for a pass
at once, :mod:`rpcdaemon.runtime.judge`); the schedule (:mod:`rpcdaemon.core.schedule`)
says whether a pass is due. A pass's Neutron read (the snapshot, or first the cheap
inventory of a periodic resync) runs on the reader thread (:mod:`rpcdaemon.runtime.reader`)
while the reactor keeps ticking; once it is done, the reactor plans, guards and *hands
tasks to the executor pool* on its own thread (:mod:`rpcdaemon.runtime.passes`), and does
not wait for them either.

While a read or a plan runs, heartbeats are still judged, a death is still declared on
time, ``/healthz`` and the watchdog still see the loop. Triggers that arrive during a read
wait for the next pass, which starts as soon as that read is planned: the pass of the
read in flight plans with verdicts taken from the model at *plan* time (a death declared
during the read is planned at once), but its view was read before that death (the API's
alive flag and the bindings may be older), so the death gets its own pass from a fresh
snapshot right after.

A pass that fails is logged and the next one waits for the backoff it announces. A tick
that raises is logged and counted (``tick_failures`` in the status); the loop goes on.
Hooks: ``on_tick`` (the systemd watchdog) after every tick and at least every
:data:`FEED_INTERVAL` seconds while the loop runs, but no longer once
:data:`~rpcdaemon.core.status.MAX_TICK_FAILURES` ticks in a row failed (systemd then
restarts us, as ``/healthz`` fails); ``on_ready`` once, after the first successful
snapshot (READY=1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Plan
from rpcdaemon.core.detection import DetectionStatus, DetectorPolicy, HostChange
from rpcdaemon.core.errors import RpcdaemonError
from rpcdaemon.core.events import BusMessage, Heartbeat, ResourceNotification
from rpcdaemon.core.ids import AgentId
from rpcdaemon.core.liveness import BusState, LivenessModel, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.schedule import PassSchedule
from rpcdaemon.core.status import MAX_TICK_FAILURES, StatusSnapshot
from rpcdaemon.core.view import ClusterView, Inventory
from rpcdaemon.plugins.base import Planner
from rpcdaemon.runtime.executor import Executor
from rpcdaemon.runtime.intake import Intake, notifications_of
from rpcdaemon.runtime.judge import Judge, RoleWatch
from rpcdaemon.runtime.nodes import NodeWatch
from rpcdaemon.runtime.passes import Pass
from rpcdaemon.runtime.probing import ProbeFunction, ProbeRunner
from rpcdaemon.runtime.reader import Done, Reads
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.runtime.status import build_status
from rpcdaemon.runtime.work import Work

logger = logging.getLogger(__name__)

FEED_INTERVAL = 1.0
"""At most this long between two loop rounds (and ``on_tick`` calls), whatever the
``check_interval``: the watchdog and ``/healthz`` see the loop every second."""


class Reactor:
    """Owner of the liveness model (through its intake). ``submit`` and
    ``connection_changed`` are thread-safe; everything else runs on the thread that calls
    :meth:`run` (or :meth:`tick`, in tests)."""

    def __init__(
        self,
        *,
        planners: Sequence[Planner],
        policies: Mapping[str, Policy],
        neutron: NeutronPort,
        executor: Executor,
        stop: threading.Event,
        is_leader: Callable[[], bool] = lambda: True,
        paused: Callable[[], str | None] = lambda: None,
        dry_run: bool = False,
        check_interval: float = 1.0,
        resync_interval: float = 60.0,
        full_resync_interval: float = 1800.0,
        on_pass: Callable[[PassReport], None] | None = None,
        on_transition: Callable[[Transition], None] | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        inline_reads: bool = False,
        max_tick_failures: int = MAX_TICK_FAILURES,
        detection: DetectorPolicy | None = None,
        probe: ProbeFunction | None = None,
        on_host_change: Callable[[HostChange], None] | None = None,
    ) -> None:
        self._planners = tuple(planners)
        policies = dict(policies)
        for planner in self._planners:
            policies.setdefault(planner.agent_type, Policy())
        self._policies = policies
        self._executor = executor
        self._stop = stop
        self._roles = RoleWatch(is_leader, paused)
        self._check_interval = check_interval
        self._full_resync_interval = full_resync_interval
        self._on_pass = on_pass
        self._on_tick = on_tick
        self._on_ready = on_ready
        self._clock = clock
        self.intake = Intake(
            policies=policies,
            notifications=notifications_of(planners),
            clock=clock,
            wall=wall,
            detection=detection,
        )
        self.nodes = NodeWatch(
            self.intake,
            agent_types=(p.agent_type for p in self._planners),
            probe=probe,
            on_host_change=on_host_change,
            clock=clock,
        )
        self._judging = Judge(
            intake=self.intake,
            policies=policies,
            agent_types=(p.agent_type for p in self._planners),
            on_transition=on_transition,
            nodes=self.nodes,
        )
        self._pass = Pass(
            planners=self._planners,
            policies=policies,
            neutron=neutron,
            executor=executor,
            intake=self.intake,
            is_leader=is_leader,
            paused=paused,
            dry_run=dry_run,
            on_plan=on_plan,
            clock=clock,
        )
        self.schedule = PassSchedule(resync_interval=resync_interval)
        # Neutron reads off this thread (inline: on it, for hand-driven tests)
        self._reads = Reads(on_done=self.intake.wake, inline=inline_reads)
        self._read_started = 0.0  # our clock when the read in flight started
        self._read_at = 0.0  # the tick's ``now`` then
        self._max_tick_failures = max_tick_failures
        self._last_pass: PassReport | None = None  # the last good one (with a view)
        self._last_failure: PassReport | None = None  # a failed pass since then
        self._last_tick: float | None = None
        self._work = Work(executor, clock)  # handed over, until all of it is done
        self._withheld_logged: float | None = None
        self._ready = False
        self._tick_failures = 0
        self._last_tick_error: str | None = None
        executor.set_agent_is_back(self.intake.agent_is_back)
        executor.set_on_finished(self.intake.wake)
        executor.set_node_dead(self.nodes.is_dead)
        # checked before every task and retry: losing the lead or a pause stops a plan in flight
        executor.set_is_leader(lambda: is_leader() and paused() is None)

    # -- thread-safe inputs -------------------------------------------------------------

    def submit(self, message: BusMessage) -> Heartbeat | ResourceNotification | None:
        """Consumer thread: keep only what the model or the planners need; returns it."""
        return self.intake.submit(message)

    def connection_changed(self, connected: bool) -> None:
        self.intake.connection_changed(connected)

    # -- read-only views for metrics and tests ------------------------------------------

    @property
    def model(self) -> LivenessModel:
        return self.intake.model

    @property
    def bus(self) -> BusState:
        return self.intake.bus

    @property
    def heartbeats(self) -> int:
        return self.intake.heartbeats

    @property
    def detection(self) -> DetectionStatus:
        """Any thread: the node-death detector's state at the last tick."""
        return self.nodes.status

    @property
    def probes(self) -> ProbeRunner | None:
        return self.nodes.probes

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def last_pass(self) -> PassReport | None:
        """The last *good* pass (with a view): status and metrics keep showing it while
        passes fail (the failures go to ``on_pass`` and :attr:`last_failure`)."""
        return self._last_pass

    @property
    def last_failure(self) -> PassReport | None:
        """The last failed pass, if none succeeded since (its ``error`` says why)."""
        return self._last_failure

    @property
    def reading(self) -> bool:
        """A Neutron read of a pass is in flight."""
        return self._reads.busy

    @property
    def last_api_success(self) -> float | None:
        return self._pass.last_api_success

    def status(
        self,
        *,
        is_leader: bool,
        coordination_connected: bool,
        dry_run: bool,
        watched: tuple[str, ...] = (),
        dead: tuple[str, ...] = (),
    ) -> StatusSnapshot:
        """Any thread: a snapshot for /metrics and /healthz, from the last pass."""
        return build_status(
            self._last_pass,
            policies=self._policies,
            bus=self.intake.bus,
            now=self._clock(),
            last_tick=self._last_tick,
            last_api_success=self._pass.last_api_success,
            pending=self._executor.in_flight,
            is_leader=is_leader,
            coordination_connected=coordination_connected,
            dry_run=dry_run,
            tick_failures=self._tick_failures,
            last_tick_error=self._last_tick_error,
            watched_threads=watched,
            dead_threads=dead,
            unknown_agents=self.intake.model.unknown_count,
        )

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        logger.info(
            "reactor started: planners %s, check every %gs, resync every %gs",
            ", ".join(p.name for p in self._planners) or "none",
            self._check_interval,
            self.schedule.resync_interval,
        )
        next_tick = self._clock()
        fed: float | None = None
        while not self._stop.is_set():
            now = self._clock()
            wait = min(next_tick - now, self.schedule.wake(now, self._check_interval))
            self.intake.drain(max(0.0, min(wait, FEED_INTERVAL)))
            if self._stop.is_set():
                break
            now = self._clock()
            ticked = now >= next_tick or self._urgent(now)
            if ticked:
                next_tick = now + self._check_interval
                self._tick_guarded(now)
            if self._tick_failures >= self._max_tick_failures:
                continue  # no WATCHDOG=1: systemd restarts a reactor whose ticks all fail
            if ticked or fed is None or now - fed >= FEED_INTERVAL:
                fed = self._last_tick = now  # the loop is alive (for /healthz)
                if self._on_tick is not None:
                    try:
                        self._on_tick()
                    except Exception:
                        logger.exception("tick hook failed")
        self.nodes.stop()
        logger.info("reactor stopped")

    def _urgent(self, now: float) -> bool:
        """Something is due before the next ``check_interval`` tick: a notification, a
        pass the schedule says is due, a finished read or finished tasks."""
        woken, self.intake.woken = self.intake.woken, False
        if woken or self.intake.has_triggers():
            return True
        return not self._reads.busy and bool(self.schedule.due(now))

    def _tick_guarded(self, now: float) -> None:
        try:
            self.tick(now)
        except Exception as exc:  # a bug must not end the loop that keeps services alive
            self._tick_failures += 1
            self._last_tick_error = repr(exc)
            logger.exception("reactor tick failed (%d in a row); carrying on", self._tick_failures)
            if self._tick_failures == self._max_tick_failures:
                logger.error(
                    "%d reactor ticks failed in a row: no longer feeding the watchdog",
                    self._tick_failures,
                )
        else:
            self._tick_failures = 0

    def pump(self) -> int:
        """Apply every input waiting in the intake without blocking; returns how many."""
        return self.intake.pump()

    def tick(self, now: float) -> PassReport | None:
        """Collect finished work, judge liveness; plan from a finished read, or start the
        read of a pass that is due. Returns the report of a pass planned in this tick."""
        self._last_tick = now
        self.schedule = self.schedule.call(*self._roles.note())
        self.schedule = self._work.collect(now, self.schedule)
        self._judge(now)
        self.schedule = self.schedule.notifications(*self.intake.take_triggers())
        report = self._take_read(now)
        if report is None and self._node_death_due(now):
            return self._plan_now(now)  # even while a read is in flight: seconds count
        if report is not None or self._reads.busy:
            return report  # triggers that came meanwhile wait for the next pass
        return self._start(now)

    def _node_death_due(self, now: float) -> bool:
        """A node death waits for no backoff: its plan needs no read (``pending``, not
        ``due``), and a failed read must not delay it."""
        return "node-dead" in self.schedule.pending(now) and self._pass.view is not None

    def _start(self, now: float, *, cheap: bool = True) -> PassReport | None:
        """Start the read of the pass due at ``now``, if any (planned when it is done)."""
        triggers = self.schedule.due(now)
        if not triggers:
            self._log_withheld(now)
            return None
        self._read_started, self._read_at = self._clock(), now
        if (
            cheap
            and triggers == {"resync"}
            and self._pass.can_skip_resync(now, self._full_resync_interval)
        ):
            self._reads.start("inventory", "resync", self._pass.read_inventory)
        else:
            self.schedule = self.schedule.started(now)
            self._withheld_logged = None
            self._pass.prepare()
            self._reads.start("snapshot", ",".join(sorted(triggers)), self._pass.read_snapshot)
        return self._take_read(now)  # done already when inline

    def _plan_now(self, now: float) -> PassReport:
        """A node death: plan at once from the last snapshot (reading a fresh one costs
        seconds, and the dead node's bindings cannot have changed since), even while a
        read is in flight. Only the ``node-dead`` trigger is served: the others wait for a
        pass with a fresh snapshot. The executor re-checks each source before its move; the
        follow-up pass verifies from a fresh snapshot."""
        self.schedule = self.schedule.served("node-dead")
        self._pass.prepare(add=self._reads.busy)
        view, taken = self._pass.view, self._pass.last_full
        read_at = now if taken is None else taken
        logger.info(
            "node death: planning from the snapshot of %.1fs ago (a fresh one verifies after)",
            now - read_at,
        )
        done: Done[object] = Done("snapshot", "node-dead", view, None)
        report = self._finish(done, now, started=self._clock(), read_at=read_at)
        if self._reads.busy:  # the read in flight predates these tasks: it must skip them
            self._pass.prepare(add=True)
        return report

    def _take_read(self, now: float) -> PassReport | None:
        done = self._reads.take()
        if done is None:
            return None
        if done.kind == "inventory":
            if done.error is not None:
                logger.debug("cheap resync failed (%s): doing a full one", done.error)
            elif isinstance(done.value, Inventory) and self._pass.nothing_changed(done.value):
                if self.schedule.due(now) == {"resync"}:  # nothing else came meanwhile
                    self.schedule = self.schedule.resync_skipped(now)
                    return None
            return self._start(now, cheap=False)
        return self._finish(done, now, started=self._read_started, read_at=self._read_at)

    def _finish(
        self, done: Done[object], now: float, *, started: float, read_at: float
    ) -> PassReport:
        """Plan from a read snapshot, keep the report, tell the observer."""
        report = self._planned(done, now, started, read_at)
        if report.view is not None:
            self._last_pass, self._last_failure = report, None
        else:
            self._last_failure = report
        if self._on_pass is not None:
            try:
                self._on_pass(report)
            except Exception:
                logger.exception("pass observer failed")
        return report

    def _planned(
        self, done: Done[object], now: float, started: float, read_at: float
    ) -> PassReport:
        """Plan, guard and hand over from a finished snapshot read (or report its error)."""
        trigger = done.tag
        try:
            if done.error is not None:
                raise done.error
            if not isinstance(done.value, ClusterView):
                raise TypeError(f"the snapshot read returned {type(done.value).__name__}")
            outcome = self._pass.plan(
                trigger,
                now,
                frozenset(self._judging.dead_keys),
                done.value,
                started=started,
                read_at=read_at,
            )
        except Exception as exc:
            self.schedule, delay = self.schedule.failed(now)
            message = f"pass ({trigger}) failed: {exc}"
            if isinstance(exc, RpcdaemonError):
                logger.warning("%s; the next pass in %.0fs, not sooner", message, delay)
            else:
                logger.error("%s; the next pass in %.0fs, not sooner", message, delay, exc_info=exc)
            return PassReport(trigger, started, self._clock(), None, error=message)
        if not self._ready:
            self._ready = True
            if self._on_ready is not None:
                try:
                    self._on_ready()
                except Exception:
                    logger.exception("ready hook failed")
        self.schedule = self.schedule.passed(
            now, recount=outcome.recount, awaiting_confirmation=outcome.awaiting_confirmation
        )
        self._work.handed(trigger, started, handed=outcome.report.handed, deferred=outcome.deferred)
        return outcome.report

    def _judge(self, now: float) -> None:
        triggers, newcomers = self._judging.judge(now, have_view=self._pass.view is not None)
        self.schedule = self.schedule.call(*triggers)
        if newcomers:
            self.schedule = self.schedule.newcomers()

    def _log_withheld(self, now: float) -> None:
        """Once per backoff: which triggers wait for the end of the announced backoff."""
        until = self.schedule.held_until(now)
        pending = self.schedule.pending(now)
        if until is None or not pending or self._withheld_logged == until:
            return
        self._withheld_logged = until
        logger.warning(
            "pass wanted (%s) but the last one failed: it runs in %.1fs, at the end of the "
            "backoff (a death waits for it too)",
            ",".join(sorted(pending)),
            until - now,
        )

    def agent_is_back(self, agent_id: AgentId, since: float) -> bool:
        """Any thread: has ``agent_id`` sent a heartbeat after ``since``?"""
        return self.intake.agent_is_back(agent_id, since)
