"""The reactor: one thread that owns the liveness model, plans, and hands plans to the executor.

Inputs arrive on an inbox (heartbeats and notifications decoded on the consumer thread,
bus connect/disconnect changes). Every ``check_interval`` the model is evaluated with our
monotonic clock; a pass (one Neutron snapshot shared by every planner, a plan per planner,
the gates, the executor) runs:

* at once when an agent is declared dead, or comes back from dead (not at the next resync);
* when a DHCP-relevant notification arrives (network/subnet create, update, delete);
* every ``resync_interval`` (covers clouds without notifications and missed events): first
  a cheap read of agents, routers and networks (a constant number of calls); the bindings
  (one call per agent) only when that read, or the hosted counts agents report on the bus,
  differ from the last snapshot, and at least every ``full_resync_interval``;
* at once when an agent never seen before starts reporting (a replacement node);
* shortly after a pass that changed something or left work behind (until converged);
* at start.

Idle ticks make no API calls. Gates, in order: the planners' own guards (breaker, cap),
leadership (a standby only logs what it would do), dry-run (print the plan, change
nothing). An unexpected error in a pass is logged and the next pass is delayed along a
capped backoff: the reactor never dies of it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rpcdaemon.adapters.codec import heartbeat_from, notification_from
from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Plan
from rpcdaemon.core.errors import RpcdaemonError
from rpcdaemon.core.events import BusMessage, Heartbeat, ResourceNotification
from rpcdaemon.core.guards import BreakerState
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.liveness import AgentKey, BusState, LivenessModel, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.core.view import ClusterView, what_changed
from rpcdaemon.plugins.base import Planner
from rpcdaemon.runtime.executor import Executor, Outcome, TaskResult
from rpcdaemon.runtime.planning import gate, plan_one
from rpcdaemon.runtime.report import PassReport, build_status

logger = logging.getLogger(__name__)

#: notifications that change which networks need DHCP (DHCPAgent reacts at once)
DHCP_EVENTS = frozenset(
    {
        "network.create.end",
        "network.delete.end",
        "network.update.end",
        "subnet.create.end",
        "subnet.update.end",
        "subnet.delete.end",
    }
)
ERROR_BACKOFFS: tuple[float, ...] = (1, 1, 2, 3, 5, 8, 13, 21, 30)
FOLLOW_UP_DELAY = 0.5
"""Seconds between a pass that changed something and the pass that verifies it."""


@dataclass(frozen=True)
class _Connection:
    connected: bool
    at: float


class Reactor:
    """Single owner of the liveness model. ``submit`` and ``connection_changed`` are
    thread-safe; everything else runs on the thread that calls :meth:`run`."""

    def __init__(
        self,
        *,
        planners: Sequence[Planner],
        policies: Mapping[str, Policy],
        neutron: NeutronPort,
        executor: Executor,
        stop: threading.Event,
        is_leader: Callable[[], bool] = lambda: True,
        dry_run: bool = False,
        check_interval: float = 1.0,
        resync_interval: float = 60.0,
        full_resync_interval: float = 1800.0,
        on_pass: Callable[[PassReport], None] | None = None,
        on_transition: Callable[[Transition], None] | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._planners = tuple(planners)
        self._policies = dict(policies)
        for planner in self._planners:
            self._policies.setdefault(planner.agent_type, Policy())
        self._neutron = neutron
        self._executor = executor
        self._stop = stop
        self._is_leader = is_leader
        self._dry_run = dry_run
        self._check_interval = check_interval
        self._resync_interval = resync_interval
        self._full_resync_interval = full_resync_interval
        self._last_full: float | None = None  # when the last full snapshot was taken
        self._on_pass = on_pass
        self._on_transition = on_transition
        self._on_plan = on_plan
        self._clock = clock
        self._wall = wall
        self._inbox: queue.SimpleQueue[Heartbeat | ResourceNotification | _Connection] = (
            queue.SimpleQueue()
        )
        self.model = LivenessModel()
        self._bus = BusState(connected=False)
        self._view: ClusterView | None = None
        self._triggers: set[str] = {"startup"}
        self._next_resync = 0.0
        self._next_follow_up: float | None = None
        self._errors = 0
        self._last_pass: PassReport | None = None
        self._last_api_success: float | None = None
        self._was_leader: bool | None = None
        self.heartbeats = 0
        self._last_tick: float | None = None
        self._pending = 0  # tasks handed to the executor and not finished (for metrics)
        self._failing_passes = 0  # consecutive passes that left a failed task behind
        # Written by the consumer thread, read by executor threads: the latest receive time
        # per agent, so that a move stops as soon as its source agent speaks again.
        self._seen_lock = threading.Lock()
        self._seen: dict[AgentKey, float] = {}
        self._keys_by_id: dict[AgentId, AgentKey] = {}
        self._pass_started = 0.0
        self._dead_keys: set[AgentKey] = set()
        self._unconfirmed_polls = 0
        executor.set_agent_is_back(self.agent_is_back)
        executor.set_is_leader(is_leader)

    # -- thread-safe inputs -------------------------------------------------------------

    def submit(self, message: BusMessage) -> Heartbeat | ResourceNotification | None:
        """Consumer thread: keep only what the model or the planners need; returns it."""
        heartbeat = heartbeat_from(message, received_wall=self._wall())
        if heartbeat is not None:
            if heartbeat.agent_type not in self._policies:
                return None  # an OVS or metadata agent: none of our planners' business
            with self._seen_lock:
                self._seen[AgentKey.of(heartbeat)] = heartbeat.received_at
            self._inbox.put(heartbeat)
            return heartbeat
        notification = notification_from(message)
        if notification is not None and notification.event_type in DHCP_EVENTS:
            self._inbox.put(notification)
            return notification
        return None

    def agent_is_back(self, agent_id: AgentId) -> bool:
        """Any thread: has ``agent_id`` sent a heartbeat since the current pass began?"""
        key = self._keys_by_id.get(agent_id)
        if key is None:
            return False
        with self._seen_lock:
            seen = self._seen.get(key)
        return seen is not None and seen > self._pass_started

    def connection_changed(self, connected: bool) -> None:
        self._inbox.put(_Connection(connected, self._clock()))

    # -- read-only views for metrics and tests ------------------------------------------

    @property
    def bus(self) -> BusState:
        return self._bus

    @property
    def last_pass(self) -> PassReport | None:
        return self._last_pass

    @property
    def last_api_success(self) -> float | None:
        return self._last_api_success

    def status(
        self, *, is_leader: bool, coordination_connected: bool, dry_run: bool
    ) -> StatusSnapshot:
        """Any thread: a snapshot for /metrics and /healthz, from the last pass."""
        return build_status(
            self._last_pass,
            policies=self._policies,
            bus=self._bus,
            now=self._clock(),
            last_tick=self._last_tick,
            last_api_success=self._last_api_success,
            pending=self._pending,
            is_leader=is_leader,
            coordination_connected=coordination_connected,
            dry_run=dry_run,
        )

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        logger.info(
            "reactor started: planners %s, check every %gs, resync every %gs%s",
            ", ".join(p.name for p in self._planners) or "none",
            self._check_interval,
            self._resync_interval,
            " (dry run)" if self._dry_run else "",
        )
        while not self._stop.is_set():
            wait = self._check_interval
            if self._next_follow_up is not None:
                wait = max(0.0, min(wait, self._next_follow_up - self._clock()))
            self._drain(wait)
            if self._stop.is_set():
                break
            try:
                self.tick(self._clock())
            except Exception:  # a bug must not end the loop that keeps services alive
                logger.exception("reactor tick failed; carrying on")
                self._stop.wait(self._check_interval)
        logger.info("reactor stopped")

    def pump(self) -> int:
        """Apply every input waiting in the inbox without blocking; returns how many."""
        count = 0
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return count
            self._apply(item)
            count += 1

    def _drain(self, timeout: float) -> None:
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        self._apply(item)
        self.pump()

    def _apply(self, item: Heartbeat | ResourceNotification | _Connection) -> None:
        if isinstance(item, Heartbeat):
            self.heartbeats += 1
            policy = self._policies.get(item.agent_type, Policy())
            skew = self.model.observe(item, policy=policy)
            if skew is not None:
                (logger.warning if skew.skewed else logger.info)("%s", skew.describe())
        elif isinstance(item, ResourceNotification):
            logger.debug("notification %s %s", item.event_type, item.resource_id)
            self._triggers.add(f"notification:{item.event_type}")
        else:
            self._set_connection(item)

    def _set_connection(self, change: _Connection) -> None:
        if change.connected:
            self._bus = BusState(connected=True, listening_since=change.at)
            wait = max((p.agent_down_time for p in self._policies.values()), default=0.0)
            logger.info(
                "listening on the bus; no agent is declared dead by our clock for %.0fs "
                "(until then Neutron's alive flag is the source)",
                wait,
            )
        else:
            self._bus = BusState(connected=False)
            logger.warning("lost the bus: no agent will be declared dead until we are back")

    def tick(self, now: float) -> PassReport | None:
        """Evaluate liveness; run a pass if anything calls for one. Returns its report."""
        self._last_tick = now
        self._note_leadership()
        # the agents of the last snapshot (keys set with it), so one never heard of is judged too
        known = frozenset(self._keys_by_id.values()) if self._view is not None else None
        for agent_type in {p.agent_type for p in self._planners}:
            expected = [k for k in known or () if k.agent_type == agent_type]
            changes = self.model.evaluate(
                now, self._policies[agent_type], self._bus, agent_type=agent_type, expected=expected
            )
            for change in changes:
                self._log_transition(change)
                if (
                    change.new is Liveness.ALIVE
                    and change.old is Liveness.UNKNOWN
                    and known is not None
                    and change.key not in known
                ):
                    self._triggers.add("agent-new")  # e.g. a replacement DHCP agent: fill it now
                if change.new is Liveness.DEAD:
                    self._dead_keys.add(change.key)
                    self._triggers.add("agent-dead")
                else:
                    if change.new is Liveness.ALIVE and change.old is Liveness.DEAD:
                        # a returning agent can close a breaker or take work back: plan now,
                        # not at the next resync
                        self._triggers.add("agent-back")
                    self._dead_keys.discard(change.key)
        if now >= self._next_resync:
            self._triggers.add("resync")
        if self._next_follow_up is not None and now >= self._next_follow_up:
            self._triggers.add("follow-up")
        if not self._triggers:
            return None
        if self._triggers == {"resync"} and self._nothing_changed(now):
            self._triggers.clear()
            self._next_resync = now + self._resync_interval
            return None
        trigger = ",".join(sorted(self._triggers))
        self._triggers.clear()
        self._next_follow_up = None
        report = self._pass(trigger, now)
        self._last_pass = report
        if self._on_pass is not None:
            try:
                self._on_pass(report)
            except Exception:
                logger.exception("pass observer failed")
        return report

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
                self._triggers.add("leadership")
            else:
                logger.info("this instance is a standby: it observes and plans, never acts")
            self._was_leader = leader

    # -- one pass -----------------------------------------------------------------------

    def _pass(self, trigger: str, now: float) -> PassReport:
        started = self._clock()
        try:
            view = self._neutron.snapshot(
                routers=any(p.agent_type == "L3 agent" for p in self._planners),
                networks=any(p.agent_type == "DHCP agent" for p in self._planners),
            )
        except Exception as exc:
            return self._failed(trigger, started, now, f"snapshot failed: {exc}", exc)
        self._last_api_success = self._clock()
        self._view = view
        self._last_full = now
        self._pass_started = started
        self._keys_by_id = {a.id: AgentKey.of(a) for a in view.agents.values()}
        plans: list[Plan] = []
        results: list[TaskResult] = []
        breakers: list[BreakerState] = []
        verdicts: dict[AgentId, Liveness] = {}
        executed = False
        held_for_overdue = False
        try:
            for planner in self._planners:
                step = plan_one(
                    planner, view, self.model, self._policies[planner.agent_type], self._bus, now
                )
                verdicts.update(step.verdicts)
                breakers.append(step.breaker)
                held_for_overdue = held_for_overdue or step.held_for_overdue
                plan = step.plan
                plans.append(plan)
                if self._on_plan is not None:
                    self._on_plan(plan)
                if not plan.tasks:
                    continue
                if not gate(plan, dry_run=self._dry_run, is_leader=self._is_leader()):
                    continue
                self._pending = len(plan.tasks)
                try:
                    outcome = self._executor.run(plan)
                finally:
                    self._pending = 0
                results.extend(outcome)
                executed = True
        except Exception as exc:
            return self._failed(trigger, started, now, f"pass failed: {exc}", exc)
        self._errors = 0
        self._next_resync = now + self._resync_interval
        unfinished = any(r.outcome is Outcome.FAILED for r in results)
        capped = any(p.deferred for p in plans)
        if unfinished:
            # Something failed after its retries: look again, but back off while it keeps
            # failing (a 403 will not heal by itself; a full pass every 0.5 s would not help).
            delay = ERROR_BACKOFFS[min(self._failing_passes, len(ERROR_BACKOFFS) - 1)]
            self._failing_passes += 1
            self._next_follow_up = self._clock() + delay
        elif capped and executed:
            self._failing_passes = 0
            self._next_follow_up = self._clock()  # the rest of the work: no reason to wait
        elif executed or held_for_overdue:
            # verify what we did (or re-count the dying agents) from fresh state
            self._failing_passes = 0
            self._next_follow_up = self._clock() + FOLLOW_UP_DELAY
        elif self._awaiting_confirmation(view, verdicts):
            # Dead by our clock, not yet by the API's: look again soon, backing off.
            delay = min(2.0**self._unconfirmed_polls, self._resync_interval)
            self._unconfirmed_polls += 1
            self._next_follow_up = self._clock() + delay
        else:
            self._unconfirmed_polls = 0
        if executed:
            ok = sum(1 for r in results if r.outcome is Outcome.OK)
            logger.info(
                "pass (%s): %d task(s) run, %d ok, %d failed, %d skipped in %.2fs",
                trigger,
                len(results),
                ok,
                sum(1 for r in results if r.outcome is Outcome.FAILED),
                sum(1 for r in results if r.outcome is Outcome.SKIPPED),
                self._clock() - started,
            )
        return PassReport(
            trigger=trigger,
            started=started,
            finished=self._clock(),
            view=view,
            plans=tuple(plans),
            results=tuple(results),
            verdicts=verdicts,
            breakers=tuple(breakers),
            executed=executed,
        )

    def _nothing_changed(self, now: float) -> bool:
        """The cheap resync: True when a constant-cost read of agents, routers and networks,
        plus the counts agents report on the bus, show nothing new since the last full
        snapshot (and that is recent enough). Any doubt means False: do a full pass."""
        view, last_full = self._view, self._last_full
        if view is None or last_full is None:
            return False
        if now - last_full >= self._full_resync_interval:
            return False
        try:
            inventory = self._neutron.inventory(
                routers=any(p.agent_type == "L3 agent" for p in self._planners),
                networks=any(p.agent_type == "DHCP agent" for p in self._planners),
            )
        except Exception as exc:
            logger.debug("cheap resync failed (%s): doing a full one", exc)
            return False
        self._last_api_success = self._clock()
        reason = what_changed(view, inventory, self.model.reported_counts(view, since=last_full))
        if reason is None:
            logger.debug("resync: nothing changed since the last full snapshot")
            return True
        logger.info("resync: %s; reading the bindings", reason)
        return False

    def _awaiting_confirmation(
        self, view: ClusterView, verdicts: Mapping[AgentId, Liveness]
    ) -> bool:
        return any(
            AgentKey.of(a) in self._dead_keys and verdicts.get(a.id) is not Liveness.DEAD
            for a in view.agents.values()
        )

    def _failed(
        self, trigger: str, started: float, now: float, message: str, exc: Exception
    ) -> PassReport:
        delay = ERROR_BACKOFFS[min(self._errors, len(ERROR_BACKOFFS) - 1)]
        self._errors += 1
        if isinstance(exc, RpcdaemonError):
            logger.warning("%s; retrying in %.0fs", message, delay)
        else:
            logger.error("%s; retrying in %.0fs", message, delay, exc_info=exc)
        self._next_follow_up = self._clock() + delay
        return PassReport(trigger, started, self._clock(), None, error=message)
