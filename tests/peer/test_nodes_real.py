"""Classify before acting, against a real neutron-server 29 (issue 12's peer tests).

The rig (tests/peer/rig.py) runs one fake-agents process per host: L3, DHCP, Open vSwitch and
metadata agents on net1-net3, OVS and metadata on comp1-comp2, reporting every 2.5 s with
neutron's own client; ``agent_down_time`` is 10 s. ``kill_node`` freezes a host's process
(SIGSTOP: a powered-off node, its broker connections still open, nothing answering);
``slow_node`` stops its reports while its RPC servers keep answering.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.peer.daemon import (
    Daemon,
    bind_router,
    create_dhcp_network,
    create_router,
    network_agents,
    router_agents,
    snapshot,
    tag,
    wait,
)
from tests.peer.rig import Rig

pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.broker, pytest.mark.slow]

LISTENING = "listening on the bus"
HOSTS = ("net1", "net2", "net3")


def ids(rig: Rig, agent_type: str) -> dict[str, str]:
    return {h: rig.agent_id(agent_type, h) for h in HOSTS}


def warm(rig: Rig, daemon: Daemon) -> None:
    """Listening for a full agent_down_time (the brake), every rhythm learned."""
    daemon.wait_log(LISTENING)
    time.sleep(rig.agent_down_time + 3 * rig.report_interval)


def test_a_dead_node_is_emptied_long_before_agent_down_time(
    fresh_peer: Rig, tmp_path: Path
) -> None:
    rig = fresh_peer
    l3, dhcp = ids(rig, "L3 agent"), ids(rig, "DHCP agent")
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(6)]
    for router in routers:
        bind_router(rig, l3["net1"], router)
    networks = [create_dhcp_network(rig, f"{t}-{i}", 140 + i) for i in range(2)]
    live_l3 = {l3["net2"], l3["net3"]}
    live_dhcp = {dhcp["net2"], dhcp["net3"]}

    with Daemon(rig, tmp_path) as daemon:
        wait(
            "the DHCP networks on every DHCP agent",
            lambda: all(network_agents(rig, n) == set(dhcp.values()) for n in networks),
            120,
            daemon,
        )
        warm(rig, daemon)
        killed = rig.kill_node("net1")

        def routers_on_live() -> bool:
            return all(
                len(a) == 1 and a[0] in live_l3 for a in (router_agents(rig, r) for r in routers)
            )

        wait("every router on a live L3 agent", routers_on_live, 60, daemon)
        routers_at = time.time()
        wait(
            "the DHCP networks off the dead node, on every live agent",
            lambda: all(network_agents(rig, n) == live_dhcp for n in networks),
            60,
            daemon,
        )
        networks_at = time.time()
        print(
            f"node death: routers re-homed {routers_at - killed:.1f}s, DHCP dropped "
            f"{networks_at - killed:.1f}s after the kill (agent_down_time {rig.agent_down_time:g}s)"
        )
        assert routers_at - killed < rig.agent_down_time, "not faster than today's rule"
        assert networks_at - killed < rig.agent_down_time
        assert "NODE DOWN: node net1 dead" in daemon.text()


def test_a_slow_node_and_a_lone_crash_move_nothing_early(fresh_peer: Rig, tmp_path: Path) -> None:
    rig = fresh_peer
    l3 = ids(rig, "L3 agent")
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(3)]
    for router in routers:
        bind_router(rig, l3["net1"], router)

    with Daemon(rig, tmp_path) as daemon:
        warm(rig, daemon)
        before = snapshot(rig)
        # a node slow to report for 0.8 x agent_down_time, its RPC servers answering
        rig.slow_node("net1")
        wait(
            "net1's agents to stop reporting (each reads it at its next beat)",
            lambda: time.time() - rig.last_host_heartbeat("net1") > rig.report_interval + 0.5,
            30,
            daemon,
        )
        last = rig.last_host_heartbeat("net1")
        # its agents read the revive at their next beat (up to one interval later): silent
        # for at most 0.8 x agent_down_time in all
        time.sleep(max(0.0, last + 0.8 * rig.agent_down_time - rig.report_interval - time.time()))
        rig.revive_node("net1", wait=False)
        wait(
            "net1 reporting again",
            lambda: rig.last_host_heartbeat("net1") > last,
            30,
            daemon,
        )
        assert rig.last_host_heartbeat("net1") - last <= 0.8 * rig.agent_down_time + 1.0
        time.sleep(2 * rig.report_interval)
        assert snapshot(rig) == before, "moved off a slow node that answers RPC"
        assert "NODE DOWN" not in daemon.text()
        assert "net1: silent -> slow" in daemon.text()

        # a lone L3 agent crash on a live node: nothing before agent_down_time - report_interval
        time.sleep(3 * rig.report_interval)
        rig.set_agent("l3", "net1", "hard")
        time.sleep(2 * rig.report_interval)  # it stops at its next beat
        last = rig.last_heartbeat("l3", "net1")
        time.sleep(max(0.0, last + rig.agent_down_time - rig.report_interval - time.time()))
        assert all(router_agents(rig, r) == [l3["net1"]] for r in routers), "moved too early"
        assert "NODE DOWN" not in daemon.text()
        # ... and after agent_down_time and the API, today's rule moves them
        wait(
            "the crashed agent's routers on live agents",
            lambda: all((on := router_agents(rig, r)) and l3["net1"] not in on for r in routers),
            60,
            daemon,
        )


def test_rabbitmq_stopped_for_longer_than_agent_down_time_moves_nothing(
    fresh_peer: Rig, tmp_path: Path
) -> None:
    rig = fresh_peer
    l3 = ids(rig, "L3 agent")
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(3)]
    for i, router in enumerate(routers):
        bind_router(rig, l3[HOSTS[i]], router)

    with Daemon(rig, tmp_path) as daemon:
        warm(rig, daemon)
        before = snapshot(rig)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
        try:
            time.sleep(2.5 * rig.agent_down_time)
        finally:
            subprocess.run(
                ["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120
            )
        daemon.wait_log(LISTENING, count=2, timeout=120)
        rig.wait_agents_alive(timeout=120)
        time.sleep(rig.agent_down_time + 3 * rig.report_interval)  # every pass had its chance
        assert snapshot(rig) == before
        # agents that reconnect later than our listening window may be logged DOWN by the
        # heartbeat clock (Neutron says dead too); the breaker and the API decide those
        assert "NODE DOWN" not in daemon.text()
