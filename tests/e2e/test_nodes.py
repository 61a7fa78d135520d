"""Node death vs. a crashed agent vs. a slow node, end to end: the daemon as a process, the
simulated Neutron over HTTP, the simulated agents heartbeating and answering RPC on the real
RabbitMQ (issue 12).

Every host runs what a real one does: the network nodes net1..net3 an L3, a DHCP, an Open
vSwitch and a metadata agent, two compute hosts the last two. A node that dies takes all of
them at once and nothing consumes its queues any more: the daemon must move its routers
within seconds, long before agent_down_time. A lone crashed agent (its neighbours still
report) and a node whose agents stop reporting but still answer RPC are left to today's rule:
nothing moves before agent_down_time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rpcdaemon.adapters.probe import RpcProber
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT
from rpcdaemon.sim.scenario import add_compute_hosts, add_node_agents
from tests.e2e.harness import REPORT_INTERVAL, DaemonProcess, Rig, measure, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
PROBE_TIMEOUT = 0.3  # a live agent answers in milliseconds; the verdict waits this long
SETTLE = 0.2  # a heartbeat in flight when the agents stopped reaches the server by then


def node_rig(make_rig: Callable[..., Rig]) -> Rig:
    """Three network nodes (L3, DHCP, OVS, metadata) and two compute hosts (OVS, metadata)."""
    rig = make_rig(l3=3, dhcp=3, routers=12, networks=3, agent_down_time=ADT)
    add_node_agents(rig.cloud, sorted({str(a["host"]) for a in rig.cloud.agents()}))
    add_compute_hosts(rig.cloud, 2)
    return rig


def start(rig: Rig) -> DaemonProcess:
    daemon = rig.start_daemon(plugins="L3Agent DHCPAgent", daemon={"probe_timeout": PROBE_TIMEOUT})
    daemon.wait_ready(ADT)
    assert rig.router_moves() == 0  # a healthy cloud: nothing to do
    return daemon


def busiest_host(rig: Rig) -> tuple[str, str]:
    """The network node whose L3 agent hosts the most routers, and that agent."""
    victim = rig.busiest_l3()
    return str(rig.cloud.agent(victim)["host"]), victim


def last_report(rig: Rig, agent_ids: list[str]) -> float:
    time.sleep(SETTLE)
    return max(rig.cloud.last_report(a) for a in agent_ids)


def agent_on(rig: Rig, agent_type: str, host: str) -> str:
    agent = rig.cloud.find_agent(host, agent_type)
    assert agent is not None
    return str(agent["id"])


def test_simulated_agents_answer_a_probe_unless_their_process_is_gone(
    make_rig: Callable[..., Rig],
) -> None:
    rig = node_rig(make_rig)
    time.sleep(SETTLE)  # the bus thread consumes the queues of the agents added above
    queues = ["l3_agent.net1", "dhcp_agent.net1", "q-agent-notifier-tunnel-update.net1"]
    control = "q-agent-notifier-tunnel-update.compute1"
    with RpcProber(rig.amqp_url, exchange=rig.exchange) as prober:
        answers = prober.probe_detailed([*queues, control], 2.0)
        assert all(r.answered and r.failure == "NoSuchMethod" for r in answers.values())
        rig.bus.freeze_node("net1")  # no heartbeats; the processes still answer
        time.sleep(SETTLE)
        assert all(prober.probe([*queues, control], 2.0).values())
        rig.bus.kill_node("net1")  # a dead node: its connections linger, nothing answers
        time.sleep(SETTLE)
        outcomes = prober.probe_outcomes([*queues, control], PROBE_TIMEOUT)
        assert outcomes == {**dict.fromkeys(queues, "silent"), control: "answered"}
        rig.bus.stop_node("net1")  # processes gone on a live host: consumers gone too
        time.sleep(SETTLE)
        outcomes = prober.probe_outcomes([*queues, control], PROBE_TIMEOUT)
        assert outcomes == {**dict.fromkeys(queues, "no_consumer"), control: "answered"}
        rig.bus.revive_node("net1")
        time.sleep(SETTLE)
        assert all(prober.probe(queues, 2.0).values())
    assert rig.bus.rpc_answered >= 2 * len(queues) + 2


def test_a_dead_node_is_moved_off_long_before_agent_down_time(
    make_rig: Callable[..., Rig],
) -> None:
    rig = node_rig(make_rig)
    daemon = start(rig)
    host, l3_victim = busiest_host(rig)
    dhcp_victim = agent_on(rig, DHCP_AGENT, host)
    routers = rig.routers_on(l3_victim)
    assert routers and rig.networks_on(dhcp_victim)
    live_l3 = [a for a in rig.l3_ids() if a != l3_victim]
    live_dhcp = [a for a in rig.dhcp_ids() if a != dhcp_victim]

    victims = rig.bus.kill_node(host)
    assert len(victims) == 4  # L3, DHCP, Open vSwitch, metadata
    last = last_report(rig, victims)
    moved = wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live_l3),
        timeout=ADT + 20,
    )
    dropped = wait_until(
        "the dead node's DHCP agent hosts nothing",
        lambda: not rig.networks_on(dhcp_victim) and rig.every_dhcp_network_on(live_dhcp),
        timeout=ADT + 20,
    )
    routers_took, networks_took = moved - last, dropped - last
    measure("node-death-routers", routers_took, routers=len(routers), agent_down_time=ADT)
    measure("node-death-networks", networks_took, agent_down_time=ADT)
    assert routers_took < ADT, f"routers moved {routers_took:.2f}s after the last heartbeat"
    assert networks_took < ADT, f"networks dropped {networks_took:.2f}s after it"
    daemon.wait_log(rf"NODE DOWN: node {host} dead")
    assert rig.routers_on(l3_victim) == set()
    assert rig.router_moves() == 2 * len(routers)  # one remove and one add each, no more
    assert daemon.lines("ERROR") == []


def test_a_lone_crashed_l3_agent_waits_for_agent_down_time(
    make_rig: Callable[..., Rig],
) -> None:
    rig = node_rig(make_rig)
    daemon = start(rig)
    host, victim = busiest_host(rig)
    held = rig.routers_on(victim)
    live = [a for a in rig.l3_ids() if a != victim]

    rig.kill(victim)  # its host's DHCP, OVS and metadata agents keep reporting
    last = last_report(rig, [victim])
    time.sleep(max(0.0, last + ADT - REPORT_INTERVAL - time.monotonic()))
    assert rig.routers_on(victim) == held, "routers moved before agent_down_time"
    assert rig.router_moves() == 0
    moved = wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    measure("lone-agent-crash-routers", moved - last, routers=len(held), agent_down_time=ADT)
    assert moved - last >= ADT - REPORT_INTERVAL
    daemon.wait_log(rf"agent L3 agent@{host} is DOWN")
    assert daemon.count("NODE DOWN") == 0
    assert daemon.lines("ERROR") == []


def test_a_frozen_node_that_still_answers_rpc_waits_for_agent_down_time(
    make_rig: Callable[..., Rig],
) -> None:
    rig = node_rig(make_rig)
    daemon = start(rig)
    host, l3_victim = busiest_host(rig)
    held = rig.routers_on(l3_victim)
    live = [a for a in rig.l3_ids() if a != l3_victim]

    victims = rig.bus.freeze_node(host)  # no heartbeats; its processes answer the probe
    last = last_report(rig, victims)
    time.sleep(max(0.0, last + ADT - REPORT_INTERVAL - time.monotonic()))
    assert rig.routers_on(l3_victim) == held, "routers moved before agent_down_time"
    assert rig.router_moves() == 0
    daemon.wait_log(rf"node {host}: silent -> slow", timeout=1.0)  # the probe was answered
    moved = wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    measure("frozen-node-routers", moved - last, routers=len(held), agent_down_time=ADT)
    assert moved - last >= ADT - REPORT_INTERVAL
    assert daemon.count("NODE DOWN") == 0
    assert all(a["alive"] for a in rig.agents(L3_AGENT) if a["host"] != host)
    assert daemon.lines("ERROR") == []


def test_a_node_whose_agent_processes_all_restart_waits_for_agent_down_time(
    make_rig: Callable[..., Rig],
) -> None:
    """systemctl restart neutron-*: every process of the host exits at once, but the host is
    up (its kernel closed their connections: no consumer left) and its routers keep serving."""
    rig = node_rig(make_rig)
    daemon = start(rig)
    host, l3_victim = busiest_host(rig)
    held = rig.routers_on(l3_victim)

    victims = rig.bus.stop_node(host)
    last = last_report(rig, victims)
    time.sleep(max(0.0, last + ADT - REPORT_INTERVAL - time.monotonic()))
    assert rig.routers_on(l3_victim) == held, "routers moved before agent_down_time"
    assert rig.router_moves() == 0
    daemon.wait_log(rf"node {host}: silent -> stopped", timeout=1.0)
    assert daemon.count("NODE DOWN") == 0
