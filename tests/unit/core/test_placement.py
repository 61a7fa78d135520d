"""Placement: who may host what, and least-loaded picking with a stable tie-break."""

from __future__ import annotations

import pytest

from rpcdaemon.core.ids import AgentId, Host, Liveness
from rpcdaemon.core.placement import (
    LoadTracker,
    can_host_network,
    can_host_router,
    describe_constraints,
    l3_agent_mode,
    network_targets,
    router_targets,
)
from rpcdaemon.core.view import AgentInfo
from rpcdaemon.testing import (
    all_alive,
    make_agent,
    make_dhcp_agent,
    make_network,
    make_router,
    make_view,
    verdicts_of,
)


@pytest.mark.parametrize(
    ("mode", "legacy_ok", "distributed_ok"),
    [
        ("legacy", True, False),
        ("dvr_snat", True, True),
        ("dvr", False, False),
        ("dvr_no_external", False, False),
        ("something_new", False, False),
    ],
)
def test_agent_mode_compatibility(mode: str, legacy_ok: bool, distributed_ok: bool) -> None:
    agent = make_agent("a", agent_mode=mode)
    assert can_host_router(agent, make_router("r")) is legacy_ok
    assert can_host_router(agent, make_router("r", distributed=True)) is distributed_ok
    assert can_host_router(agent, make_router("r", ha=True)) is legacy_ok


def test_missing_agent_mode_is_legacy_and_configurations_are_a_fallback() -> None:
    bare = AgentInfo(
        id=AgentId("a"), agent_type="L3 agent", host=Host("h"), admin_state_up=True, alive=True
    )
    assert l3_agent_mode(bare) == "legacy"
    via_config = AgentInfo(
        id=AgentId("b"),
        agent_type="L3 agent",
        host=Host("h"),
        admin_state_up=True,
        alive=True,
        configurations={"agent_mode": "dvr"},
    )
    assert l3_agent_mode(via_config) == "dvr"
    assert not can_host_router(via_config, make_router("r"))


def test_wrong_type_never_hosts() -> None:
    assert not can_host_router(make_dhcp_agent("d"), make_router("r"))
    assert not can_host_network(make_agent("l3"), make_network("n"))
    assert can_host_network(make_dhcp_agent("d"), make_network("n"))


@pytest.mark.parametrize(
    ("agent_zone", "hints", "ok"),
    [
        ("az1", (), True),
        (None, (), True),
        ("az1", ("az1",), True),
        ("az1", ("az2",), False),
        ("az2", ("az1", "az2"), True),
        (None, ("az1",), False),
    ],
)
def test_availability_zone_hints(agent_zone: str | None, hints: tuple[str, ...], ok: bool) -> None:
    assert (
        can_host_router(
            make_agent("a", availability_zone=agent_zone),
            make_router("r", availability_zone_hints=hints),
        )
        is ok
    )
    assert (
        can_host_network(
            make_dhcp_agent("d", availability_zone=agent_zone),
            make_network("n", availability_zone_hints=hints),
        )
        is ok
    )


def test_targets_are_alive_admin_up_and_ordered_by_host() -> None:
    agents = [
        make_agent("z", host="net3"),
        make_agent("y", host="net1"),
        make_agent("down", host="net0", admin_state_up=False),
        make_agent("dead", host="net0a"),
        make_agent("unknown", host="net0b"),
        make_agent("silent", host="net0c"),  # no verdict at all
        make_dhcp_agent("dhcp", host="net0d"),
    ]
    view = make_view(agents=agents)
    verdicts = all_alive(view)
    verdicts.update(verdicts_of({"dead": Liveness.DEAD, "unknown": Liveness.UNKNOWN}))
    del verdicts[AgentId("silent")]
    assert [a.id for a in router_targets(view, verdicts, make_router("r"))] == ["y", "z"]
    assert [a.id for a in network_targets(view, verdicts, make_network("n"))] == ["dhcp"]


def test_load_tracker_picks_least_loaded_then_host_then_id_and_counts() -> None:
    agents = [make_agent("b", host="h2"), make_agent("a", host="h2"), make_agent("c", host="h1")]
    view = make_view(agents=agents, router_bindings={"r1": ["c"], "r2": ["c"]})
    load = LoadTracker.of_routers(view)
    assert load.load(AgentId("c")) == 2
    picks = [load.place(agents) for _ in range(4)]
    assert [p.id for p in picks if p] == ["a", "b", "a", "b"]
    assert load.place(agents, exclude={AgentId("a"), AgentId("b"), AgentId("c")}) is None
    load.remove(AgentId("c"))
    load.remove(AgentId("c"))
    load.remove(AgentId("c"))
    assert load.load(AgentId("c")) == 0


def test_network_load_counts_network_bindings() -> None:
    view = make_view(network_bindings={"n1": ["d1", "d2"], "n2": ["d1"]})
    load = LoadTracker.of_networks(view)
    assert (load.load(AgentId("d1")), load.load(AgentId("d2")), load.load(AgentId("d3"))) == (
        2,
        1,
        0,
    )


def test_describe_constraints() -> None:
    assert describe_constraints(kind="router", distributed=True, hints=("az2", "az1")) == (
        "no live, admin-up dvr_snat L3 agent in AZ az1, az2"
    )
    assert describe_constraints(kind="network", distributed=False, hints=()) == (
        "no live, admin-up DHCP agent"
    )
