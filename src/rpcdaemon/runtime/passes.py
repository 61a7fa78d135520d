"""The pass: one Neutron snapshot, each planner's plan, the one guard, the hand-over.

Plans on the reactor thread and never waits for the executor: tasks are handed to the
pool and the reactor goes back to judging heartbeats. Per planner (isolated: a planner
that raises is logged and the others still plan):

1. verdicts for its agents (records of removed hosts left out: :func:`leftovers`);
2. its plan, pure, unguarded;
3. :func:`rpcdaemon.core.guards.guard`: resources in unfinished tasks, the breaker
   (counting agents already overdue) and the cap, once;
4. the gates: dry-run (print, change nothing), standby (log what the leader should do);
5. the hand-over to the executor.

Also the cheap resync (:meth:`Pass.read_inventory`, :meth:`Pass.nothing_changed`): a
constant-cost read that decides whether the periodic resync needs the bindings at all.

The reads (:meth:`Pass.read_snapshot`, :meth:`Pass.read_inventory`) may run on another
thread (the reactor's reader, :mod:`rpcdaemon.runtime.reader`); planning runs on the
reactor thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Plan
from rpcdaemon.core.guards import BreakerState, guard
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.liveness import AgentKey, LivenessModel
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView, Inventory, what_changed
from rpcdaemon.plugins.base import Planner
from rpcdaemon.runtime.executor import Executor
from rpcdaemon.runtime.intake import Intake
from rpcdaemon.runtime.report import PassReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassOutcome:
    """A pass's report and what it means for the schedule."""

    report: PassReport
    recount: bool = False  # a plan was held for agents dying together: look again soon
    awaiting_confirmation: bool = False  # dead by our clock, not yet by the API
    deferred: bool = False  # the cap left work for the next pass


