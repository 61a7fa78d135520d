"""L3Agent planner: scenarios, then Hypothesis properties over messy clusters."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon.core.actions import Plan, Verb
from rpcdaemon.core.guards import guard
from rpcdaemon.core.ids import AgentId, Liveness, RouterId
from rpcdaemon.core.placement import can_host_router, l3_agent_mode
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.projection import apply_plan
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.base import Binding, Planner
from rpcdaemon.plugins.l3agent import L3AgentPlugin
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.testing import (
    all_alive,
    make_agent,
    make_router,
    make_view,
    verdicts_of,
)

from .strategies import Scenario, l3_scenarios, policies, unguarded

ALIVE, DEAD, UNKNOWN = Liveness.ALIVE, Liveness.DEAD, Liveness.UNKNOWN
PLUGIN = L3AgentPlugin(Settings(path="x", daemon=DaemonSettings()))


def plan(
    view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy | None = None
) -> Plan:
    return PLUGIN.plan(view, verdicts, policy or unguarded(), 0.0)


def guarded(view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy) -> Plan:
    """The plugin's plan after the one guard, as the runtime applies it."""
    raw = PLUGIN.plan(view, verdicts, policy, 0.0)
    return guard(
        raw, view=view, verdicts=verdicts, policy=policy, agent_type=PLUGIN.agent_type
    ).plan


def moves(p: Plan) -> list[tuple[str, ...]]:
    return [
        tuple(f"{a.verb.value} {a.resource_id} {a.agent_id}" for a in t.actions) for t in p.tasks
    ]


def with_verdicts(view: ClusterView, **by_id: Liveness) -> dict[AgentId, Liveness]:
    verdicts = all_alive(view)
    verdicts.update(verdicts_of(by_id))
    return verdicts


# --- the plugin surface --------------------------------------------------------------


def test_plugin_identity_and_bindings() -> None:
    settings = Settings(
        path="x",
        daemon=DaemonSettings(),
        l3=AgentPluginSettings(name="L3Agent", exchange="quantum", routing_keys=("q-plugin",)),
    )
    plugin = L3AgentPlugin(settings)
    assert isinstance(plugin, Planner)
    assert (plugin.name, plugin.agent_type) == ("L3Agent", "L3 agent")
    assert list(plugin.bindings()) == [Binding("quantum", "q-plugin")]
    assert list(PLUGIN.bindings()) == [
        Binding("neutron", "q-reports-plugin"),
        Binding("neutron", "q-plugin"),
    ]


# --- scenarios ---------------------------------------------------------------------------


