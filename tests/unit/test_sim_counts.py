"""The simulator's agents report what they host: a heartbeat built before a binding changed
(in flight on the bus meanwhile) must not bring the old count back for good."""

from __future__ import annotations

from rpcdaemon.sim.cloud import SimCloud


def test_a_stale_heartbeat_does_not_undo_the_counts() -> None:
    cloud = SimCloud(agent_down_time=75.0)
    agent = cloud.add_agent("DHCP agent", "net1")["id"]
    network = cloud.add_network("n")["id"]
    cloud.add_network_to_agent(agent, network)
    stale = dict(cloud.agent(agent)["configurations"])
    assert stale["networks"] == 1
    cloud.remove_network_from_agent(agent, network)
    cloud.heartbeat("net1", "DHCP agent", state={"configurations": stale})
    assert cloud.agent(agent)["configurations"]["networks"] == 0
    l3 = cloud.add_agent("L3 agent", "net1")["id"]
    router = cloud.add_router("r")["id"]
    cloud.add_router_to_agent(l3, router)
    stale = dict(cloud.agent(l3)["configurations"])
    cloud.remove_router_from_agent(l3, router)
    cloud.heartbeat("net1", "L3 agent", state={"configurations": stale})
    assert cloud.agent(l3)["configurations"]["routers"] == 0
    cloud.close()
