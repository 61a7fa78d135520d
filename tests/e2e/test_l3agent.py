"""L3Agent end to end: the daemon as a process, the simulated Neutron over HTTP, the
simulated L3 agents heartbeating on the real RabbitMQ.

Each test starts its own cloud on a fresh exchange and its own daemon, waits until the
daemon has listened for a full agent_down_time (before that it declares nobody dead),
then breaks something and checks what the daemon did through the API the agents use.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest

from rpcdaemon.sim.resources import L3_AGENT
from tests.e2e.harness import MetricsEndpoint, Rig, free_port, measure, proxy_url, wait_until
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0


def test_killed_agent_routers_move_to_live_agents_within_deadline(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    daemon = rig.start_daemon()
    daemon.wait_ready(ADT)
    assert rig.router_moves() == 0  # a healthy cloud: nothing to do

    victim = rig.busiest_l3()
    evacuated = rig.routers_on(victim)
    assert evacuated
    live = [a for a in rig.l3_ids() if a != victim]
    rig.kill(victim)
    converged = wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    took = converged - rig.cloud.last_report(victim)
    measure("l3-failover", took, routers=len(evacuated), agent_down_time=ADT)
    assert took <= ADT + 2.0, f"routers moved {took:.2f}s after the last heartbeat"
    assert rig.routers_on(victim) == set()
    daemon.wait_log(r"agent L3 agent@\S+ is DOWN")
    assert daemon.lines("ERROR") == []
    # each router took one remove and one add; nothing else was touched
    assert rig.router_moves() == 2 * len(evacuated)


def test_agent_back_mid_evacuation_stops_the_remaining_moves(
    make_rig: Callable[..., Rig],
) -> None:
    # a slow evacuation: 0.2 s per API call, one call at a time, 20 routers on the victim
    rig = make_rig(l3=3, routers=22, bind=False, latency=0.2, agent_down_time=ADT)
    victim, *others = rig.l3_ids()
    routers = sorted(str(r["id"]) for r in rig.cloud.routers())
    for i, router in enumerate(routers):
        target = victim if i < 20 else others[i - 20]
        rig.cloud.add_router_to_agent(target, router)
    daemon = rig.start_daemon(daemon={"max_concurrency": 1})
    daemon.wait_ready(ADT)
    assert rig.router_moves() == 0

    rig.kill(victim)
    wait_until("three routers moved", lambda: len(rig.routers_on(victim)) <= 17, timeout=30)
    rig.bus.revive(victim)
    daemon.wait_log(r"is back \(.*\): stopping the moves off it", timeout=15)
    daemon.wait_log(r"pass \(agent-dead\): .* skipped", timeout=30)
    kept = rig.routers_on(victim)
    assert 0 < len(kept) < 20, "the evacuation neither started nor stopped"
    moves = rig.router_moves()
    # the daemon sees the agent alive again and leaves it alone from now on
    daemon.wait_log(r"agent L3 agent@\S+ is UP again", timeout=10)
    time.sleep(3 * 0.5 + 1.0)  # several checks and follow-up passes
    assert rig.routers_on(victim) == kept
    assert rig.router_moves() == moves
    assert rig.every_router_on_one_of(rig.l3_ids())
    assert daemon.lines("ERROR") == []
    measure("l3-stopped-mid-evacuation", moved=20 - len(kept), kept=len(kept))


def test_bus_loss_longer_than_agent_down_time_declares_nobody_dead(
    make_rig: Callable[..., Rig], broker_proxy: TcpProxy, amqp_url: str
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    before = rig.router_hosts()
    daemon = rig.start_daemon(rpchost=proxy_url(broker_proxy, amqp_url))
    daemon.wait_ready(ADT)
    daemon.wait_log(r"agent L3 agent@\S+ is up", count=3)

    broker_proxy.cut()  # the agents keep reporting to the sim; only the daemon is cut off
    daemon.wait_log(r"lost the bus")
    time.sleep(2 * ADT)
    assert broker_proxy.refused > 0, "the daemon did not try to reconnect"
    broker_proxy.restore()
    daemon.wait_log(r"consuming from", count=2, timeout=20)
    time.sleep(ADT + 1.5)  # a full listening window after the reconnect, and more

    assert daemon.count(r"is DOWN") == 0, daemon.log()
    assert rig.router_moves() == 0
    assert rig.router_hosts() == before
    assert all(a["alive"] for a in rig.agents(L3_AGENT))


def test_more_than_half_of_the_agents_dead_at_once_trips_the_breaker(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=4, routers=8, agent_down_time=ADT)
    daemon = rig.start_daemon()
    daemon.wait_ready(ADT)
    survivor, *victims = rig.l3_ids()
    held = {a: rig.routers_on(a) for a in victims}

    rig.kill(*victims)
    daemon.wait_log(r"held: breaker open: 3/4 L3 agents dead", timeout=ADT + 15)
    time.sleep(1.5)
    assert rig.router_moves() == 0, daemon.log()
    assert {a: rig.routers_on(a) for a in victims} == held
    assert survivor not in held

    # two come back: 1/4 dead, the breaker closes, the last dead agent is evacuated
    rig.bus.revive(victims[0])
    rig.bus.revive(victims[1])
    wait_until(
        "the remaining dead agent evacuated",
        lambda: rig.every_router_on_one_of([survivor, victims[0], victims[1]]),
        timeout=20,
    )
    # the returning agents kept their own routers (and may have taken some of the last one's)
    assert held[victims[0]] <= rig.routers_on(victims[0])
    assert held[victims[1]] <= rig.routers_on(victims[1])
    assert rig.router_moves() == 2 * len(held[victims[2]])


def test_second_actor_moving_the_same_routers_converges_without_errors(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=3, routers=24, bind=False, latency=0.1, agent_down_time=ADT)
    victim, first, second = rig.l3_ids()
    routers = sorted(str(r["id"]) for r in rig.cloud.routers())
    for router in routers:
        rig.cloud.add_router_to_agent(victim, router)
    daemon = rig.start_daemon(daemon={"max_concurrency": 2})
    daemon.wait_ready(ADT)

    statuses: list[int] = []
    deleted = routers[-4:-2]  # the other operator also deletes two routers (404s)

    def operator() -> None:
        """Another admin evacuates the same agent by hand, from the other end."""
        daemon.wait_log(r"is DOWN", timeout=ADT + 20)
        for router in reversed(routers):
            if router in deleted:
                statuses.append(rig.api("DELETE", f"/v2.0/routers/{router}").status_code)
                continue
            statuses.append(
                rig.api("DELETE", f"/v2.0/agents/{victim}/l3-routers/{router}").status_code
            )
            statuses.append(
                rig.api(
                    "POST", f"/v2.0/agents/{second}/l3-routers", {"router_id": router}
                ).status_code
            )

    thread = threading.Thread(target=operator, name="second-actor")
    rig.kill(victim)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    wait_until(
        "every router on one live agent", lambda: rig.every_router_on_one_of([first, second]), 20
    )
    assert 409 in statuses, "the operator never collided with the daemon"
    daemon.wait_log(r"refused .*someone else changed it", timeout=5)
    settled = rig.router_moves()
    time.sleep(2.0)
    assert rig.router_moves() == settled, "the daemon kept moving routers after convergence"
    assert {str(r["id"]) for r in rig.cloud.routers()} == set(routers) - set(deleted)
    errors = daemon.lines("ERROR")
    assert errors == [], errors
    measure(
        "l3-race",
        operator_409=statuses.count(409),
        daemon_refused=daemon.count(r"refused"),
        daemon_already=daemon.count(r"\(already: "),
        warnings=len(daemon.lines("WARNING")),
    )


@pytest.mark.parametrize("source", ["clouds.yaml", "keystone_authtoken", "admin_user"])
def test_each_credentials_source_authenticates_against_keystone(
    make_rig: Callable[..., Rig], source: str
) -> None:
    rig = make_rig(l3=2, routers=2, auth="keystone", agent_down_time=ADT)
    url = rig.server.auth_url
    if source == "clouds.yaml":
        daemon = rig.start_daemon(clouds_auth="password")
        expected = "cloud = e2e (clouds.yaml)"
    elif source == "keystone_authtoken":
        auth = {
            "auth_url": url,
            "username": "admin",
            "password": "secret",
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region_name": "RegionOne",
        }
        daemon = rig.start_daemon(use_cloud=False, neutron_auth=auth)
        expected = "(keystone_authtoken: "
    else:  # the 2014 neutron.conf: Keystone v2.0 URL, admin_user set
        auth = {
            "auth_url": url.removesuffix("/v3") + "/v2.0",
            "admin_user": "admin",
            "admin_password": "secret",
            "admin_tenant_name": "admin",
        }
        daemon = rig.start_daemon(use_cloud=False, neutron_auth=auth)
        expected = "(admin_user: "
    daemon.wait_log(r"Neutron API credentials from .*" + re.escape(expected))
    daemon.wait_ready(ADT)

    victim = rig.busiest_l3()
    (live,) = [a for a in rig.l3_ids() if a != victim]
    rig.kill(victim)
    wait_until("the routers moved", lambda: rig.every_router_on_one_of([live]), ADT + 20)
    assert rig.server.calls.get("POST", "/identity/v3/auth/tokens") >= 1
    assert rig.server.calls.get("GET", "<unauthorized>") == 0
    assert daemon.lines("ERROR") == []


def test_dry_run_logs_the_plan_and_changes_nothing(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    daemon = rig.start_daemon(args=["--dry-run"])
    daemon.wait_ready(ADT)
    before = rig.router_hosts()
    victim = rig.busiest_l3()
    rig.kill(victim)
    daemon.wait_log(r"is DOWN", timeout=ADT + 15)
    daemon.wait_log(r"dry run: would add router", timeout=10)
    time.sleep(1.5)
    assert rig.router_moves() == 0
    assert rig.router_hosts() == before
    planned = "\n".join(daemon.lines("WARNING"))
    for router in rig.routers_on(victim):
        assert f"would remove router {router} from agent {victim}" in planned, planned
    assert "dry run True" in daemon.log()


def test_a_plan_stuck_on_a_slow_add_does_not_delay_the_next_death(
    make_rig: Callable[..., Rig],
) -> None:
    """Judging never waits for acting: while one add hangs (an agent whose RPC consumer is
    stuck: Neutron saves the binding, then holds the answer), a second L3 agent dies and
    its routers are moved on time, and /healthz stays 200 all along."""
    rig = make_rig(l3=4, routers=6, bind=False, agent_down_time=ADT)
    slow, first, second, busy = rig.l3_ids()
    routers = sorted(r["id"] for r in rig.cloud.routers())
    # slow hosts nothing (the least loaded target), first 1 router, second 2, busy 3
    for router, agent in zip(routers, [first, second, second, busy, busy, busy], strict=True):
        rig.cloud.add_router_to_agent(agent, router)
    port = free_port()
    daemon = rig.start_daemon(daemon={"metrics_address": f"127.0.0.1:{port}"})
    endpoint = MetricsEndpoint(port)
    daemon.wait_ready(ADT)
    wait_until("/healthz answers", endpoint.answers, 10)

    health: list[int] = []
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            health.append(endpoint.get("/healthz").status_code)
            stop_polling.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        rig.cloud.hang_next_add(slow, 60.0)
        rig.kill(first)
        # the first move: remove from `first`, then the add to `slow` that hangs
        wait_until("the add to the slow agent", lambda: bool(rig.routers_on(slow)), ADT + 10)
        rig.kill(second)
        moved = wait_until(
            "the second dead agent's routers on live agents",
            lambda: rig.routers_on(second) == set() and rig.every_router_on_one_of([slow, busy]),
            timeout=ADT + 20,
        )
        took = moved - rig.cloud.last_report(second)
        measure("l3-failover-beside-a-stuck-add", took, agent_down_time=ADT)
        assert took <= ADT + 3.0, f"moved {took:.2f}s after the last heartbeat"
        # the stuck task was still in flight when the second death's tasks were handed over
        assert daemon.count(r"handed to the executor \([2-9] in flight in all\)") >= 1, daemon.log()
    finally:
        stop_polling.set()
        poller.join(5)
        endpoint.close()
    assert health and set(health) == {200}, health
    # the stuck add times out client-side (timeout 10 s); the binding was saved: success
    daemon.wait_log(r"pass \([^)]*\): \d+ task\(s\) run, \d+ ok, 0 failed", timeout=20)
    assert daemon.lines("ERROR") == []
