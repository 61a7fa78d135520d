"""The verbs with running daemons: ``status``/``check`` read the daemon's ``/status``, and
``pause`` stops every instance acting (two daemons elected over the real Redis).

Needs the runtime wiring of the pause store and ``/status`` (see the ``verbs`` report)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests import coordination_backends
from tests.coordination_backends import ElectionStore, election_store
from tests.e2e.harness import MetricsEndpoint, Rig, free_port, measure, start_daemon_in, wait_until
from tests.e2e.test_verbs import verb

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
EXECUTED = r"\[L3Agent\] (?:add|remove) router \S+ (?:to|from) agent"


@pytest.fixture
def redis_store() -> Iterator[ElectionStore]:
    with election_store(coordination_backends.backend("redis")) as store:
        yield store


def _code(rig: Rig, *args: str) -> tuple[int, str]:
    done = verb(rig, "check", *args)
    return done.returncode, done.stdout


def test_status_and_check_from_the_running_daemon_and_a_paused_daemon(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=3, dhcp=0, routers=6, agent_down_time=ADT)
    port = free_port()
    daemon = rig.start_daemon(
        daemon={"metrics_address": f"127.0.0.1:{port}", "pause_file": rig.dir / "pause.json"}
    )
    daemon.wait_ready(ADT)
    endpoint = MetricsEndpoint(port)
    try:
        wait_until("/status answers", lambda: endpoint.get("/status").status_code == 200, 30)
        shown = verb(rig, "status")
        assert shown.returncode == 0, shown.stderr
        assert "source: the running daemon" in shown.stdout and "leader: yes" in shown.stdout
        doc = json.loads(verb(rig, "status", "--json").stdout)
        assert doc["source"] == "daemon" and doc["last_pass"] is not None
        assert {a["liveness"] for a in doc["agents"]} == {"alive"}
        assert _code(rig)[0] == 0

        # paused: the daemon sees the death, plans, and does not act
        paused = verb(rig, "pause", "--reason", "rabbit migration")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        # the verb waited until the daemon's /status shows this very pause
        assert f"the running daemon at http://127.0.0.1:{port} sees the pause" in paused.stdout
        victim = rig.busiest_l3()
        rig.kill(victim)
        wait_until("the daemon calls it dead",
                   lambda: any(a["liveness"] == "dead"
                               for a in json.loads(verb(rig, "status", "--json").stdout)["agents"]),
                   ADT + 20, step=0.5)  # fmt: skip
        code, line = _code(rig)
        assert code == 2 and "CRITICAL" in line and "paused" in line, line
        assert endpoint.value("rpcdaemon_paused") == 1.0
        assert endpoint.value("rpcdaemon_resources_on_dead_agents", kind="router") >= 1
        time.sleep(2.0)
        assert rig.router_moves() == 0 and daemon.count(EXECUTED) == 0

        # resumed: the daemon moves the routers; check is OK again
        started = time.monotonic()
        assert verb(rig, "resume").returncode == 0
        live = [a for a in rig.l3_ids() if a != victim]
        wait_until("failover after resume", lambda: rig.every_router_on_one_of(live), 30)
        measure("failover_after_resume", time.monotonic() - started)
        wait_until("check OK", lambda: _code(rig)[0] == 0, 20, step=0.5)
        assert endpoint.value("rpcdaemon_paused") == 0.0
    finally:
        endpoint.close()


def test_pause_on_one_instance_stops_the_leader_of_two_and_expiry_resumes(
    redis_store: ElectionStore, make_rig: Callable[..., Rig]
) -> None:
    rig = make_rig(l3=4, routers=8, agent_down_time=ADT)
    ports = {"a": free_port(), "b": free_port()}
    daemons = {
        name: start_daemon_in(
            rig,
            name,
            daemon={"coordination_url": redis_store.url, "metrics_address": f"127.0.0.1:{p}"},
        )
        for name, p in ports.items()
    }
    for d in daemons.values():
        d.wait_ready(ADT)
    endpoints = {n: MetricsEndpoint(p) for n, p in ports.items()}
    try:
        wait_until("one leader",
                   lambda: sorted(e.value("rpcdaemon_leader") or 0 for e in endpoints.values())
                   == [0.0, 1.0], 30, step=0.2)  # fmt: skip
        (leader,) = [n for n, e in endpoints.items() if e.value("rpcdaemon_leader") == 1.0]
        standby = "b" if leader == "a" else "a"
        # pause through the STANDBY's configuration: the same Redis key binds the leader
        conf = rig.dir / standby / "rpcdaemon.conf"
        paused = verb(rig, "-c", str(conf), "pause", "--for", "8s", "--reason", "rmq")
        assert paused.returncode == 0, paused.stdout + paused.stderr
        assert "local file" not in paused.stdout
        wait_until("both see the pause",
                   lambda: all(e.value("rpcdaemon_paused") == 1.0 for e in endpoints.values()),
                   10, step=0.2)  # fmt: skip
        victim = rig.busiest_l3()
        rig.kill(victim)
        daemons[leader].wait_log(r"agent L3 agent@\S+ is DOWN", timeout=ADT + 15)
        time.sleep(1.0)
        assert rig.router_moves() == 0, "a paused leader acted"
        # expiry (8 s after the pause) resumes without anyone asking
        live = [a for a in rig.l3_ids() if a != victim]
        wait_until("failover after expiry", lambda: rig.every_router_on_one_of(live), 30)
        assert all(e.value("rpcdaemon_paused") == 0.0 for e in endpoints.values())
        assert daemons[standby].count(EXECUTED) == 0
    finally:
        for e in endpoints.values():
            e.close()


def test_check_codes_through_the_daemon(make_rig: Callable[..., Rig]) -> None:
    """Every check state with a daemon: OK, CRITICAL (beyond grace), WARNING (within grace,
    paused), and WARNING + API fallback when the daemon is gone."""
    rig = make_rig(l3=2, dhcp=0, routers=4, agent_down_time=ADT)
    port = free_port()
    daemon = rig.start_daemon(
        daemon={"metrics_address": f"127.0.0.1:{port}", "pause_file": rig.dir / "pause.json"}
    )
    daemon.wait_ready(ADT)
    wait_until("check OK", lambda: _code(rig)[0] == 0, 30, step=0.5)
    assert verb(rig, "pause").returncode == 0
    wait_until("paused WARNING", lambda: _code(rig)[0] == 1, 10, step=0.3)
    rig.kill(rig.l3_ids()[0])
    wait_until("CRITICAL", lambda: _code(rig)[0] == 2, ADT + 20, step=0.5)
    code, line = _code(rig, "--grace", "3600")
    assert code == 1 and "grace" in line
    daemon.assert_clean_exit()
    rig.daemons.remove(daemon)
    code, line = _code(rig)
    assert code == 2 and "daemon not answering" in line  # critical wins, and says why
