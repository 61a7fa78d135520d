"""The daemon (``python -m rpcdaemon -d``, L3Agent + DHCPAgent) against a real neutron-server 29.

The agents are the rig's fake agents (neutron's own report_state client, real RPC servers), the
bus is the rig's vhost on the real RabbitMQ, the API is Neutron's own under uWSGI. "Kill" = the
agent stops heartbeating AND stops consuming its RPC queue (a crashed agent process).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.peer.daemon import (
    Daemon,
    bind_router,
    create_dhcp_network,
    create_router,
    dhcp_networks,
    network_agents,
    router_agents,
    snapshot,
    tag,
    wait,
)
from tests.peer.rig import AGENT_DOWN_TIME, HOSTS, Rig
from tests.tcpproxy import TcpProxy

# the first peer test also brings the rig up (cold: a venv install)
pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.broker, pytest.mark.slow]

# Functional deadlines, generous for a shared 2-core machine: agent_down_time (10 s) to notice,
# one API confirmation, a few REST calls per move.
FAILOVER_DEADLINE = 120.0
LISTENING = "listening on the bus"


def ids(rig: Rig, agent_type: str) -> dict[str, str]:
    return {h: rig.agent_id(agent_type, h) for h in HOSTS}


def test_killed_l3_agent_routers_end_on_live_agents(fresh_peer: Rig, tmp_path: Path) -> None:
    rig = fresh_peer
    l3 = ids(rig, "L3 agent")
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(6)]
    for i, router in enumerate(routers):
        bind_router(rig, l3["net1"] if i < 4 else l3["net2"], router)
    _, body = rig.call("GET", f"/agents/{l3['net1']}/l3-routers")
    on_victim = {r["id"] for r in body["routers"]}
    assert set(routers[:4]) <= on_victim
    watched = sorted(on_victim | set(routers))
    live = {l3["net2"], l3["net3"]}

    with Daemon(rig, tmp_path) as daemon:
        daemon.wait_log(LISTENING)
        rig.set_agent("l3", "net1", "hard")

        def every_router_on_one_live_agent() -> bool:
            return all(
                len(agents) == 1 and agents[0] in live
                for agents in (router_agents(rig, r) for r in watched)
            )

        wait(
            "every router on a live L3 agent",
            every_router_on_one_live_agent,
            FAILOVER_DEADLINE,
            daemon,
        )
        _, body = rig.call("GET", f"/agents/{l3['net1']}")
        assert body["agent"]["alive"] is False  # Neutron agrees net1 is dead
        assert f"{l3['net1']}" in daemon.text() and "is DOWN" in daemon.text()
    # routers that were elsewhere stayed where they were
    assert router_agents(rig, routers[4]) == [l3["net2"]]
    assert router_agents(rig, routers[5]) == [l3["net2"]]


def test_killed_dhcp_agent_networks_removed_and_on_every_live_agent(
    fresh_peer: Rig, tmp_path: Path
) -> None:
    rig = fresh_peer
    dhcp = ids(rig, "DHCP agent")
    t = tag()
    mine = [create_dhcp_network(rig, f"{t}-{i}", 100 + i) for i in range(3)]

    with Daemon(rig, tmp_path) as daemon:
        daemon.wait_log(LISTENING)
        everyone = set(dhcp.values())
        wait(
            "every DHCP network on all three DHCP agents",
            lambda: all(network_agents(rig, n) == everyone for n in mine),
            FAILOVER_DEADLINE,
            daemon,
        )
        rig.set_agent("dhcp", "net1", "hard")
        live = {dhcp["net2"], dhcp["net3"]}

        def removed_and_on_live() -> bool:
            _, body = rig.call("GET", f"/agents/{dhcp['net1']}/dhcp-networks")
            if body["networks"]:
                return False
            return all(network_agents(rig, n) == live for n in dhcp_networks(rig))

        wait(
            "networks off the dead agent, on every live one",
            removed_and_on_live,
            FAILOVER_DEADLINE,
            daemon,
        )
        assert set(mine) <= set(dhcp_networks(rig))


def test_new_network_appears_on_every_live_dhcp_agent(fresh_peer: Rig, tmp_path: Path) -> None:
    rig = fresh_peer
    dhcp = ids(rig, "DHCP agent")
    with Daemon(rig, tmp_path) as daemon:
        daemon.wait_log(LISTENING)
        net = create_dhcp_network(rig, f"{tag()}-new", 120)
        wait(
            "the new network on all three DHCP agents",
            lambda: network_agents(rig, net) == set(dhcp.values()),
            FAILOVER_DEADLINE,
            daemon,
        )
        # it was the notification (or a resync), not Neutron: network_auto_schedule is off
        assert net in daemon.text()


def test_bus_cut_longer_than_agent_down_time_moves_nothing(fresh_peer: Rig, tmp_path: Path) -> None:
    rig = fresh_peer
    l3 = ids(rig, "L3 agent")
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(3)]
    for i, router in enumerate(routers):
        bind_router(rig, l3["net1"] if i < 2 else l3["net2"], router)
    create_dhcp_network(rig, f"{t}-cut", 130)
    dhcp = set(ids(rig, "DHCP agent").values())

    with TcpProxy(("127.0.0.1", 5672)) as proxy:
        # confirm_with_api off: only the daemon's own "I was deaf" logic protects the agents
        daemon = Daemon(
            rig,
            tmp_path,
            amqp_url=rig.amqp_url_via(proxy.port),
            plugin_options="confirm_with_api = false\n",
        )
        with daemon:
            daemon.wait_log(LISTENING)
            wait(
                "DHCP networks settled on every agent",
                lambda: all(network_agents(rig, n) == dhcp for n in dhcp_networks(rig)),
                FAILOVER_DEADLINE,
                daemon,
            )
            before = snapshot(rig)
            proxy.cut()
            daemon.wait_log("lost the bus")
            time.sleep(2.5 * AGENT_DOWN_TIME)  # the agents go on heartbeating; we hear nothing
            proxy.restore()
            daemon.wait_log(LISTENING, count=2, timeout=60)
            time.sleep(AGENT_DOWN_TIME + 5)  # every pass after the reconnect had its chance
            assert snapshot(rig) == before
            assert "is DOWN" not in daemon.text()
