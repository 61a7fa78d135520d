"""The rebalance planner: bounded, converging, least disruptive first, placement rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.core.actions import Plan, Verb
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.projection import apply_plan
from rpcdaemon.core.rebalance import plan_rebalance
from rpcdaemon.testing import all_alive, make_agent, make_router, make_view


def skewed(n: int = 6, *, ha: tuple[str, ...] = (), down: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    routers = [
        make_router(f"r{i}", ha=f"r{i}" in ha, admin_state_up=f"r{i}" not in down) for i in range(n)
    ]
    return make_view(
        agents=[make_agent("a"), make_agent("b"), make_agent("c")],
        routers=routers,
        router_bindings={r.id: ["a"] for r in routers},
    )


def test_evens_out_within_one() -> None:
    view = skewed(6)
    plan = plan_rebalance(view, all_alive(view), max_moves=100)
    assert plan.spread_before == 6 and plan.spread_after == 0
    after = apply_plan(view, Plan("t", plan.tasks))
    loads = sorted(len(after.routers_on(AgentId(a))) for a in "abc")
    assert loads == [2, 2, 2]
    assert plan_rebalance(after, all_alive(after)).tasks == ()


def test_bounded_by_max_moves() -> None:
    view = skewed(6)
    assert len(plan_rebalance(view, all_alive(view), max_moves=2).tasks) == 2


def test_least_disruptive_first() -> None:
    view = skewed(6, ha=("r4",), down=("r5",))
    plan = plan_rebalance(view, all_alive(view), max_moves=2)
    first, second = plan.tasks
    assert first.actions[0].resource_id == "r5"  # admin down: carries no traffic
    assert second.actions[0].resource_id == "r4"  # HA: add first, then remove
    assert [a.verb for a in second.actions] == [Verb.ADD_ROUTER, Verb.REMOVE_ROUTER]
    legacy = plan_rebalance(skewed(3), all_alive(skewed(3)), max_moves=1).tasks[0]
    assert [a.verb for a in legacy.actions] == [Verb.REMOVE_ROUTER, Verb.ADD_ROUTER]


def test_dead_and_admin_down_agents_are_ignored() -> None:
    view = skewed(6)
    verdicts = {**all_alive(view), AgentId("b"): Liveness.DEAD}
    plan = plan_rebalance(view, verdicts, max_moves=100)
    targets = {a.agent_id for t in plan.tasks for a in t.actions if a.verb is Verb.ADD_ROUTER}
    assert targets == {AgentId("c")}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=25), st.integers(1, 30))
def test_never_worsens_the_spread_and_respects_the_cap(homes: list[int], cap: int) -> None:
    agents = [make_agent(f"a{i}") for i in range(4)]
    routers = [make_router(f"r{i:02d}") for i in range(len(homes))]
    view = make_view(
        agents=agents,
        routers=routers,
        router_bindings={r.id: [f"a{h}"] for r, h in zip(routers, homes, strict=True)},
    )
    plan = plan_rebalance(view, all_alive(view), max_moves=cap)
    assert len(plan.tasks) <= cap
    assert plan.spread_after <= plan.spread_before
    after = apply_plan(view, Plan("t", plan.tasks))
    assert all(len(b) == 1 for b in after.router_bindings.values())  # legacy: one home each
    if len(plan.tasks) < cap:
        assert plan.spread_after <= 1