class Pass:
    """Runs passes; holds the last full snapshot (for the cheap resync)."""

    def __init__(
        self,
        *,
        planners: Sequence[Planner],
        policies: Mapping[str, Policy],
        neutron: NeutronPort,
        executor: Executor,
        intake: Intake,
        is_leader: Callable[[], bool],
        paused: Callable[[], str | None] = lambda: None,
        dry_run: bool = False,
        on_plan: Callable[[Plan], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._planners = tuple(planners)
        self._policies = policies
        self._neutron = neutron
        self._executor = executor
        self._intake = intake
        self._is_leader = is_leader
        self._paused = paused
        self._dry_run = dry_run
        self._on_plan = on_plan
        self._clock = clock
        self._routers = any(p.agent_type == AgentType.L3.value for p in self._planners)
        self._networks = any(p.agent_type == AgentType.DHCP.value for p in self._planners)
        self.view: ClusterView | None = None
        self.last_full: float | None = None  # when the last full snapshot was taken
        self.last_api_success: float | None = None
        self._busy_before: frozenset[str] = frozenset()

    def run(self, trigger: str, now: float, dead_keys: frozenset[AgentKey]) -> PassOutcome:
        """Snapshot, plan, guard, hand over, all on the caller's thread. Raises when the
        snapshot fails. (The reactor reads off its thread: :meth:`prepare`,
        :meth:`read_snapshot` elsewhere, then :meth:`plan`.)"""
        started = self._clock()
        self.prepare()
        return self.plan(trigger, now, dead_keys, self.read_snapshot(), started=started)

    def prepare(self, *, add: bool = False) -> None:
        """Reactor thread, just before the snapshot read starts. Busy before the snapshot
        counts too: a task that finishes while the snapshot is read leaves a stale picture
        of its resource (a router between remove and add). No task starts meanwhile (only
        the reactor thread hands tasks over, and it plans only once the read is done)."""
        busy = self._executor.busy()
        # add: a read is in flight and a node death is planned meanwhile: keep its set too
        self._busy_before = self._busy_before | busy if add else busy

    def read_snapshot(self) -> ClusterView:
        """Any thread (the reader's): the bindings, many HTTP calls. Raises on failure."""
        view = self._neutron.snapshot(routers=self._routers, networks=self._networks)
        self.last_api_success = self._clock()
        return view

    def plan(
        self,
        trigger: str,
        now: float,
        dead_keys: frozenset[AgentKey],
        view: ClusterView,
        *,
        started: float,
        read_at: float | None = None,
    ) -> PassOutcome:
        """Reactor thread: plan, guard and hand over from ``view`` (read since ``read_at``,
        default ``now``). Verdicts come from the model *now*, not from when the view was
        read: the view only lists agents and bindings."""
        self.view, self.last_full = view, now if read_at is None else read_at
        self._intake.know(view)
        plans: list[Plan] = []
        breakers: list[BreakerState] = []
        verdicts: dict[AgentId, Liveness] = {}
        handed = 0
        recount = False
        for planner in self._planners:
            try:
                plan, breaker, theirs, held_overdue = self._plan(planner, view, now)
            except Exception as exc:  # one planner's bug must not stop the others
                logger.exception("[%s] planning failed; the other planners go on", planner.name)
                plans.append(Plan(planner.name, (), (f"planning failed: {exc}",)))
                continue
            verdicts.update(theirs)
            breakers.append(breaker)
            recount = recount or held_overdue
            plans.append(plan)
            if self._on_plan is not None:
                try:
                    self._on_plan(plan)
                except Exception:
                    logger.exception("plan observer failed")
            if plan.tasks and self._gate(plan):
                accepted = self._executor.submit(plan.plugin, plan.tasks, since=started)
                handed += len(accepted)
                logger.info(
                    "[%s] %d task(s) handed to the executor (%d in flight in all)",
                    plan.plugin,
                    len(accepted),
                    self._executor.in_flight,
                )
        report = PassReport(
            trigger=trigger,
            started=started,
            finished=self._clock(),
            view=view,
            plans=tuple(plans),
            verdicts=verdicts,
            breakers=tuple(breakers),
            executed=handed > 0,
            handed=handed,
        )
        awaiting = any(
            AgentKey.of(a) in dead_keys and verdicts.get(a.id) is not Liveness.DEAD
            for a in view.agents.values()
        )
        deferred = handed > 0 and any(p.deferred for p in plans)
        return PassOutcome(report, recount, awaiting, deferred)

    def _plan(
        self, planner: Planner, view: ClusterView, now: float
    ) -> tuple[Plan, BreakerState, dict[AgentId, Liveness], bool]:
        model, bus = self._intake.model, self._intake.bus
        policy = self._policies[planner.agent_type]
        view = view.without_agents(leftovers(view, model, planner.agent_type))
        theirs = model.verdicts(view, now, policy, bus, self._intake.detector.deaths())
        overdue = model.overdue(view, now, policy, bus, agent_type=planner.agent_type)
        raw = planner.plan(view, theirs, policy, now)
        guarded = guard(
            raw,
            view=view,
            verdicts=theirs,
            policy=policy,
            agent_type=planner.agent_type,
            overdue=overdue,
            busy=self._busy_before | self._executor.busy(),
        )
        plan = guarded.plan
        if guarded.in_flight:
            logger.info(
                "[%s] %d task(s) left out: their resources are in unfinished tasks "
                "(re-planned when those finish)",
                planner.name,
                guarded.in_flight,
            )
        for note in plan.held:
            log = logger.error if plan.breaker_open else logger.warning
            log("[%s] held: %s", planner.name, note)
        mine = {a.id: theirs[a.id] for a in view.agents_of_type(planner.agent_type)}
        held_overdue = plan.breaker_open and bool(overdue) and bool(raw.tasks)
        return plan, guarded.breaker, mine, held_overdue

    def _gate(self, plan: Plan) -> bool:
        """Dry-run and leadership, after the guard. True: hand the plan over."""
        if self._dry_run:
            logger.warning(
                "[%s] dry run: %d task(s) planned, none run", plan.plugin, len(plan.tasks)
            )
            for task in plan.tasks:
                for action in task.actions:
                    logger.warning(
                        "[%s] dry run: would %s: %s", plan.plugin, action.describe(), action.reason
                    )
            return False
        pause = self._paused()
        if pause is not None:
            logger.warning(
                "[%s] paused (%s): %d task(s) planned, none run",
                plan.plugin,
                pause,
                len(plan.tasks),
            )
            return False
        if not self._is_leader():
            logger.info(
                "[%s] standby: the leader should run %d task(s); not acting",
                plan.plugin,
                len(plan.tasks),
            )
            return False
        logger.info("[%s] plan: %d task(s)", plan.plugin, len(plan.tasks))
        return True

    def can_skip_resync(self, now: float, full_resync_interval: float) -> bool:
        """The cheap resync may apply: there is a full snapshot, recent enough."""
        view, last_full = self.view, self.last_full
        return view is not None and last_full is not None and now - last_full < full_resync_interval

    def read_inventory(self) -> Inventory:
        """Any thread (the reader's): the constant-cost read of agents, routers, networks."""
        inventory = self._neutron.inventory(routers=self._routers, networks=self._networks)
        self.last_api_success = self._clock()
        return inventory

    def nothing_changed(self, inventory: Inventory) -> bool:
        """Reactor thread, the cheap resync: True when ``inventory``, plus the counts
        agents report on the bus, show nothing new since the last full snapshot. Any
        doubt means False: do a full pass."""
        view, last_full = self.view, self.last_full
        if view is None or last_full is None:
            return False
        counts = self._intake.model.reported_counts(view, since=last_full)
        reason = what_changed(view, inventory, counts)
        if reason is None:
            logger.debug("resync: nothing changed since the last full snapshot")
            return True
        logger.info("resync: %s; reading the bindings", reason)
        return False


def leftovers(view: ClusterView, model: LivenessModel, agent_type: str) -> frozenset[AgentId]:
    """Agent records of removed hosts: dead for the API, never heard on the bus since we
    started, hosting nothing. Operators often leave them in Neutron; they are nothing to
    move and no target, and counting them would open the circuit breaker on the first real
    failure (3 live + 3 leftovers: one death makes 4/6 dead).

    Also left out: agents an operator disabled (``admin_state_up`` false) that host
    nothing, heard or not: an evacuated node, maybe powered off. They are no target
    anyway, and counting them would open the breaker when a second node fails (3 nodes,
    1 evacuated and off, 1 fails: 2/3 dead)."""
    bound = {a for agents in view.router_bindings.values() for a in agents}
    bound.update(a for agents in view.network_bindings.values() for a in agents)
    return frozenset(
        a.id
        for a in view.agents_of_type(agent_type)
        if a.id not in bound
        and (not a.admin_state_up or (not a.alive and model.get(AgentKey.of(a)) is None))
    )
