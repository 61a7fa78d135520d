"""DHCPAgent planner: scenarios, then Hypothesis properties over messy clusters."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon.core.actions import Plan, Verb
from rpcdaemon.core.guards import guard
from rpcdaemon.core.ids import AgentId, Liveness, NetworkId
from rpcdaemon.core.placement import can_host_network, is_live
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.projection import apply_plan
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.base import Binding, Planner
from rpcdaemon.plugins.dhcpagent import DHCPAgentPlugin
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.testing import all_alive, make_dhcp_agent, make_network, make_view, verdicts_of

from .strategies import Scenario, dhcp_scenarios, policies, unguarded

ALIVE, DEAD, UNKNOWN = Liveness.ALIVE, Liveness.DEAD, Liveness.UNKNOWN
PLUGIN = DHCPAgentPlugin(Settings(path="x", daemon=DaemonSettings()))


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


def moves(p: Plan) -> list[str]:
    return [f"{a.verb.value} {a.resource_id} {a.agent_id}" for a in p.actions]


def with_verdicts(view: ClusterView, **by_id: Liveness) -> dict[AgentId, Liveness]:
    verdicts = all_alive(view)
    verdicts.update(verdicts_of(by_id))
    return verdicts


def test_plugin_identity_and_bindings() -> None:
    assert isinstance(PLUGIN, Planner)
    assert (PLUGIN.name, PLUGIN.agent_type) == ("DHCPAgent", "DHCP agent")
    assert list(PLUGIN.bindings()) == [
        Binding("neutron", "q-reports-plugin"),
        Binding("neutron", "q-plugin"),
        Binding("neutron", "notifications.info"),
    ]
    quiet = DHCPAgentPlugin(
        Settings(
            path="x",
            daemon=DaemonSettings(),
            dhcp=AgentPluginSettings(name="DHCPAgent", notifications=False, exchange="quantum"),
        )
    )
    assert [b.routing_key for b in quiet.bindings()] == ["q-reports-plugin", "q-plugin"]
    assert {b.exchange for b in quiet.bindings()} == {"quantum"}
    custom = DHCPAgentPlugin(
        Settings(
            path="x",
            daemon=DaemonSettings(),
            dhcp=AgentPluginSettings(name="DHCPAgent", notification_topic="neutron_notif"),
        )
    )
    assert custom.bindings()[-1] == Binding("neutron", "neutron_notif.info")


def test_every_live_agent_gets_every_dhcp_network_and_dead_ones_lose_them() -> None:
    view = make_view(
        agents=[make_dhcp_agent("a"), make_dhcp_agent("b"), make_dhcp_agent("c")],
        networks=[make_network("n1"), make_network("n2")],
        network_bindings={"n1": ["a"], "n2": ["a", "b"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    # n1 has no live host: its adds come first; then removals; then replication
    assert moves(p) == [
        "add_network n1 b",
        "add_network n1 c",
        "remove_network n1 a",
        "remove_network n2 a",
        "add_network n2 c",
    ]
    removal = p.tasks[2]
    assert removal.source_agent == "a" and "DHCP agent a on a is dead" in removal.reason
    assert p.tasks[0].source_agent is None


def test_agents_per_network_keeps_n_least_loaded() -> None:
    view = make_view(
        agents=[make_dhcp_agent(x) for x in "abcd"],
        networks=[make_network("n1"), make_network("n2"), make_network("n3", dhcp_enabled=False)],
        network_bindings={"n1": ["a"], "n2": ["b"], "n3": ["c"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD), unguarded(dhcp_agents_per_network=2))
    # n1: d (load 0) then b (load 1, host before c); n2: c and d tie at 1 -> c
    assert moves(p) == [
        "add_network n1 b",
        "add_network n1 d",
        "remove_network n1 a",
        "add_network n2 c",
    ]


def test_no_live_dhcp_agent_keeps_everything() -> None:
    view = make_view(
        agents=[make_dhcp_agent("a"), make_dhcp_agent("b", admin_state_up=False)],
        networks=[make_network("n1")],
        network_bindings={"n1": ["a"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    assert p.tasks == () and p.held == ("no live DHCP agent: keeping every binding on dead agents",)


def test_network_with_no_target_in_zone_keeps_its_dead_binding() -> None:
    view = make_view(
        agents=[
            make_dhcp_agent("a", availability_zone="az1"),
            make_dhcp_agent("b", availability_zone="az2"),
        ],
        networks=[make_network("n1", availability_zone_hints=["az1"]), make_network("n2")],
        network_bindings={"n1": ["a"], "n2": ["a"]},
    )
    p = plan(view, with_verdicts(view, a=DEAD))
    assert moves(p) == ["add_network n2 b", "remove_network n2 a"]
    assert p.held == (
        "network n1: only on dead DHCP agents, but no live, admin-up DHCP agent in AZ az1; "
        "keeping its bindings",
    )


def test_networks_without_dhcp_are_never_added_but_leave_dead_agents() -> None:
    view = make_view(
        agents=[make_dhcp_agent("a"), make_dhcp_agent("b")],
        networks=[make_network("n1", dhcp_enabled=False), make_network("n2", dhcp_enabled=False)],
        network_bindings={"n1": ["a"], "n2": ["b"]},
    )
    assert moves(plan(view, with_verdicts(view, a=DEAD))) == ["remove_network n1 a"]


def test_unknown_agents_are_never_acted_on() -> None:
    view = make_view(
        agents=[make_dhcp_agent("a"), make_dhcp_agent("b")],
        networks=[make_network("n1")],
        network_bindings={"n1": ["a", "b"]},
    )
    p = plan(view, with_verdicts(view, a=UNKNOWN))
    assert p.tasks == ()


def test_deleted_network_is_removed_from_every_agent_listing_it() -> None:
    view = make_view(
        agents=[make_dhcp_agent("a"), make_dhcp_agent("b")],
        networks=[make_network("n1")],
        network_bindings={"n1": ["a", "b"], "gone": ["a", "b"]},
    )
    p = plan(view, with_verdicts(view, b=UNKNOWN))
    assert moves(p) == ["remove_network gone a", "remove_network gone b"]
    assert all(t.source_agent is None for t in p.tasks)
    assert "no longer exists" in p.tasks[0].reason


def test_a_view_without_networks_is_not_taken_as_everything_deleted() -> None:
    view = make_view(agents=[make_dhcp_agent("a")], network_bindings={"n1": ["a"]})
    p = plan(view, all_alive(view))
    assert p.tasks == () and "not treating them as deleted" in p.held[0]


def test_the_breaker_applies_through_the_one_guard() -> None:
    view = make_view(
        agents=[make_dhcp_agent(x) for x in "abc"],
        networks=[make_network("n1")],
        network_bindings={"n1": ["a"]},
    )
    assert plan(view, with_verdicts(view, a=DEAD, b=DEAD), Policy()).tasks  # unguarded
    p = guarded(view, with_verdicts(view, a=DEAD, b=DEAD), Policy())
    assert p.tasks == () and p.held[0].startswith("breaker open: 2/3 DHCP agents dead > 50%")


# --- properties ------------------------------------------------------------------------


@given(s=dhcp_scenarios(), policy=policies)
def test_adds_only_to_live_admin_up_dhcp_agents_in_zone(s: Scenario, policy: Policy) -> None:
    for action in plan(s.view, s.verdicts, policy).actions:
        agent = s.view.agents[action.agent_id]
        if action.verb is Verb.ADD_NETWORK:
            network = s.view.networks[NetworkId(action.resource_id)]
            assert network.dhcp_enabled
            assert is_live(agent, s.verdicts) and can_host_network(agent, network)
        elif action.resource_id in s.view.networks:
            assert s.verdicts[action.agent_id] is DEAD


@given(s=dhcp_scenarios(), policy=policies)
def test_converges_in_one_pass(s: Scenario, policy: Policy) -> None:
    first = plan(s.view, s.verdicts, policy)
    second = plan(apply_plan(s.view, first), s.verdicts, policy)
    assert second.tasks == ()


@given(s=dhcp_scenarios(), cap=st.integers(min_value=0, max_value=4))
def test_never_more_tasks_than_the_cap(s: Scenario, cap: int) -> None:
    p = guarded(s.view, s.verdicts, Policy(max_dead_fraction=1.0, max_moves_per_pass=cap))
    assert len(p.tasks) <= cap


@given(s=dhcp_scenarios(), fraction=st.sampled_from([0.0, 0.25, 0.5, 0.75]))
def test_breaker_holds_everything(s: Scenario, fraction: float) -> None:
    dhcp = s.view.agents_of_type("DHCP agent")
    dead = sum(1 for a in dhcp if s.verdicts[a.id] is DEAD)
    p = guarded(s.view, s.verdicts, Policy(max_dead_fraction=fraction))
    if dead / len(dhcp) > fraction:
        assert p.tasks == () and p.held[0].startswith("breaker open")


@given(s=dhcp_scenarios(), policy=policies)
def test_replication_reaches_every_or_n_live_agents(s: Scenario, policy: Policy) -> None:
    after = apply_plan(s.view, plan(s.view, s.verdicts, policy))
    wanted = policy.dhcp_agents_per_network
    for network in s.view.networks.values():
        if not network.dhcp_enabled:
            continue
        eligible = {
            a.id
            for a in s.view.agents.values()
            if is_live(a, s.verdicts) and can_host_network(a, network)
        }
        if not any(is_live(a, s.verdicts) for a in s.view.agents_of_type("DHCP agent")):
            continue
        hosts = after.network_bindings.get(network.id, frozenset())
        live_hosts = {a for a in hosts if is_live(s.view.agents[a], s.verdicts)}
        if wanted is None:
            assert eligible <= hosts
        else:
            assert len(live_hosts) >= min(wanted, len(eligible | live_hosts))


@given(s=dhcp_scenarios(), policy=policies)
def test_a_dhcp_network_never_loses_its_last_binding(s: Scenario, policy: Policy) -> None:
    after = apply_plan(s.view, plan(s.view, s.verdicts, policy))
    for network in s.view.networks.values():
        if network.dhcp_enabled and s.view.network_bindings.get(network.id):
            assert after.network_bindings.get(network.id)


@given(s=dhcp_scenarios(), policy=policies)
def test_deterministic(s: Scenario, policy: Policy) -> None:
    assert plan(s.view, s.verdicts, policy) == plan(s.view, s.verdicts, policy)
