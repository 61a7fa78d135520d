"""One planner's step of a pass, and the gates between a plan and the executor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.guards import BreakerState, breaker_state
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.liveness import AgentKey, BusState, LivenessModel
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.base import Planner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannerStep:
    plan: Plan
    verdicts: dict[AgentId, Liveness]  # this planner's agents only
    breaker: BreakerState
    held_for_overdue: bool  # the plan was dropped because agents are dying together


def plan_one(
    planner: Planner,
    view: ClusterView,
    model: LivenessModel,
    policy: Policy,
    bus: BusState,
    now: float,
) -> PlannerStep:
    """Verdicts, the planner's (guarded) plan, and the breaker counted once more with the
    agents already overdue: agents that die together are declared dead up to one
    report_interval apart, and the breaker must not let the first of them be evacuated."""
    view = view.without_agents(leftovers(view, model, planner.agent_type))
    theirs = model.verdicts(view, now, policy, bus)
    overdue = model.overdue(view, now, policy, bus, agent_type=planner.agent_type)
    counted = {**theirs, **dict.fromkeys(overdue, Liveness.DEAD)}
    breaker = breaker_state(
        view=view, verdicts=counted, policy=policy, agent_type=planner.agent_type
    )
    plan = planner.plan(view, theirs, policy, now)
    held = False
    if breaker.open and plan.tasks:
        note = (
            f"{breaker.describe()} ({len(overdue)} of them overdue, not yet declared): "
            f"acting on none of them ({len(plan.tasks)} task(s) dropped)"
        )
        plan = Plan(plan.plugin, (), (note, *plan.held), breaker_open=True)
        held = True
    for note in plan.held:
        (logger.error if plan.breaker_open else logger.warning)("[%s] held: %s", planner.name, note)
    mine = {a.id: theirs[a.id] for a in view.agents_of_type(planner.agent_type)}
    return PlannerStep(plan, mine, breaker, held)


def leftovers(view: ClusterView, model: LivenessModel, agent_type: str) -> frozenset[AgentId]:
    """Agent records of removed hosts: dead for the API, never heard on the bus since we
    started, hosting nothing. Operators often leave them in Neutron; they are nothing to
    move and no target, and counting them would open the circuit breaker on the first real
    failure (3 live + 3 leftovers: one death makes 4/6 dead)."""
    bound = {a for agents in view.router_bindings.values() for a in agents}
    bound.update(a for agents in view.network_bindings.values() for a in agents)
    return frozenset(
        a.id
        for a in view.agents_of_type(agent_type)
        if not a.alive and a.id not in bound and model.get(AgentKey.of(a)) is None
    )


def gate(plan: Plan, *, dry_run: bool, is_leader: bool) -> bool:
    """Dry-run and leadership, after the planner's own guards. True: execute the plan."""
    if dry_run:
        logger.warning("[%s] dry run: %d task(s) planned, none run", plan.plugin, len(plan.tasks))
        for task in plan.tasks:
            for action in task.actions:
                logger.warning(
                    "[%s] dry run: would %s: %s", plan.plugin, action.describe(), action.reason
                )
        return False
    if not is_leader:
        logger.info(
            "[%s] standby: the leader should run %d task(s); not acting",
            plan.plugin,
            len(plan.tasks),
        )
        return False
    logger.info("[%s] plan: %d task(s)", plan.plugin, len(plan.tasks))
    return True
