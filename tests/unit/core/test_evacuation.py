"""The evacuation planner: phases, placement, held resources, re-planning, and the DHCP
safety property (no prefix of the run leaves a served network without a live agent)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.core.actions import Plan, Task, Verb
from rpcdaemon.core.evacuation import Evacuation, plan_evacuation
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.projection import apply_plan
from rpcdaemon.core.view import ClusterView
from rpcdaemon.testing import (
    all_alive,
    make_agent,
    make_dhcp_agent,
    make_network,
    make_router,
    make_view,
)

from .strategies import AGENT_ZONES, HINTS


def cloud(**kw: object) -> ClusterView:
    agents = [
        make_agent("l3-a", host="net1"),
        make_agent("l3-b", host="net2"),
        make_agent("l3-c", host="net3"),
        make_dhcp_agent("dhcp-a", host="net1"),
        make_dhcp_agent("dhcp-b", host="net2"),
        make_dhcp_agent("dhcp-c", host="net3"),
    ]
    return make_view(
        agents=agents,
        routers=[make_router("r1"), make_router("r2"), make_router("r3", ha=True)],
        networks=[make_network("n1"), make_network("n2"), make_network("n3", dhcp_enabled=False)],
        router_bindings={"r1": ["l3-a"], "r2": ["l3-a"], "r3": ["l3-a", "l3-b"]},
        network_bindings={"n1": ["dhcp-a"], "n2": ["dhcp-a", "dhcp-b"], "n3": ["dhcp-a"]},
        **kw,  # type: ignore[arg-type]
    )


def run(view: ClusterView, plan: Evacuation) -> ClusterView:
    """Apply every phase of ``plan`` (as the verb does, without re-planning)."""
    view = apply_plan(view, Plan("t", plan.copy))
    agents = dict(view.agents)
    for agent_id in plan.disable:
        agents[agent_id] = replace(agents[agent_id], admin_state_up=False)
    view = replace(view, agents=agents)
    return apply_plan(view, Plan("t", plan.move))


def test_the_host_ends_empty_and_disabled_and_a_second_plan_is_empty() -> None:
    view = cloud()
    verdicts = all_alive(view)
    plan = plan_evacuation(view, verdicts, "net1")
    assert set(plan.disable) == {"l3-a", "dhcp-a"}
    assert not plan.held
    after = run(view, plan)
    assert not after.routers_on(AgentId("l3-a"))
    assert not after.networks_on(AgentId("dhcp-a"))
    # every router still hosted once (legacy) or twice (HA), every DHCP network served
    assert all(len(after.router_bindings[r]) == (2 if r == "r3" else 1) for r in ("r1", "r2", "r3"))
    assert after.network_bindings["n1"] and after.network_bindings["n2"]
    again = plan_evacuation(after, verdicts, "net1")
    assert again.done


def test_dhcp_is_copied_before_removal_and_keeps_its_agent_count() -> None:
    view = cloud()
    plan = plan_evacuation(view, all_alive(view), "net1")
    copies = {(a.resource_id, a.agent_id) for t in plan.copy for a in t.actions}
    assert all(a.verb is Verb.ADD_NETWORK for t in plan.copy for a in t.actions)
    # n1 had one agent (the host's): one copy; n2 had two: one copy besides dhcp-b
    assert {n for n, _ in copies} == {"n1", "n2"}
    assert ("n2", "dhcp-b") not in copies
    removes = [a for t in plan.move for a in t.actions if a.verb is Verb.REMOVE_NETWORK]
    assert {(a.resource_id, a.agent_id) for a in removes} == {
        ("n1", "dhcp-a"),
        ("n2", "dhcp-a"),
        ("n3", "dhcp-a"),  # no DHCP subnet: dropped, not copied
    }


def test_legacy_router_removes_first_and_ha_router_adds_first() -> None:
    view = cloud()
    plan = plan_evacuation(view, all_alive(view), "net1", dhcp=False)
    by_router = {t.actions[0].resource_id: t for t in plan.move}
    assert [a.verb for a in by_router["r1"].actions] == [Verb.REMOVE_ROUTER, Verb.ADD_ROUTER]
    assert [a.verb for a in by_router["r3"].actions] == [Verb.ADD_ROUTER, Verb.REMOVE_ROUTER]
    assert by_router["r3"].actions[0].agent_id == "l3-c"  # not l3-b: it hosts r3 already
    assert by_router["r1"].source_agent is None  # a live source must not stop the task
    assert plan.disable == ("l3-a",)


def test_routers_spread_over_targets_by_load() -> None:
    view = cloud()
    plan = plan_evacuation(view, all_alive(view), "net1", dhcp=False)
    targets = [a.agent_id for t in plan.move for a in t.actions if a.verb is Verb.ADD_ROUTER]
    assert sorted(targets[:2]) == ["l3-b", "l3-c"]  # r1 and r2 go to different agents


def test_no_target_holds_and_keeps_the_agent_enabled() -> None:
    view = cloud()
    verdicts = {
        **all_alive(view),
        AgentId("dhcp-b"): Liveness.DEAD,
        AgentId("dhcp-c"): Liveness.DEAD,
    }
    plan = plan_evacuation(view, verdicts, "net1", l3=False)
    assert not plan.copy
    removed = {a.resource_id for t in plan.move for a in t.actions}
    assert removed == {"n3"}  # n1 and n2 would be left with no live agent
    assert "dhcp-a" not in plan.disable
    assert any("n1" in h for h in plan.held) and any("dhcp-a stays enabled" in h for h in plan.held)


def test_dead_and_admin_down_agents_are_no_targets() -> None:
    view = cloud()
    agents = dict(view.agents)
    agents[AgentId("l3-b")] = replace(agents[AgentId("l3-b")], admin_state_up=False)
    view = replace(view, agents=agents)
    verdicts = {**all_alive(view), AgentId("l3-c"): Liveness.DEAD}
    plan = plan_evacuation(view, verdicts, "net1", dhcp=False)
    assert not plan.move and plan.held


def test_unknown_host_raises() -> None:
    view = cloud()
    with pytest.raises(ValueError, match="nowhere"):
        plan_evacuation(view, all_alive(view), "nowhere")


def test_dvr_agents_are_disabled_but_their_routers_are_left() -> None:
    view = make_view(
        agents=[
            make_agent("dvr", host="cmp1", agent_mode="dvr"),
            make_agent("snat", host="net1", agent_mode="dvr_snat"),
        ],
        routers=[make_router("r", distributed=True)],
        router_bindings={"r": ["dvr", "snat"]},
    )
    plan = plan_evacuation(view, all_alive(view), "cmp1")
    assert plan.disable == ("dvr",) and not plan.move


# -- the property -------------------------------------------------------------------------


def _serving(view: ClusterView, verdicts: dict[AgentId, Liveness], network: str) -> bool:
    return any(
        a in view.agents and view.agents[a].admin_state_up and verdicts.get(a) is Liveness.ALIVE
        for a in view.network_bindings.get(network, frozenset())  # type: ignore[call-overload]
    )


def _steps(plan: Evacuation) -> list[tuple[str, object]]:
    steps: list[tuple[str, object]] = [("task", t) for t in plan.copy]
    steps += [("disable", a) for a in plan.disable]
    for task in plan.move:
        steps += [("task", Task((a,), task.reason)) for a in task.actions]
    return steps


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ClusterView, dict[AgentId, Liveness]]:
    hosts = [f"h{i}" for i in range(draw(st.integers(2, 5)))]
    agents = []
    for host in hosts:
        if draw(st.booleans()):
            agents.append(
                make_dhcp_agent(f"d-{host}", host=host, availability_zone=draw(AGENT_ZONES),
                                admin_state_up=draw(st.booleans()))
            )  # fmt: skip
        if draw(st.booleans()):
            agents.append(
                make_agent(f"l-{host}", host=host, availability_zone=draw(AGENT_ZONES),
                           admin_state_up=draw(st.booleans()))
            )  # fmt: skip
    agents.append(make_dhcp_agent("d-h0", host="h0"))
    agents = list({a.id: a for a in agents}.values())
    dhcp_ids = [a.id for a in agents if a.agent_type == "DHCP agent"]
    l3_ids = [a.id for a in agents if a.agent_type == "L3 agent"]
    networks = [
        make_network(f"n{i}", availability_zone_hints=draw(HINTS))
        for i in range(draw(st.integers(0, 6)))
    ]
    routers = [
        make_router(f"r{i}", ha=draw(st.booleans()), availability_zone_hints=draw(HINTS))
        for i in range(draw(st.integers(0, 5) if l3_ids else st.just(0)))
    ]
    view = make_view(
        agents=agents,
        networks=networks,
        routers=routers,
        network_bindings={
            n.id: draw(st.lists(st.sampled_from(dhcp_ids), max_size=3, unique=True))
            for n in networks
        },
        router_bindings={
            r.id: draw(st.lists(st.sampled_from(l3_ids), min_size=1, max_size=2, unique=True))
            for r in routers
        },
    )
    verdicts = {a: draw(st.sampled_from(list(Liveness))) for a in view.agents}
    return view, verdicts


@settings(max_examples=300, deadline=None)
@given(clusters(), st.sampled_from([None, 1, 2]))
def test_no_prefix_leaves_a_served_dhcp_network_without_a_live_agent(
    case: tuple[ClusterView, dict[AgentId, Liveness]], per_network: int | None
) -> None:
    view, verdicts = case
    plan = plan_evacuation(view, verdicts, "h0", dhcp_agents_per_network=per_network)
    served = {n for n in view.networks if _serving(view, verdicts, n)}
    current = view
    for kind, step in _steps(plan):
        if kind == "task":
            assert isinstance(step, Task)
            current = apply_plan(current, Plan("t", (step,)))
        else:
            agents = dict(current.agents)
            agents[step] = replace(agents[step], admin_state_up=False)  # type: ignore[index]
            current = replace(current, agents=agents)
        lost = {n for n in served if not _serving(current, verdicts, n)}
        assert not lost, f"after {kind} {step}: {lost} without a live DHCP agent"
    # and what was not held has left the host
    mine = {a for a in view.agents if view.agents[a].host == "h0"}
    for network in current.network_bindings:
        if current.network_bindings[network] & mine:
            assert any(network in h for h in plan.held), network
    for router in current.router_bindings:
        if current.router_bindings[router] & mine:
            assert any(router in h for h in plan.held), router
    # re-planning after the run never copies again
    assert not plan_evacuation(current, verdicts, "h0", dhcp_agents_per_network=per_network).copy


def test_what_was_on_the_host_and_is_now_on_no_agent_is_re_placed() -> None:
    from rpcdaemon.core.evacuation import hosted_on, unplaced

    view = cloud()
    started = hosted_on(view, "net1")
    assert started.routers == {"r1", "r2", "r3"} and started.networks == {"n1", "n2"}
    # r1's remove landed, its add did not; n1 lost its only agent the same way
    bindings = {r: a for r, a in view.router_bindings.items() if r != "r1"}
    nets = {n: a for n, a in view.network_bindings.items() if n != "n1"}
    lost = replace(view, router_bindings=bindings, network_bindings=nets)
    verdicts = all_alive(lost)
    assert unplaced(lost, verdicts, started) == ("router r1", "network n1")
    plan = plan_evacuation(lost, verdicts, "net1", started=started)
    added = {(a.verb, a.resource_id) for t in plan.replace for a in t.actions}
    assert added == {(Verb.ADD_ROUTER, "r1"), (Verb.ADD_NETWORK, "n1")}
    assert all(a.agent_id not in ("l3-a", "dhcp-a") for t in plan.replace for a in t.actions)
    assert not plan.done and plan.steps == len(plan.replace) + len(plan.copy) + len(
        plan.disable
    ) + len(plan.move)
    after = run(lost, plan)
    after = apply_plan(after, Plan("t", plan.replace))
    assert unplaced(after, verdicts, started) == ()
    # no live target: held, named, and still unplaced
    dead = {**verdicts, AgentId("l3-b"): Liveness.DEAD, AgentId("l3-c"): Liveness.DEAD}
    stuck = plan_evacuation(lost, dead, "net1", started=started)
    assert not [t for t in stuck.replace if t.actions[0].resource_id == "r1"]
    assert any("router r1 is on no agent" in h for h in stuck.held)
