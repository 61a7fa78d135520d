"""DHCPAgent end to end: every DHCP network on every live DHCP agent, with the daemon as a
process, the simulated Neutron over HTTP and the simulated DHCP agents on the real RabbitMQ.

The clouds start converged (each network on all three agents), so any change the daemon
makes is a reaction to what the test did.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rpcdaemon.sim.resources import DHCP_AGENT
from tests.e2e.harness import LIST_AGENTS, Rig, measure, proxy_url, wait_until
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
PLUGINS = "DHCPAgent"


def dhcp_rig(make_rig: Callable[..., Rig], networks: int = 4) -> Rig:
    rig: Rig = make_rig(
        l3=0, dhcp=3, routers=0, networks=networks, dhcp_agents_per_network=3, agent_down_time=ADT
    )
    assert rig.every_dhcp_network_on(rig.dhcp_ids())
    return rig


def test_new_network_reaches_every_live_agent_in_the_pass_its_notification_starts(
    make_rig: Callable[..., Rig],
) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS)  # resync_interval 30: only a notification helps
    daemon.wait_ready(ADT)
    assert rig.network_changes() == 0

    created = time.monotonic()
    network = rig.create_network("fresh")  # the sim publishes network/subnet.create.end
    done = wait_until(
        "the new network on every DHCP agent",
        lambda: rig.cloud.network_agents(network) == set(rig.dhcp_ids()),
        timeout=10,
    )
    measure("dhcp-new-network-notification", done - created)
    daemon.wait_log(r"pass \([^)]*notification:[^)]*\): 3 task\(s\) run, 3 ok", timeout=5)
    assert rig.network_changes() == 3
    assert daemon.lines("ERROR") == []


def test_new_network_without_notifications_arrives_within_resync_interval(
    make_rig: Callable[..., Rig],
) -> None:
    resync = 3.0
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(
        plugins=PLUGINS, daemon={"resync_interval": resync}, dhcp={"notifications": "false"}
    )
    daemon.wait_ready(ADT)

    created = time.monotonic()
    network = rig.create_network("fresh")
    done = wait_until(
        "the new network on every DHCP agent",
        lambda: rig.cloud.network_agents(network) == set(rig.dhcp_ids()),
        timeout=resync + 10,
    )
    measure("dhcp-new-network-resync", done - created, resync_interval=resync)
    assert done - created <= resync + 2.0
    daemon.wait_log(r"pass \(resync\): 3 task\(s\) run, 3 ok", timeout=5)
    assert "notification:" not in daemon.log()


def test_dead_agent_loses_its_networks_and_gets_them_all_back_when_it_returns(
    make_rig: Callable[..., Rig],
) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS)
    daemon.wait_ready(ADT)
    victim, *live = rig.dhcp_ids()
    networks = rig.dhcp_network_ids()

    rig.kill(victim)
    done = wait_until("the dead agent emptied", lambda: not rig.networks_on(victim), ADT + 20)
    measure("dhcp-evacuation", done - rig.cloud.last_report(victim), networks=len(networks))
    assert rig.every_dhcp_network_on(live)
    assert rig.network_changes() == len(networks)  # one removal each, nothing added

    revived = time.monotonic()
    rig.bus.revive(victim)
    done = wait_until(
        "every network back on the returning agent",
        lambda: rig.networks_on(victim) == networks,
        timeout=10,  # well inside resync_interval (30 s): the return itself starts a pass
    )
    measure("dhcp-agent-back", done - revived)
    assert rig.every_dhcp_network_on(rig.dhcp_ids())
    assert rig.network_changes() == 2 * len(networks)
    assert daemon.lines("ERROR") == []


def test_deleted_network_and_network_without_dhcp_are_never_scheduled(
    make_rig: Callable[..., Rig],
) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS, daemon={"resync_interval": 1})
    daemon.wait_ready(ADT)
    doomed = sorted(rig.dhcp_network_ids())[0]

    no_dhcp = rig.create_network("no-dhcp", dhcp=False, cidr="10.201.0.0/24")
    assert rig.api("DELETE", f"/v2.0/networks/{doomed}").status_code == 204
    passes = rig.calls(LIST_AGENTS)
    wait_until("three more passes", lambda: rig.calls(LIST_AGENTS) >= passes + 3, timeout=15)

    for agent in rig.dhcp_ids():
        assert doomed not in rig.networks_on(agent)
        assert no_dhcp not in rig.networks_on(agent)
    assert rig.network_changes() == 0
    assert daemon.lines("ERROR") == []
    assert rig.every_dhcp_network_on(rig.dhcp_ids())


def test_two_of_three_dhcp_agents_dead_trips_the_breaker(make_rig: Callable[..., Rig]) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS)
    daemon.wait_ready(ADT)
    before = {a: rig.networks_on(a) for a in rig.dhcp_ids()}
    rig.kill(*rig.dhcp_ids()[1:])
    daemon.wait_log(r"held: breaker open: 2/3 DHCP agents dead", timeout=ADT + 15)
    time.sleep(1.5)
    assert rig.network_changes() == 0
    assert {a: rig.networks_on(a) for a in rig.dhcp_ids()} == before


def test_bus_loss_longer_than_agent_down_time_removes_nothing(
    make_rig: Callable[..., Rig], broker_proxy: TcpProxy, amqp_url: str
) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS, rpchost=proxy_url(broker_proxy, amqp_url))
    daemon.wait_ready(ADT)
    before = {a: rig.networks_on(a) for a in rig.dhcp_ids()}

    broker_proxy.cut()
    daemon.wait_log(r"lost the bus")
    time.sleep(2 * ADT)
    broker_proxy.restore()
    daemon.wait_log(r"consuming from", count=2, timeout=20)
    time.sleep(ADT + 1.5)

    assert daemon.count(r"is DOWN") == 0, daemon.log()
    assert rig.network_changes() == 0
    assert {a: rig.networks_on(a) for a in rig.dhcp_ids()} == before
    assert all(a["alive"] for a in rig.agents(DHCP_AGENT))


def test_dry_run_option_logs_the_plan_and_changes_nothing(make_rig: Callable[..., Rig]) -> None:
    rig = dhcp_rig(make_rig)
    daemon = rig.start_daemon(plugins=PLUGINS, daemon={"dry_run": "true"})
    daemon.wait_ready(ADT)
    victim = rig.dhcp_ids()[0]
    before = {a: rig.networks_on(a) for a in rig.dhcp_ids()}

    rig.kill(victim)
    daemon.wait_log(r"dry run: would remove network", timeout=ADT + 15)
    network = rig.create_network("while-dry")  # not replicated either
    daemon.wait_log(r"dry run: would add network " + network, timeout=10)
    time.sleep(1.0)
    assert rig.network_changes() == 0
    assert {a: rig.networks_on(a) for a in rig.dhcp_ids()} == before
    planned = "\n".join(daemon.lines("WARNING"))
    for net in before[victim]:
        assert f"would remove network {net} from agent {victim}" in planned


def test_restarted_agent_is_not_judged_dead_during_its_startup_grace(
    make_rig: Callable[..., Rig],
) -> None:
    # 3 networks: grace = agent_down_time + 2 s per network = 9 s after the restart
    rig = dhcp_rig(make_rig, networks=3)
    daemon = rig.start_daemon(plugins=PLUGINS)
    daemon.wait_ready(ADT)
    victim = rig.dhcp_ids()[0]
    hosted = rig.networks_on(victim)

    rig.kill(victim)
    rig.bus.revive(victim)  # a new process: its first report carries start_flag
    restarted = rig.cloud.last_report(victim)
    wait_until("the start_flag report", lambda: rig.cloud.last_report(victim) > restarted, 5)
    rig.bus.freeze(victim)  # busy syncing its networks: no more reports for a while
    silent_since = rig.cloud.last_report(victim)

    time.sleep(max(0.0, silent_since + ADT + 3.0 - time.monotonic()))
    assert daemon.count(r"DHCP agent@\S+ is DOWN") == 0, "judged dead inside the grace"
    assert rig.networks_on(victim) == hosted
    assert rig.network_changes() == 0
    # after the grace it is dead like any other
    down = daemon.wait_log(r"DHCP agent@\S+ is DOWN", timeout=15)
    measure("dhcp-startup-grace", down - silent_since, networks=len(hosted))
    assert down - silent_since >= ADT + 2.0 * len(hosted) - 1.0
    wait_until("the frozen agent emptied", lambda: not rig.networks_on(victim), 10)
