"""SimCloud's Neutron rules that the contract suite cannot check on a stock rig (DVR, HA, timing)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.sim.cloud import SimCloud, SimNeutronError
from rpcdaemon.sim.scenario import build_cloud


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


def refused(fn: object, *args: str) -> SimNeutronError:
    with pytest.raises(SimNeutronError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_alive_uses_whole_second_heartbeats_and_agent_down_time() -> None:
    clock = Clock()
    clock.now = 1_795_000_000.9  # stored as ...000, the fraction is lost
    cloud = SimCloud(agent_down_time=10, clock=clock)
    agent = cloud.add_agent("L3 agent", "net1")
    assert agent["heartbeat_timestamp"].endswith(":40")  # 1795000000 = ...:26:40 UTC
    clock.now = 1_795_000_010.0
    assert cloud.agent(agent["id"])["alive"] is True  # exactly agent_down_time: still alive
    clock.now = 1_795_000_010.2
    assert cloud.agent(agent["id"])["alive"] is False
    assert cloud.heartbeat("net1", "L3 agent") == "revived"
    assert cloud.heartbeat("net1", "L3 agent") == "alive"
    assert cloud.heartbeat("net9", "DHCP agent", state={"start_flag": True}) == "new"


def test_dvr_rules() -> None:
    cloud = SimCloud()
    legacy = cloud.add_agent("L3 agent", "net1")["id"]
    snat = cloud.add_agent("L3 agent", "net2", agent_mode="dvr_snat")["id"]
    dvr = cloud.add_agent("L3 agent", "compute1", agent_mode="dvr")["id"]
    router = cloud.add_router("r")["id"]
    distributed = cloud.add_router("d", distributed=True)["id"]
    assert refused(cloud.add_router_to_agent, dvr, router).type == "DVRL3CannotAssignToDvrAgent"
    assert (
        refused(cloud.remove_router_from_agent, dvr, router).type == "DVRL3CannotRemoveFromDvrAgent"
    )
    err = refused(cloud.add_router_to_agent, legacy, distributed)
    assert (err.status, err.type) == (409, "RouterL3AgentMismatch")
    cloud.add_router_to_agent(snat, distributed)
    cloud.add_router_to_agent(snat, router)  # dvr_snat hosts legacy routers too
    assert cloud.routers_on(snat) == {router, distributed}
    assert cloud.agent(snat)["configurations"]["routers"] == 2


def test_ha_router_may_sit_on_several_agents() -> None:
    cloud = SimCloud()
    agents = [cloud.add_agent("L3 agent", f"net{i}")["id"] for i in range(3)]
    router = cloud.add_router("ha", ha=True)["id"]
    for agent in agents:
        cloud.add_router_to_agent(agent, router)
    assert cloud.router_agents(router) == set(agents)


def test_router_add_to_agent_whose_process_is_gone_blocks_then_500_with_binding_saved() -> None:
    cloud = SimCloud(rpc_response_timeout=0.2)
    agent = cloud.add_agent("L3 agent", "net1")["id"]
    router = cloud.add_router("r")["id"]
    cloud.set_agent_process(agent, False)
    started = time.monotonic()
    err = refused(cloud.add_router_to_agent, agent, router)
    assert time.monotonic() - started >= 0.39
    assert (err.status, err.type) == (500, "HTTPInternalServerError")
    assert cloud.router_agents(router) == {agent}


def test_dhcp_cast_never_blocks_on_a_dead_process() -> None:
    cloud = SimCloud(rpc_response_timeout=5)
    agent = cloud.add_agent("DHCP agent", "net1")["id"]
    net = cloud.add_network("n")["id"]
    cloud.set_agent_process(agent, False)
    started = time.monotonic()
    cloud.add_network_to_agent(agent, net)
    assert time.monotonic() - started < 1
    assert cloud.agent(agent)["configurations"]["networks"] == 1


def test_events_follow_neutron_for_a_router_add() -> None:
    cloud = SimCloud()
    seen: list[tuple[str, str, str]] = []
    cloud.subscribe(lambda e: seen.append((e.kind, e.topic, e.method or e.event_type)))
    agent = cloud.add_agent("L3 agent", "net1")["id"]
    router = cloud.add_router("r")["id"]
    seen.clear()
    cloud.add_router_to_agent(agent, router)
    cloud.remove_router_from_agent(agent, router)
    assert seen == [
        ("call", "l3_agent.net1", "router_added_to_agent"),
        ("notification", "", "l3_agent.router.add"),
        ("cast", "l3_agent.net1", "router_removed_from_agent"),
        ("notification", "", "l3_agent.router.remove"),
    ]


def test_scenario_spreads_like_the_least_routers_scheduler() -> None:
    cloud = build_cloud(l3_agents=3, dhcp_agents=2, routers=9, networks=4, ha_routers=1, seed=1)
    l3 = [a["id"] for a in cloud.agents() if a["agent_type"] == "L3 agent"]
    assert sorted(len(cloud.routers_on(a)) for a in l3) == [4, 4, 4]  # 9 legacy + 1 HA on all 3
    dhcp = [a["id"] for a in cloud.agents() if a["agent_type"] == "DHCP agent"]
    assert sorted(len(cloud.networks_on(a)) for a in dhcp) == [2, 2]


def test_scenario_honours_availability_zones_and_dvr() -> None:
    cloud = build_cloud(
        l3_agents=4, dhcp_agents=0, routers=0, networks=0, dvr_routers=2, azs=("az1", "az2")
    )
    modes = {a["configurations"]["agent_mode"] for a in cloud.agents()}
    assert modes == {"dvr_snat"}
    assert {a["availability_zone"] for a in cloud.agents()} == {"az1", "az2"}
    assert all(len(cloud.router_agents(r["id"])) == 1 for r in cloud.routers())


OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 3), st.integers(0, 2)), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_a_legacy_router_is_never_on_two_agents(ops: list[tuple[str, int, int]]) -> None:
    cloud = SimCloud()
    agents = [cloud.add_agent("L3 agent", f"net{i}")["id"] for i in range(4)]
    routers = [cloud.add_router(f"r{i}")["id"] for i in range(3)]
    for op, a, r in ops:
        try:
            if op == "add":
                cloud.add_router_to_agent(agents[a], routers[r])
            else:
                cloud.remove_router_from_agent(agents[a], routers[r])
        except SimNeutronError as exc:
            assert exc.type == "RouterHostedByL3Agent"
    for router in routers:
        assert len(cloud.router_agents(router)) <= 1
    for agent in agents:
        assert cloud.agent(agent)["configurations"]["routers"] == len(cloud.routers_on(agent))
