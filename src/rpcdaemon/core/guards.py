"""Safety guards every planner's plan passes through (pure).

* **Circuit breaker**: when more than ``policy.max_dead_fraction`` of the agents of one
  type are DEAD at once, the likelier story is a broken bus or partition, not a mass
  failure (neutron bug 1461714): every task is dropped and ``Plan.held`` says so loudly.
  :func:`breaker_state` gives the same numbers for a metric. The reactor checks the breaker
  once more before executing, counting agents already overdue but not yet declared
  (``LivenessModel.overdue``): deaths at one moment are declared over a report_interval.
* **Cap**: at most ``policy.max_moves_per_pass`` tasks per pass, in the planner's order
  (planners put the tasks that restore service first); the rest wait for the next pass,
  which re-plans from fresh state.

"No live target" is not decided here: planners hold such resources with a note.
Leadership, bus health and dry-run are the reactor's gates, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView


@dataclass(frozen=True)
class BreakerState:
    """Dead agents of one type against the breaker threshold. Export ``open`` as a gauge."""

    agent_type: str
    dead: int
    total: int
    max_dead_fraction: float

    @property
    def fraction(self) -> float:
        return self.dead / self.total if self.total else 0.0

    @property
    def open(self) -> bool:
        return self.total > 0 and self.fraction > self.max_dead_fraction

    def describe(self) -> str:
        state = "breaker open" if self.open else "breaker closed"
        op = ">" if self.open else "<="
        return (
            f"{state}: {self.dead}/{self.total} {self.agent_type}s dead "
            f"{op} {self.max_dead_fraction:.0%}"
        )


def breaker_state(
    *,
    view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    policy: Policy,
    agent_type: str,
) -> BreakerState:
    """Count DEAD agents of ``agent_type`` in ``view`` (UNKNOWN is not dead)."""
    agents = view.agents_of_type(agent_type)
    dead = sum(1 for a in agents if verdicts.get(a.id) is Liveness.DEAD)
    return BreakerState(agent_type, dead, len(agents), policy.max_dead_fraction)


def apply_guards(
    plan: Plan,
    *,
    view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    policy: Policy,
    agent_type: str,
) -> Plan:
    """``plan`` after the breaker and the per-pass cap; what was dropped is in ``held``."""
    breaker = breaker_state(view=view, verdicts=verdicts, policy=policy, agent_type=agent_type)
    if breaker.open:
        note = f"{breaker.describe()}: acting on none of them"
        if plan.tasks:
            note += f" ({len(plan.tasks)} task(s) dropped)"
        return Plan(plan.plugin, (), (note, *plan.held), breaker_open=True)
    cap = max(0, policy.max_moves_per_pass)
    if len(plan.tasks) <= cap:
        return plan
    note = (
        f"cap: {len(plan.tasks)} task(s) planned, {cap} kept, "
        f"{len(plan.tasks) - cap} left for the next pass (max_moves_per_pass={cap})"
    )
    return Plan(plan.plugin, plan.tasks[:cap], (*plan.held, note), deferred=len(plan.tasks) - cap)
