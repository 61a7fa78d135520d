"""Scenario builders: a cloud with N agents, R routers, K networks, spread like Neutron schedules.

Neutron's defaults (neutron/scheduler): routers go to the least loaded eligible L3 agent
(``LeastRoutersScheduler``), HA routers to ``max_l3_agents_per_router`` (3) agents, networks to
``dhcp_agents_per_network`` (1) least loaded DHCP agents; availability-zone hints are honoured.

A real network node also runs an Open vSwitch and a metadata agent, and compute hosts run those
two: ``node_agents=True`` and ``compute_hosts=N`` add them (rpcdaemon's node-death detector
compares a host's agents with each other and with the other hosts').
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT, METADATA_AGENT, OVS_AGENT

NODE_AGENTS = (OVS_AGENT, METADATA_AGENT)
"""What every host runs besides its L3 and DHCP agents (a compute host: only these)."""


def build_cloud(
    *,
    l3_agents: int = 3,
    dhcp_agents: int = 3,
    routers: int = 6,
    networks: int = 6,
    azs: Sequence[str] = ("nova",),
    ha_routers: int = 0,
    dvr_routers: int = 0,
    bind: bool = True,
    seed: int | None = None,
    agent_down_time: float = 75.0,
    rpc_response_timeout: float = 10.0,
    max_l3_agents_per_router: int = 3,
    dhcp_agents_per_network: int = 1,
    node_agents: bool = False,
    compute_hosts: int = 0,
    cloud: SimCloud | None = None,
) -> SimCloud:
    """A populated cloud. Hosts are ``net1``..``netN``; agents spread round-robin over ``azs``.

    ``routers`` counts legacy routers; ``ha_routers`` and ``dvr_routers`` come on top. With any DVR
    router the L3 agents run in ``dvr_snat`` mode (which also hosts legacy routers).
    ``node_agents``: an Open vSwitch and a metadata agent on every network node too;
    ``compute_hosts``: that many hosts ``compute1``.. with only those two.
    """
    rng = random.Random(seed)
    cloud = cloud or SimCloud(
        agent_down_time=agent_down_time, rpc_response_timeout=rpc_response_timeout
    )
    mode = "dvr_snat" if dvr_routers else "legacy"
    l3 = [
        cloud.add_agent(
            L3_AGENT, f"net{i + 1}", agent_mode=mode, availability_zone=azs[i % len(azs)]
        )
        for i in range(l3_agents)
    ]
    dhcp = [
        cloud.add_agent(DHCP_AGENT, f"net{i + 1}", availability_zone=azs[i % len(azs)])
        for i in range(dhcp_agents)
    ]
    made: list[tuple[dict[str, Any], int]] = []
    for i in range(routers):
        made.append((cloud.add_router(f"router-{i + 1}"), 1))
    for i in range(ha_routers):
        made.append((cloud.add_router(f"ha-router-{i + 1}", ha=True), max_l3_agents_per_router))
    for i in range(dvr_routers):
        made.append((cloud.add_router(f"dvr-router-{i + 1}", distributed=True), 1))
    nets = [cloud.add_network(f"net-{i + 1}") for i in range(networks)]
    if node_agents:
        add_node_agents(cloud, sorted({str(a["host"]) for a in l3 + dhcp}), azs=azs)
    add_compute_hosts(cloud, compute_hosts, azs=azs)
    if not bind:
        return cloud
    for router, copies in made:
        _place(cloud, router, l3, copies, rng, kind="router")
    for net in nets:
        _place(cloud, net, dhcp, dhcp_agents_per_network, rng, kind="network")
    return cloud


def add_node_agents(
    cloud: SimCloud, hosts: Iterable[str], *, azs: Sequence[str] = ("nova",)
) -> list[dict[str, Any]]:
    """An Open vSwitch and a metadata agent on each of ``hosts`` (those it lacks)."""
    added = []
    for i, host in enumerate(hosts):
        for agent_type in NODE_AGENTS:
            if cloud.find_agent(host, agent_type) is None:
                added.append(cloud.add_agent(agent_type, host, availability_zone=azs[i % len(azs)]))
    return added


def add_compute_hosts(cloud: SimCloud, count: int, *, azs: Sequence[str] = ("nova",)) -> list[str]:
    """``count`` compute hosts (``compute1``..), each with an Open vSwitch and a metadata
    agent; returns their names."""
    hosts = [f"compute{i + 1}" for i in range(count)]
    add_node_agents(cloud, hosts, azs=azs)
    return hosts


def _place(
    cloud: SimCloud,
    item: dict[str, Any],
    agents: list[dict[str, Any]],
    copies: int,
    rng: random.Random,
    *,
    kind: str,
) -> None:
    hints = set(item.get("availability_zone_hints") or [])
    eligible = [a for a in agents if not hints or a["availability_zone"] in hints]
    if not eligible:
        return

    def load(agent: dict[str, Any]) -> int:
        aid = str(agent["id"])
        return len(cloud.routers_on(aid)) if kind == "router" else len(cloud.networks_on(aid))

    rng.shuffle(eligible)  # ties broken at random, as the schedulers do
    for agent in sorted(eligible, key=load)[:copies]:
        if kind == "router":
            cloud.add_router_to_agent(str(agent["id"]), str(item["id"]))
        else:
            cloud.add_network_to_agent(str(agent["id"]), str(item["id"]))
