"""The reactor: one thread that judges liveness and decides when to pass; never acts itself.

Each tick (every ``check_interval``, sooner when input arrives or a follow-up is due):

1. inputs waiting on the intake are applied to the model (heartbeats, notifications,
   bus connect/disconnect);
2. results of finished tasks are collected; when nothing is in flight any more, a
   follow-up pass verifies them from fresh state (backing off while tasks keep failing);
3. the model is judged with our monotonic clock: deaths, returns and new agents call for
   a pass at once;
4. the pass schedule (:mod:`rpcdaemon.core.schedule`, pure) says whether a pass is due;
   the periodic resync first tries the cheap read (:meth:`Pass.nothing_changed`);
5. the pass (:mod:`rpcdaemon.runtime.passes`) snapshots, plans, guards and *hands tasks
   to the executor pool*: it does not wait for them. While a plan runs, heartbeats are
   still judged, a second death still gets its pass, and ``/healthz`` still sees ticks.

A pass that fails is logged and the next one waits for the backoff it announces. A tick
that raises is logged and counted (``tick_failures`` in the status); the loop goes on.
Hooks: ``on_tick`` after every tick (the systemd watchdog), ``on_ready`` once, after the
first successful snapshot (READY=1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Plan
from rpcdaemon.core.errors import RpcdaemonError
from rpcdaemon.core.events import BusMessage, Heartbeat, ResourceNotification
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.liveness import AgentKey, BusState, LivenessModel, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.schedule import PassSchedule
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.plugins.base import Planner
from rpcdaemon.runtime.executor import Executor, Outcome, TaskResult
from rpcdaemon.runtime.intake import Intake, notifications_of
from rpcdaemon.runtime.passes import Pass
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.runtime.status import build_status

logger = logging.getLogger(__name__)

NEWCOMERS_LOG_INTERVAL = 60.0
"""Seconds between two log lines about agents heard on the bus that Neutron did not list."""


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
    ) -> None:
        self._planners = tuple(planners)
        policies = dict(policies)
        for planner in self._planners:
            policies.setdefault(planner.agent_type, Policy())
        self._policies = policies
        self._executor = executor
        self._stop = stop
        self._is_leader = is_leader
        self._paused = paused
        self._was_paused: str | None = None
        self._check_interval = check_interval
        self._full_resync_interval = full_resync_interval
        self._on_pass = on_pass
        self._on_transition = on_transition
        self._on_tick = on_tick
        self._on_ready = on_ready
        self._clock = clock
        self.intake = Intake(
            policies=policies, notifications=notifications_of(planners), clock=clock, wall=wall
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
        self._last_pass: PassReport | None = None
        self._was_leader: bool | None = None
        self._last_tick: float | None = None
        self._dead_keys: set[AgentKey] = set()
        self._work: list[TaskResult] = []  # finished since the executor was last idle
        self._deferred = False  # the last pass's cap left work behind
        self._work_triggers: set[str] = set()  # triggers of the passes that handed it over
        self._work_since = 0.0  # when the first of those passes began
        self._withheld_logged: float | None = None
        self._newcomers = 0  # unknown agents heard since the last newcomers log line
        self._newcomers_logged: float | None = None
        self._ready = False
        self._tick_failures = 0
        self._last_tick_error: str | None = None
        executor.set_agent_is_back(self.intake.agent_is_back)
        executor.set_on_finished(self.intake.wake)
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
    def executor(self) -> Executor:
        return self._executor

    @property
    def last_pass(self) -> PassReport | None:
        return self._last_pass

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
        lag = self.intake.bus.lag
        snapshot = build_status(
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
        )
        return replace(
            snapshot,
            tick_failures=self._tick_failures,
            last_tick_error=self._last_tick_error,
            watched_threads=watched,
            dead_threads=dead,
            consumer_lag_messages=lag.messages if lag is not None else None,
            consumer_lag_seconds=lag.seconds if lag is not None else None,
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
        while not self._stop.is_set():
            self.intake.drain(self.schedule.wake(self._clock(), self._check_interval))
            if self._stop.is_set():
                break
            try:
                self.tick(self._clock())
            except Exception as exc:  # a bug must not end the loop that keeps services alive
                self._tick_failures += 1
                self._last_tick_error = repr(exc)
                logger.exception(
                    "reactor tick failed (%d in a row); carrying on", self._tick_failures
                )
                self._stop.wait(self._check_interval)
            else:
                self._tick_failures = 0
            if self._on_tick is not None:
                try:
                    self._on_tick()
                except Exception:
                    logger.exception("tick hook failed")
        logger.info("reactor stopped")

    def pump(self) -> int:
        """Apply every input waiting in the intake without blocking; returns how many."""
        return self.intake.pump()

    def tick(self, now: float) -> PassReport | None:
        """Collect finished work, judge liveness, run a pass if one is due (its report)."""
        self._last_tick = now
        self._note_leadership()
        self._collect(now)
        self._judge(now)
        self.schedule = self.schedule.notifications(*self.intake.take_triggers())
        triggers = self.schedule.due(now)
        if not triggers:
            self._log_withheld(now)
            return None
        if triggers == {"resync"} and self._pass.nothing_changed(now, self._full_resync_interval):
            self.schedule = self.schedule.resync_skipped(now)
            return None
        trigger = ",".join(sorted(triggers))
        self.schedule = self.schedule.started(now)
        self._withheld_logged = None
        report = self._run_pass(trigger, now)
        self._last_pass = report
        if self._on_pass is not None:
            try:
                self._on_pass(report)
            except Exception:
                logger.exception("pass observer failed")
        return report

    def _run_pass(self, trigger: str, now: float) -> PassReport:
        started = self._clock()
        try:
            outcome = self._pass.run(trigger, now, frozenset(self._dead_keys))
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
        self._deferred = self._deferred or outcome.deferred
        if outcome.report.handed:
            if not self._work_triggers and not self._work:
                self._work_since = started
            self._work_triggers.update(trigger.split(","))
        return outcome.report

    def _collect(self, now: float) -> None:
        """Finished tasks; once nothing is in flight, schedule the pass that verifies them."""
        self._work.extend(self._executor.take_finished())
        if not self._work or self._executor.in_flight:
            return
        work, self._work = self._work, []
        triggers, self._work_triggers = ",".join(sorted(self._work_triggers)) or "?", set()
        failed = sum(1 for r in work if r.outcome is Outcome.FAILED)
        self.schedule, delay = self.schedule.work_done(
            now, failed=failed > 0, deferred=self._deferred
        )
        self._deferred = False
        logger.info(
            "pass (%s): %d task(s) run, %d ok, %d failed, %d skipped in %.2fs; the next pass %s",
            triggers,
            len(work),
            sum(1 for r in work if r.outcome in (Outcome.OK, Outcome.ALREADY)),
            failed,
            sum(1 for r in work if r.outcome is Outcome.SKIPPED),
            self._clock() - self._work_since,
            f"re-plans in {delay:.1f}s (sooner if something else calls for one)"
            if failed
            else f"verifies in {delay:.1f}s",
        )

    def _judge(self, now: float) -> None:
        model, bus = self.intake.model, self.intake.bus
        # the agents of the last snapshot, so that one never heard of is judged too
        known = self.intake.known_keys()
        for agent_type in sorted({p.agent_type for p in self._planners}):
            expected = [k for k in known if k.agent_type == agent_type]
            changes = model.evaluate(
                now, self._policies[agent_type], bus, agent_type=agent_type, expected=expected
            )
            for change in changes:
                self._log_transition(change)
                if change.new is Liveness.DEAD:
                    self._dead_keys.add(change.key)
                    self.schedule = self.schedule.call("agent-dead")
                else:
                    if change.new is Liveness.ALIVE and change.old is Liveness.DEAD:
                        # a returning agent can close a breaker or take work back
                        self.schedule = self.schedule.call("agent-back")
                    self._dead_keys.discard(change.key)
        newcomers = model.take_newcomers()
        if newcomers and self._pass.view is not None:
            # agents Neutron did not list at the last snapshot: a replacement node? (the
            # schedule rate-limits these passes; an open bus may carry noise)
            self._newcomers += newcomers
            last = self._newcomers_logged
            if last is None or now - last >= NEWCOMERS_LOG_INTERVAL:
                # one line per interval, never one per host: a flood of forged hosts must
                # not flood the log (issue 9)
                logger.info(
                    "%d agent(s) unknown to the last snapshot heard on the bus%s",
                    self._newcomers,
                    "" if last is None else f" in the last {now - last:.0f}s",
                )
                self._newcomers = 0
                self._newcomers_logged = now
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

    def _log_transition(self, change: Transition) -> None:
        if change.new is Liveness.DEAD:
            logger.warning("agent %s is DOWN (%s)", change.key, change.reason)
        elif change.new is Liveness.ALIVE and change.old is not Liveness.UNKNOWN:
            logger.warning("agent %s is UP again (%s)", change.key, change.reason)
        elif change.new is Liveness.ALIVE:
            logger.info("agent %s is up (%s)", change.key, change.reason)
        else:
            logger.info("agent %s: %s", change.key, change.describe())
        if self._on_transition is not None:
            try:
                self._on_transition(change)
            except Exception:
                logger.exception("transition observer failed")

    def _note_leadership(self) -> None:
        leader = self._is_leader()
        if leader != self._was_leader:
            if leader:
                logger.info("this instance is the leader: it acts")
                self.schedule = self.schedule.call("leadership")
            else:
                logger.info("this instance is a standby: it observes and plans, never acts")
            self._was_leader = leader
        paused = self._paused()
        if paused != self._was_paused:
            if paused is not None:
                logger.warning("automatic moves %s: observing and planning only", paused)
            elif self._was_paused is not None:
                logger.warning("automatic moves resumed")
                self.schedule = self.schedule.call("resumed")  # act on what waited, now
            self._was_paused = paused

    def agent_is_back(self, agent_id: AgentId, since: float) -> bool:
        """Any thread: has ``agent_id`` sent a heartbeat after ``since``?"""
        return self.intake.agent_is_back(agent_id, since)
