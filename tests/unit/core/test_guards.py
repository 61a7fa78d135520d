"""The one guard: resources in flight, the circuit breaker (with overdue agents), the cap."""

from __future__ import annotations

import pytest

from rpcdaemon.core.actions import Plan, Task, add_router
from rpcdaemon.core.guards import breaker_state, guard
from rpcdaemon.core.ids import AgentId, Liveness, RouterId
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.testing import make_agent, make_dhcp_agent, make_view


def _plan(n: int) -> Plan:
    tasks = tuple(
        Task((add_router(RouterId(f"r{i}"), AgentId("a0"), "why"),), "why") for i in range(n)
    )
    return Plan("L3Agent", tasks, ("earlier note",))


def _cluster(dead: int, total: int) -> tuple[ClusterView, dict[AgentId, Liveness]]:
    agents = [make_agent(f"a{i}") for i in range(total)] + [make_dhcp_agent("d")]
    view = make_view(agents=agents)
    verdicts = {a.id: Liveness.DEAD if i < dead else Liveness.ALIVE for i, a in enumerate(agents)}
    verdicts[AgentId("d")] = Liveness.DEAD  # other types do not count
    return view, verdicts


@pytest.mark.parametrize(
    ("dead", "total", "fraction", "open_"),
    [
        (0, 6, 0.5, False),
        (3, 6, 0.5, False),
        (4, 6, 0.5, True),
        (1, 1, 0.5, True),
        (1, 2, 0.5, False),
        (2, 2, 1.0, False),
        (1, 3, 0.0, True),
        (0, 0, 0.5, False),
    ],
)
def test_breaker_threshold_is_strictly_more_than(
    dead: int, total: int, fraction: float, open_: bool
) -> None:
    view, verdicts = _cluster(dead, total)
    policy = Policy(max_dead_fraction=fraction)
    state = breaker_state(view=view, verdicts=verdicts, policy=policy, agent_type="L3 agent")
    assert (state.dead, state.total, state.open) == (dead, total, open_)
    guarded = guard(
        _plan(3), view=view, verdicts=verdicts, policy=policy, agent_type="L3 agent"
    ).plan
    assert bool(guarded.tasks) is not open_


def test_open_breaker_drops_everything_with_a_loud_note() -> None:
    view, verdicts = _cluster(4, 6)
    guarded = guard(
        _plan(3), view=view, verdicts=verdicts, policy=Policy(), agent_type="L3 agent"
    ).plan
    assert guarded.tasks == ()
    assert guarded.held[0] == (
        "breaker open: 4/6 L3 agents dead > 50%: acting on none of them (3 task(s) dropped)"
    )
    assert "earlier note" in guarded.held


def test_unknown_agents_do_not_trip_the_breaker() -> None:
    view, verdicts = _cluster(0, 4)
    for agent_id in list(verdicts)[:3]:
        verdicts[agent_id] = Liveness.UNKNOWN
    state = breaker_state(view=view, verdicts=verdicts, policy=Policy(), agent_type="L3 agent")
    assert not state.open and state.dead == 0


def test_cap_keeps_the_first_tasks_and_notes_the_rest() -> None:
    view, verdicts = _cluster(0, 2)
    plan = _plan(7)
    guarded = guard(
        plan,
        view=view,
        verdicts=verdicts,
        policy=Policy(max_moves_per_pass=5),
        agent_type="L3 agent",
    ).plan
    assert guarded.tasks == plan.tasks[:5]
    assert guarded.held[-1] == (
        "cap: 7 task(s) planned, 5 kept, 2 left for the next pass (max_moves_per_pass=5)"
    )
    untouched = guard(
        plan,
        view=view,
        verdicts=verdicts,
        policy=Policy(max_moves_per_pass=7),
        agent_type="L3 agent",
    ).plan
    assert untouched == plan


def test_overdue_agents_count_for_the_breaker() -> None:
    # 2 of 6 dead by verdict: closed. Two more already overdue (dying with them): open.
    view, verdicts = _cluster(2, 6)
    plan = _plan(3)
    closed = guard(plan, view=view, verdicts=verdicts, policy=Policy(), agent_type="L3 agent")
    assert closed.plan.tasks == plan.tasks and not closed.breaker.open
    overdue = frozenset({AgentId("a2"), AgentId("a3")})
    held = guard(
        plan,
        view=view,
        verdicts=verdicts,
        policy=Policy(),
        agent_type="L3 agent",
        overdue=overdue,
    )
    assert held.plan.tasks == () and held.plan.breaker_open and held.breaker.dead == 4
    assert "2 of them overdue" in held.plan.held[0]


def test_tasks_on_resources_in_flight_are_dropped_before_the_cap() -> None:
    view, verdicts = _cluster(0, 2)
    plan = _plan(4)  # routers r0..r3
    out = guard(
        plan,
        view=view,
        verdicts=verdicts,
        policy=Policy(max_moves_per_pass=2),
        agent_type="L3 agent",
        busy=frozenset({"r0", "r2"}),
    )
    assert [t.resources for t in out.plan.tasks] == [frozenset({"r1"}), frozenset({"r3"})]
    assert out.in_flight == 2 and out.plan.deferred == 0
