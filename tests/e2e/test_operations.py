"""Operations end to end: leader election between two daemon processes over the real Redis,
etcd and ZooKeeper (the same test on each), and the /healthz, /readyz and /metrics endpoints
of a running daemon.

Both tests run the real daemon (``python -m rpcdaemon -d``) against the simulated Neutron
(HTTP) with simulated L3 agents heartbeating on the real RabbitMQ, as the other e2e suites
do. The election uses the daemon's own tooz group and lock names; on Redis and ZooKeeper
every test gets its own key namespace (tooz's ``namespace`` URL option) so that it cannot
meet another run's daemons, and deletes those keys afterwards (tooz's etcd driver has no
namespace: the test waits for a leftover lock to expire). See tests/coordination_backends.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rpcdaemon.sim.resources import L3_AGENT
from tests import coordination_backends
from tests.coordination_backends import ElectionStore, election_store
from tests.e2e.harness import (
    DaemonProcess,
    MetricsEndpoint,
    Rig,
    free_port,
    measure,
    proxy_url,
    start_daemon_in,
    wait_until,
)
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
TAKEOVER_WITHIN = 30.0  # the lease is 10 s; the margin is for a loaded machine
EXECUTED = r"\[L3Agent\] (?:add|remove) router \S+ (?:to|from) agent"
STANDBY = r"\[L3Agent\] standby: the leader should run \d+ task"


@pytest.fixture(params=coordination_backends.ALL)
def coordination(request: pytest.FixtureRequest) -> Iterator[ElectionStore]:
    """A real backend (Redis, etcd, ZooKeeper) and where the daemons' lock lives on it.

    Ask for it before ``make_rig``: fixtures are torn down in reverse order, so the keys
    are deleted only after the daemons have stopped (deleting a live lock makes its
    holder step down, as it should)."""
    with election_store(coordination_backends.backend(str(request.param))) as store:
        yield store


@pytest.fixture
def endpoints() -> Iterator[list[MetricsEndpoint]]:
    made: list[MetricsEndpoint] = []
    yield made
    for endpoint in made:
        endpoint.close()


def _endpoint(made: list[MetricsEndpoint], daemon: DaemonProcess, port: int) -> MetricsEndpoint:
    endpoint = MetricsEndpoint(port)
    made.append(endpoint)

    def up() -> bool:
        if daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited:\n{daemon.log()[-3000:]}")
        return endpoint.answers()

    wait_until(f"the metrics endpoint on port {port}", up, timeout=30)
    return endpoint


def _leader(endpoint: MetricsEndpoint) -> float | None:
    return endpoint.value("rpcdaemon_leader")


def _sigkill(rig: Rig, daemon: DaemonProcess) -> None:
    """Crash ``daemon`` (no lock release, no goodbye) and take it off the rig's teardown."""
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)
    daemon.stop()  # closes its log files; the status is -9 and expected
    rig.daemons.remove(daemon)