def test_router_on_dead_agent_moves_remove_then_add() -> None:
    view = make_view(
        agents=[make_agent("a", host="net1"), make_agent("b", host="net2")],
        routers=[make_router("r1")],
        router_bindings={"r1": ["a"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    assert moves(p) == [("remove_router r1 a", "add_router r1 b")]
    task = p.tasks[0]
    assert task.source_agent == "a"
    assert "L3 agent a on net1 is dead" in task.reason and "net2" in task.reason


def test_unhosted_legacy_router_is_scheduled_without_source() -> None:
    view = make_view(agents=[make_agent("a")], routers=[make_router("r1")])
    p = plan(view, all_alive(view))
    assert moves(p) == [("add_router r1 a",)]
    assert p.tasks[0].source_agent is None and "no L3 agent hosts it" in p.tasks[0].reason


def test_router_on_unknown_agent_is_left_alone() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b")],
        routers=[make_router("r1")],
        router_bindings={"r1": ["a"]},
    )
    assert plan(view, with_verdicts(view, a=UNKNOWN)) == Plan("L3Agent")


def test_extra_binding_on_dead_agent_is_removed_when_a_live_one_serves() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b"), make_agent("c")],
        routers=[make_router("r1")],
        router_bindings={"r1": ["a", "b"]},
    )
    assert moves(plan(view, with_verdicts(view, a=DEAD))) == [("remove_router r1 a",)]


def test_no_target_holds_and_keeps_the_dead_binding() -> None:
    view = make_view(
        agents=[
            make_agent("a"),
            make_agent("b", admin_state_up=False),
            make_agent("c", agent_mode="dvr"),
        ],
        routers=[make_router("r1")],
        router_bindings={"r1": ["a"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    assert p.tasks == ()
    assert p.held == (
        "router r1: L3 agent a on a is dead, but no live, admin-up legacy or dvr_snat L3 agent",
    )


def test_distributed_router_snat_moves_only_between_dvr_snat_agents() -> None:
    view = make_view(
        agents=[
            make_agent("snat1", agent_mode="dvr_snat"),
            make_agent("snat2", agent_mode="dvr_snat"),
            make_agent("legacy", agent_mode="legacy"),
            make_agent("compute1", agent_mode="dvr"),
            make_agent("compute2", agent_mode="dvr"),
        ],
        routers=[make_router("r1", distributed=True)],
        router_bindings={"r1": ["snat1", "compute1", "compute2"]},
    )
    p = plan(view, with_verdicts(view, snat1=DEAD, compute1=DEAD))
    assert moves(p) == [("remove_router r1 snat1", "add_router r1 snat2")]


def test_dvr_agents_bindings_are_never_touched() -> None:
    view = make_view(
        agents=[
            make_agent("compute1", agent_mode="dvr"),
            make_agent("snat", agent_mode="dvr_snat"),
        ],
        routers=[make_router("r1", distributed=True)],
        router_bindings={"r1": ["compute1"]},
    )
    assert plan(view, with_verdicts(view, compute1=DEAD)).tasks == ()


def test_unhosted_distributed_router_is_not_scheduled() -> None:
    view = make_view(
        agents=[make_agent("snat", agent_mode="dvr_snat")],
        routers=[make_router("r1", distributed=True)],
    )
    assert plan(view, all_alive(view)).tasks == ()


def test_ha_routers_are_left_to_vrrp_by_default_with_a_note_when_all_replicas_are_dead() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b"), make_agent("c")],
        routers=[make_router("ha1", ha=True), make_router("ha2", ha=True)],
        router_bindings={"ha1": ["a", "b"], "ha2": ["a"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    assert p.tasks == ()
    assert p.held == (
        "HA router ha2: all 1 replica(s) on dead agents (left to VRRP; restore_ha_redundancy is off)",
    )


def test_ha_redundancy_restored_add_first_on_a_different_agent() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b"), make_agent("c")],
        routers=[make_router("ha1", ha=True)],
        router_bindings={"ha1": ["a", "b"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD), unguarded(restore_ha_redundancy=True))
    assert moves(p) == [("add_router ha1 c", "remove_router ha1 a")]
    assert p.tasks[0].source_agent == "a"


def test_admin_down_router_still_gets_a_host() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b")],
        routers=[make_router("r1", admin_state_up=False)],
        router_bindings={"r1": ["a"]},
    )
    assert moves(plan(view, with_verdicts(view, a=DEAD))) == [
        ("remove_router r1 a", "add_router r1 b")
    ]


def test_az_hints_restrict_targets() -> None:
    view = make_view(
        agents=[
            make_agent("a", availability_zone="az1"),
            make_agent("b", availability_zone="az1"),
            make_agent("c", availability_zone="az2"),
        ],
        routers=[make_router("r1", availability_zone_hints=["az2"])],
        router_bindings={"r1": ["a"]},
    )
    assert moves(plan(view, with_verdicts(view, a=DEAD))) == [
        ("remove_router r1 a", "add_router r1 c")
    ]


def test_the_plugin_plans_unguarded_and_the_one_guard_caps_and_breaks() -> None:
    agents = [make_agent(f"a{i}") for i in range(4)]
    routers = [make_router(f"r{i}") for i in range(6)]
    view = make_view(
        agents=agents, routers=routers, router_bindings={f"r{i}": ["a0"] for i in range(6)}
    )
    raw = plan(view, with_verdicts(view, a0=DEAD), Policy(max_moves_per_pass=2))
    assert len(raw.tasks) == 6  # the planner says what it would do; the guard decides
    capped = guarded(view, with_verdicts(view, a0=DEAD), Policy(max_moves_per_pass=2))
    assert len(capped.tasks) == 2 and capped.held[-1].startswith("cap: 6 task(s) planned, 2 kept")
    broken = guarded(view, with_verdicts(view, a0=DEAD, a1=DEAD, a2=DEAD), Policy())
    assert broken.tasks == () and broken.held[0].startswith(
        "breaker open: 3/4 L3 agents dead > 50%"
    )


# --- properties ------------------------------------------------------------------------


def _legal_target(s: Scenario, agent_id: AgentId, router_id: RouterId) -> bool:
    agent = s.view.agents[agent_id]
    return (
        s.verdicts[agent_id] is ALIVE
        and agent.admin_state_up
        and can_host_router(agent, s.view.routers[router_id])
    )


@given(s=l3_scenarios(), policy=policies)
def test_adds_only_to_live_admin_up_compatible_agents_in_zone(s: Scenario, policy: Policy) -> None:
    for action in plan(s.view, s.verdicts, policy).actions:
        if action.verb is Verb.ADD_ROUTER:
            assert _legal_target(s, action.agent_id, RouterId(action.resource_id))
        else:
            assert s.verdicts[action.agent_id] is DEAD
            assert l3_agent_mode(s.view.agents[action.agent_id]) not in ("dvr", "dvr_no_external")


@given(s=l3_scenarios(), policy=policies)
def test_converges_in_one_pass(s: Scenario, policy: Policy) -> None:
    first = plan(s.view, s.verdicts, policy)
    second = plan(apply_plan(s.view, first), s.verdicts, policy)
    assert second.tasks == ()


@given(s=l3_scenarios(), cap=st.integers(min_value=0, max_value=4))
def test_never_more_tasks_than_the_cap(s: Scenario, cap: int) -> None:
    p = guarded(s.view, s.verdicts, Policy(max_dead_fraction=1.0, max_moves_per_pass=cap))
    assert len(p.tasks) <= cap


@given(s=l3_scenarios(), fraction=st.sampled_from([0.0, 0.25, 0.5, 0.75]))
def test_breaker_holds_everything(s: Scenario, fraction: float) -> None:
    l3 = s.view.agents_of_type("L3 agent")
    dead = sum(1 for a in l3 if s.verdicts[a.id] is DEAD)
    p = guarded(s.view, s.verdicts, Policy(max_dead_fraction=fraction))
    if dead / len(l3) > fraction:
        assert p.tasks == () and p.held[0].startswith("breaker open")


@given(s=l3_scenarios(), policy=policies)
def test_a_legacy_router_is_never_on_two_agents_after_apply(s: Scenario, policy: Policy) -> None:
    after = apply_plan(s.view, plan(s.view, s.verdicts, policy))
    for router in s.view.routers.values():
        if router.ha or router.distributed:
            continue
        if len(s.view.router_bindings.get(router.id, ())) <= 1:
            assert len(after.router_bindings.get(router.id, ())) <= 1


@given(s=l3_scenarios())
def test_ha_routers_untouched_by_default(s: Scenario) -> None:
    ha = {r.id for r in s.view.routers.values() if r.ha}
    p = plan(s.view, s.verdicts, unguarded(restore_ha_redundancy=False))
    assert not [a for a in p.actions if a.resource_id in ha]


@given(s=l3_scenarios(), policy=policies)
def test_deterministic(s: Scenario, policy: Policy) -> None:
    assert plan(s.view, s.verdicts, policy) == plan(s.view, s.verdicts, policy)


@given(
    targets=st.integers(min_value=1, max_value=6),
    routers=st.integers(min_value=0, max_value=30),
    already=st.integers(min_value=0, max_value=3),
)
def test_evacuation_spreads_evenly(targets: int, routers: int, already: int) -> None:
    agents = [make_agent("dead")] + [make_agent(f"t{i}") for i in range(targets)]
    bindings = {f"r{i:02d}": ["dead"] for i in range(routers)}
    for i in range(targets):
        for j in range(already):
            bindings[f"x{i}-{j}"] = [f"t{i}"]
    view = make_view(
        agents=agents, routers=[make_router(r) for r in bindings], router_bindings=bindings
    )
    after = apply_plan(view, plan(view, with_verdicts(view, dead=DEAD)))
    loads = [len(after.routers_on(AgentId(f"t{i}"))) for i in range(targets)]
    assert max(loads) - min(loads) <= 1
    assert not after.routers_on(AgentId("dead"))


def test_legacy_router_on_a_dvr_agent_is_left_alone_with_a_note() -> None:
    view = make_view(
        agents=[make_agent("compute", agent_mode="dvr"), make_agent("b")],
        routers=[make_router("r1")],
        router_bindings={"r1": ["compute"]},
    )
    p = plan(view, with_verdicts(view, compute=DEAD))
    assert p.tasks == () and "bound to a dvr-mode agent" in p.held[0]
