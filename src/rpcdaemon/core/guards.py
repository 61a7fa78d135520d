"""The one guard every planner's plan passes through, once per agent type (pure).

Planners return what they would do; :func:`guard` decides what may run now:

* **Circuit breaker**: when more than ``policy.max_dead_fraction`` of the agents of one
  type are DEAD at once, the likelier story is a broken bus or partition, not a mass
  failure (neutron bug 1461714): every task is dropped and ``Plan.held`` says so loudly.
  :func:`breaker_state` gives the same numbers for a metric. Agents already overdue but not
  yet declared (``LivenessModel.overdue``) count as dead: deaths at one moment are
  declared over a report_interval, and the first must not be evacuated alone.
* **Cap**: at most ``policy.max_moves_per_pass`` tasks per pass, in the planner's order
  (planners put the tasks that restore service first); the rest wait for the next pass,
  which re-plans from fresh state.

"No live target" is not decided here: planners hold such resources with a note.
Leadership and dry-run are the pass's gates, after this one (they only log).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
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


@dataclass(frozen=True)
class Guarded:
    """A plan after the guard, and the breaker as counted for it (for the metrics)."""

    plan: Plan
    breaker: BreakerState
    in_flight: int = 0  # tasks dropped because their resource is in an unfinished task


def guard(
    plan: Plan,
    *,
    view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    policy: Policy,
    agent_type: str,
    overdue: Collection[AgentId] = frozenset(),
    busy: Collection[str] = frozenset(),
) -> Guarded:
    """The one guard between a planner and the executor, applied once per agent type.

    1. **In flight**: a task touching a resource in ``busy`` (an unfinished task of an
       earlier pass) is dropped: a later pass never duplicates work still running, and it
       re-plans from what finished.
    2. **Breaker**: DEAD verdicts plus ``overdue`` agents (alive by our clock but past half
       way to their deadline) against ``policy.max_dead_fraction``; open drops every task.
    3. **Cap**: at most ``policy.max_moves_per_pass`` tasks, in the planner's order.

    What was dropped is said in ``Plan.held``."""
    counted = {**verdicts, **dict.fromkeys(overdue, Liveness.DEAD)}
    breaker = breaker_state(view=view, verdicts=counted, policy=policy, agent_type=agent_type)
    tasks = tuple(t for t in plan.tasks if not (t.resources & frozenset(busy)))
    held = list(plan.held)
    skipped = len(plan.tasks) - len(tasks)
    if breaker.open:
        note = f"{breaker.describe()}"
        if overdue:
            note += f" ({len(overdue)} of them overdue, not yet declared)"
        note += ": acting on none of them"
        if tasks:
            note += f" ({len(tasks)} task(s) dropped)"
        return Guarded(Plan(plan.plugin, (), (note, *held), breaker_open=True), breaker, skipped)
    cap = max(0, policy.max_moves_per_pass)
    deferred = max(0, len(tasks) - cap)
    if deferred:
        held.append(
            f"cap: {len(tasks)} task(s) planned, {cap} kept, "
            f"{deferred} left for the next pass (max_moves_per_pass={cap})"
        )
        tasks = tasks[:cap]
    return Guarded(Plan(plan.plugin, tasks, tuple(held), deferred=deferred), breaker, skipped)