def test_two_daemons_elect_one_leader_and_the_standby_takes_over_after_a_crash(
    coordination: ElectionStore, make_rig: Callable[..., Rig], endpoints: list[MetricsEndpoint]
) -> None:
    # 0.1 s per API call: the leader's moves take a moment, so the standby, which sees the
    # same death at about the same time, still finds them to do (and says it will not)
    rig = make_rig(l3=5, routers=10, agent_down_time=ADT, latency=0.1)
    ports = {"a": free_port(), "b": free_port()}
    daemons = {
        name: start_daemon_in(
            rig,
            name,
            daemon={
                "coordination_url": coordination.url,
                "metrics_address": f"127.0.0.1:{port}",
            },
        )
        for name, port in ports.items()
    }
    metrics = {name: _endpoint(endpoints, daemons[name], port) for name, port in ports.items()}
    for daemon in daemons.values():
        daemon.wait_ready(ADT)

    # exactly one leader, and it stays the same one over several scrapes
    def one_leader() -> bool:
        return sorted(_leader(m) or 0.0 for m in metrics.values()) == [0.0, 1.0]

    wait_until("exactly one rpcdaemon_leader 1", one_leader, timeout=30, step=0.2)
    (leader,) = [n for n, m in metrics.items() if _leader(m) == 1.0]
    (standby,) = [n for n in metrics if n != leader]
    for _ in range(5):
        assert _leader(metrics[leader]) == 1.0
        assert _leader(metrics[standby]) == 0.0
        time.sleep(0.3)
    for name, role in ((leader, "leader"), (standby, "standby")):
        assert metrics[name].value("rpcdaemon_coordination_connected") == 1.0
        ready = metrics[name].get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["role"] == role
    assert daemons[leader].count(r"elected leader of 'rpcdaemon'") == 1
    assert daemons[standby].count(r"elected leader") == 0
    assert rig.router_moves() == 0

    # an L3 agent dies: the leader moves its routers, the standby only says what it would do
    first = rig.busiest_l3()
    first_routers = rig.routers_on(first)
    assert first_routers
    live = [a for a in rig.l3_ids() if a != first]
    rig.kill(first)
    wait_until(
        "the first victim's routers on live agents",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    daemons[standby].wait_log(r"agent L3 agent@\S+ is DOWN", timeout=15)
    daemons[standby].wait_log(STANDBY, timeout=15)
    daemons[leader].wait_log(EXECUTED, count=2 * len(first_routers), timeout=15)
    wait_until(
        "the leader's actions in its metrics",
        lambda: (
            metrics[leader].value("rpcdaemon_actions_total", result="ok") == 2 * len(first_routers)
        ),
        timeout=10,
    )
    time.sleep(1.0)  # a standby acting late would show now
    assert daemons[leader].count(EXECUTED) == 2 * len(first_routers)
    assert daemons[standby].count(EXECUTED) == 0, daemons[standby].log()
    assert daemons[standby].count(r"this instance is a standby: it observes") == 1
    assert daemons[standby].count(r"\[L3Agent\] plan:") == 0
    assert rig.router_moves() == 2 * len(first_routers)
    assert metrics[standby].value("rpcdaemon_actions_total") is None

    # the leader crashes without releasing the lock: the standby takes over after the lease
    crashed_token = coordination.owner()
    assert crashed_token is not None
    killed_at = time.monotonic()
    _sigkill(rig, daemons[leader])

    def took_over() -> bool:
        if _leader(metrics[standby]) != 1.0:
            return False
        # never two owners: the standby reports leader only once the lock is its own
        assert coordination.owner() != crashed_token
        return True

    took_over_at = wait_until(
        "the standby's rpcdaemon_leader 1", took_over, timeout=TAKEOVER_WITHIN, step=0.1
    )
    takeover = took_over_at - killed_at
    new_leader = daemons[standby]
    new_leader.wait_log(r"elected leader of 'rpcdaemon'", timeout=5)
    ready = metrics[standby].get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["role"] == "leader"

    # and it acts: another agent dies, its routers move
    moves_before = rig.router_moves()
    second = max(live, key=lambda a: (len(rig.routers_on(a)), a))
    second_routers = rig.routers_on(second)
    assert second_routers
    survivors = [a for a in live if a != second]
    rig.kill(second)
    wait_until(
        "the second victim's routers on the survivors",
        lambda: rig.every_router_on_one_of(survivors),
        timeout=ADT + 20,
    )
    new_leader.wait_log(EXECUTED, count=2 * len(second_routers), timeout=15)
    wait_until(
        "the new leader's actions in its metrics",
        lambda: (
            metrics[standby].value("rpcdaemon_actions_total", result="ok")
            == 2 * len(second_routers)
        ),
        timeout=10,
    )
    assert rig.router_moves() - moves_before == 2 * len(second_routers)
    assert new_leader.count(EXECUTED) == 2 * len(second_routers)
    assert new_leader.lines("ERROR") == []
    assert coordination.owner() is not None

    # a clean stop releases the lock (a standby would take over at its next round)
    new_leader.assert_clean_exit()
    assert coordination.owner() is None
    measure(
        "leader-takeover-after-sigkill",
        takeover,
        backend=coordination.backend.name,
        lease="10s",
        first_moved=len(first_routers),
        second_moved=len(second_routers),
    )


def test_health_and_metrics_of_a_running_daemon(
    make_rig: Callable[..., Rig],
    broker_proxy: TcpProxy,
    amqp_url: str,
    endpoints: list[MetricsEndpoint],
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    port = free_port()
    daemon = rig.start_daemon(
        rpchost=proxy_url(broker_proxy, amqp_url),
        daemon={"metrics_address": f"127.0.0.1:{port}"},
    )
    endpoint = _endpoint(endpoints, daemon, port)
    daemon.wait_ready(ADT)

    # connected: healthy, ready (a single instance is the leader), heartbeats counted
    wait_until("/healthz 200", lambda: endpoint.get("/healthz").status_code == 200, timeout=15)
    body = endpoint.get("/healthz").json()
    assert body["status"] == "ok" and body["bus_connected"] is True, body
    ready = endpoint.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["role"] == "leader"
    assert (endpoint.value("rpcdaemon_heartbeats_total", agent_type=L3_AGENT) or 0) > 0
    wait_until(
        "three L3 agents alive in rpcdaemon_agents",
        lambda: endpoint.value("rpcdaemon_agents", agent_type=L3_AGENT, liveness="alive") == 3,
        timeout=10,
    )
    assert endpoint.value("rpcdaemon_leader") == 1.0
    assert endpoint.value("rpcdaemon_bus_connected") == 1.0
    calls = endpoint.samples()
    api_ok = sum(
        v
        for name, labels, v in calls
        if name == "rpcdaemon_api_calls_total" and labels.get("status", "").startswith("2")
    )
    assert api_ok > 0, [s for s in calls if s[0].startswith("rpcdaemon_api")]
    assert endpoint.value("rpcdaemon_actions_total") is None  # nothing to do yet

    # an agent dies: detection latency and actions appear, the gauges follow
    victim = rig.busiest_l3()
    moved = rig.routers_on(victim)
    assert moved
    live = [a for a in rig.l3_ids() if a != victim]
    rig.kill(victim)
    wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    wait_until(
        "the failover in the metrics",
        lambda: (
            endpoint.value("rpcdaemon_failover_duration_seconds_count") == 1.0
            and endpoint.value("rpcdaemon_actions_total", result="ok") == 2 * len(moved)
        ),
        timeout=10,
    )
    detected = endpoint.value("rpcdaemon_detection_latency_seconds_count", agent_type=L3_AGENT)
    latency = endpoint.value("rpcdaemon_detection_latency_seconds_sum", agent_type=L3_AGENT)
    assert detected == 1.0
    assert latency is not None and latency >= ADT, latency  # never declared dead early
    for verb in ("add_router", "remove_router"):
        done = endpoint.value("rpcdaemon_actions_total", plugin="L3Agent", verb=verb, result="ok")
        assert done == len(moved), (verb, done)
    assert endpoint.value("rpcdaemon_agents", agent_type=L3_AGENT, liveness="dead") == 1
    assert endpoint.value("rpcdaemon_agents", agent_type=L3_AGENT, liveness="alive") == 2
    assert endpoint.value("rpcdaemon_routers_on_dead_agents") == 0

    # the bus is cut: /healthz says so (and names the bus), /metrics still answers
    broker_proxy.cut()
    wait_until("/healthz 503", lambda: endpoint.get("/healthz").status_code == 503, timeout=30)
    failed = endpoint.get("/healthz").json()
    assert failed["status"] == "fail" and failed["bus_connected"] is False, failed
    assert any("AMQP" in reason for reason in failed["reasons"]), failed
    assert endpoint.value("rpcdaemon_bus_connected") == 0.0

    # restored: healthy again
    restored_at = time.monotonic()
    broker_proxy.restore()
    back = wait_until(
        "/healthz 200 again", lambda: endpoint.get("/healthz").status_code == 200, timeout=30
    )
    assert endpoint.get("/healthz").json()["status"] == "ok"
    assert endpoint.value("rpcdaemon_bus_connected") == 1.0
    assert daemon.count(r"is DOWN") == 1  # the cut declared nobody else dead
    measure(
        "health-cycle",
        detection_latency=f"{latency:.2f}s",
        healthy_again_after_restore=f"{back - restored_at:.2f}s",
    )
