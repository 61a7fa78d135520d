"""The operator's verbs as an operator runs them (``python -m rpcdaemon -c FILE VERB``)
against the simulated cloud (real HTTP, agents on the real RabbitMQ), with and without a
running daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT
from tests.e2e.harness import Rig, free_port, measure, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
PLUGINS = "L3Agent DHCPAgent"


def verb(rig: Rig, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(rig.dir / "clouds.yaml")
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "-c", str(rig.dir / "rpcdaemon.conf"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=rig.dir,
    )


def spawn(rig: Rig, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(rig.dir / "clouds.yaml")
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "rpcdaemon", "-c", str(rig.dir / "rpcdaemon.conf"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=rig.dir,
    )


def host_agents(rig: Rig, host: str) -> list[dict[str, Any]]:
    return [a for a in rig.cloud.agents() if a["host"] == host]


def hosted_by(rig: Rig, host: str) -> int:
    total = 0
    for agent in host_agents(rig, host):
        if agent["agent_type"] == L3_AGENT:
            total += len(rig.routers_on(str(agent["id"])))
        elif agent["agent_type"] == DHCP_AGENT:
            total += len(rig.networks_on(str(agent["id"])))
    return total


def unserved_networks(rig: Rig) -> set[str]:
    """DHCP networks with no binding on an agent that is admin up and alive."""
    live = {str(a["id"]) for a in rig.agents(DHCP_AGENT) if a["admin_state_up"] and a["alive"]}
    return {n for n in rig.dhcp_network_ids() if not set(rig.cloud.network_agents(n)) & live}


@contextmanager
def watching(rig: Rig, check: Callable[[Rig], set[str]]) -> Iterator[list[tuple[float, set[str]]]]:
    """Poll ``check`` every 20 ms in a thread; collects every non-empty answer."""
    seen: list[tuple[float, set[str]]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            found = check(rig)
            if found:
                seen.append((time.monotonic(), found))
            stop.wait(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)


def configure(rig: Rig, **daemon: object) -> Path:
    return rig.write_configs(
        plugins=PLUGINS,
        daemon={"pause_file": rig.dir / "pause.json", **daemon},
        dhcp={"agents_per_network": 2},
    )


# -- without a daemon ---------------------------------------------------------------------


def test_status_and_check_from_the_api_alone(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, dhcp=3, routers=6, networks=4, dhcp_agents_per_network=2,
                   agent_down_time=ADT)  # fmt: skip
    configure(rig)
    time.sleep(1.0)  # a heartbeat from every agent
    table = verb(rig, "status", "--listen", "0")
    assert table.returncode == 0, table.stderr
    assert "source: the Neutron API alone" in table.stdout
    for host in ("net1", "net2", "net3"):
        assert host in table.stdout
    assert "every router and DHCP network is on a live agent" in table.stdout

    heard = verb(rig, "status", "--json", "--listen", "1.5", "--host", "net2")
    assert heard.returncode == 0, heard.stderr
    doc = json.loads(heard.stdout)
    assert doc["source"] == "api+bus"
    assert {a["host"] for a in doc["agents"]} == {"net2"}
    assert {a["liveness"] for a in doc["agents"]} == {"alive"}  # heard on the bus
    assert all(a["heartbeat_age"] < 1.5 for a in doc["agents"])

    wrong = verb(rig, "status", "--listen", "0", "--host", "nowhere")
    assert wrong.returncode == 2 and "unknown host 'nowhere'" in wrong.stderr

    ok = verb(rig, "check")
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok.stdout + ok.stderr
    assert "| routers_on_dead_agents=0" in ok.stdout

    # one network node dies: its routers (and networks hosted there alone) are stranded
    l3_net1 = next(a for a in host_agents(rig, "net1") if a["agent_type"] == L3_AGENT)
    assert rig.routers_on(str(l3_net1["id"]))
    rig.kill(str(l3_net1["id"]))
    wait_until("the API calls it dead", lambda: not rig.cloud.agent(str(l3_net1["id"]))["alive"],
               ADT * 4)  # fmt: skip
    crit = verb(rig, "check")
    assert crit.returncode == 2 and crit.stdout.startswith("CRITICAL: "), crit.stdout
    tolerated = verb(rig, "check", "--grace", "600")
    assert tolerated.returncode == 1 and "grace" in tolerated.stdout, tolerated.stdout


def test_pause_resume_and_check(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=2, dhcp=0, routers=2, agent_down_time=ADT)
    configure(rig)
    assert verb(rig, "check").returncode == 0
    dry = verb(rig, "pause", "--dry-run", "--for", "1h")
    assert dry.returncode == 0 and "would pause" in dry.stdout
    assert not (rig.dir / "pause.json").exists()
    paused = verb(rig, "pause", "--for", "30m", "--reason", "rabbit migration")
    assert paused.returncode == 0, paused.stderr
    assert oct((rig.dir / "pause.json").stat().st_mode & 0o777) == "0o640"
    warn = verb(rig, "check")
    assert warn.returncode == 1 and "paused" in warn.stdout and "rabbit migration" in warn.stdout
    shown = verb(rig, "status", "--listen", "0")
    assert "paused: YES" in shown.stdout and "rabbit migration" in shown.stdout
    assert verb(rig, "resume").returncode == 0
    assert verb(rig, "check").returncode == 0
    expiring = verb(rig, "pause", "--for", "1s")
    assert expiring.returncode == 0
    time.sleep(1.2)
    assert verb(rig, "check").returncode == 0  # expired: nobody had to resume it
    bad = verb(rig, "pause", "--for", "soon")
    assert bad.returncode == 2 and "duration" in bad.stderr


def test_a_configured_daemon_that_does_not_answer_is_a_warning(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=2, dhcp=0, routers=2, agent_down_time=ADT)
    configure(rig, metrics_address=f"127.0.0.1:{free_port()}")
    warn = verb(rig, "check")
    assert warn.returncode == 1 and "daemon not answering" in warn.stdout, warn.stdout
    status = verb(rig, "status", "--listen", "0")
    assert status.returncode == 0 and "from the Neutron API" in status.stderr


def test_check_is_unknown_when_the_api_does_not_answer(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=2, dhcp=0, routers=2, agent_down_time=ADT)
    configure(rig)
    assert verb(rig, "check").returncode == 0
    rig.server.stop()
    down = verb(rig, "check")
    assert down.returncode == 3 and down.stdout.startswith("UNKNOWN: "), down.stdout
    assert "Traceback" not in down.stdout + down.stderr
    failed = verb(rig, "status", "--listen", "0")
    assert failed.returncode == 1 and "cannot read the Neutron API" in failed.stderr


def test_evacuate_dry_run_changes_nothing_and_wrong_host_exits_2(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=3, dhcp=3, routers=6, networks=3, dhcp_agents_per_network=1,
                   agent_down_time=ADT)  # fmt: skip
    configure(rig)
    before = rig.router_hosts()
    dry = verb(rig, "evacuate", "net1", "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert "disable agent" in dry.stdout
    assert rig.router_hosts() == before and rig.router_moves() == 0
    assert all(a["admin_state_up"] for a in rig.cloud.agents())
    wrong = verb(rig, "evacuate", "net9")
    assert wrong.returncode == 2 and "unknown host 'net9'" in wrong.stderr
    assert verb(rig, "restore", "net9").returncode == 2


def test_evacuate_and_restore_without_a_daemon(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, dhcp=3, routers=9, networks=6, dhcp_agents_per_network=1,
                   agent_down_time=ADT)  # fmt: skip
    configure(rig)
    assert hosted_by(rig, "net1") > 0
    with watching(rig, unserved_networks) as gaps:
        started = time.monotonic()
        done = verb(rig, "evacuate", "net1")
        took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert not gaps, gaps[:3]
    assert hosted_by(rig, "net1") == 0
    assert not any(a["admin_state_up"] for a in host_agents(rig, "net1"))
    assert rig.every_router_on_one_of(rig.l3_ids())
    assert "[1/" in done.stdout  # one line per step when not on a terminal
    measure("evacuate_no_daemon", took, routers=9, networks=6)
    again = verb(rig, "evacuate", "net1", "--wait")
    assert again.returncode == 0 and "done" in again.stdout
    assert "report hosting nothing" in again.stdout
    restored = verb(rig, "restore", "net1")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert all(a["admin_state_up"] for a in host_agents(rig, "net1"))
    assert hosted_by(rig, "net1") == 0  # nothing moves back by itself


def test_evacuate_holds_what_cannot_move_and_keeps_that_agent_enabled(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=2, dhcp=2, routers=4, networks=3, dhcp_agents_per_network=1,
                   agent_down_time=ADT)  # fmt: skip
    configure(rig)
    other_dhcp = next(a for a in host_agents(rig, "net2") if a["agent_type"] == DHCP_AGENT)
    rig.kill(str(other_dhcp["id"]))
    wait_until("the API calls it dead",
               lambda: not rig.cloud.agent(str(other_dhcp["id"]))["alive"], ADT * 4)  # fmt: skip
    mine = {str(a["agent_type"]): str(a["id"]) for a in host_agents(rig, "net1")}
    networks_before = rig.networks_on(mine[DHCP_AGENT])
    assert networks_before
    held = verb(rig, "evacuate", "net1")
    assert held.returncode == 1, held.stdout + held.stderr
    assert "held: DHCP network" in held.stdout and "stays enabled" in held.stdout
    assert rig.networks_on(mine[DHCP_AGENT]) == networks_before  # never left unserved
    assert rig.cloud.agent(mine[DHCP_AGENT])["admin_state_up"] is True
    assert not rig.routers_on(mine[L3_AGENT])  # the routers could go: they went
    assert rig.cloud.agent(mine[L3_AGENT])["admin_state_up"] is False


def test_evacuate_interrupted_finishes_the_steps_in_flight(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, dhcp=0, routers=30, agent_down_time=ADT, latency=0.1)
    configure(rig, max_concurrency=2)  # two moves in flight, the others waiting
    hosted = hosted_by(rig, "net1")
    run = spawn(rig, "evacuate", "net1", "--l3")
    assert run.stdout is not None
    wait_until("a first move", lambda: "ok: add router" in (run.stdout.readline() or ""), 60)
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 130, out
    assert "interrupted: finishing the steps in flight" in out
    # no legacy router was left half-moved: each is on exactly one agent
    assert rig.every_router_on_one_of(rig.l3_ids())
    assert 0 < hosted_by(rig, "net1") < hosted
    again = verb(rig, "evacuate", "net1", "--l3")
    assert again.returncode == 0 and hosted_by(rig, "net1") == 0


def test_rebalance(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, dhcp=0, routers=9, agent_down_time=ADT)
    configure(rig)
    first = rig.l3_ids()[0]
    for router, agents in rig.router_hosts().items():  # pile every router on one agent
        for agent in agents - {first}:
            rig.cloud.remove_router_from_agent(agent, router)
        rig.cloud.add_router_to_agent(first, router)
    assert len(rig.routers_on(first)) == 9
    dry = verb(rig, "rebalance", "--dry-run")
    assert dry.returncode == 0 and "spread" in dry.stdout and rig.router_moves() == 0
    capped = verb(rig, "rebalance", "--max-moves", "2")
    assert capped.returncode == 0, capped.stdout + capped.stderr
    assert len(rig.routers_on(first)) == 7
    full = verb(rig, "rebalance", "--max-moves", "100")
    assert full.returncode == 0
    loads = sorted(len(rig.routers_on(a)) for a in rig.l3_ids())
    assert loads == [3, 3, 3]
    assert rig.every_router_on_one_of(rig.l3_ids())


# -- with the daemon running ----------------------------------------------------------------


def test_evacuate_with_the_daemon_running_and_killed_halfway(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=3, dhcp=3, routers=12, networks=8, dhcp_agents_per_network=2,
                   agent_down_time=ADT, latency=0.05)  # fmt: skip
    configure(rig)
    daemon = rig.start_daemon(
        plugins=PLUGINS,
        daemon={"pause_file": rig.dir / "pause.json", "resync_interval": 1},
        dhcp={"agents_per_network": 2},
    )
    daemon.wait_ready(ADT)
    with watching(rig, unserved_networks) as gaps:
        first = spawn(rig, "evacuate", "net1")
        assert first.stdout is not None
        wait_until("the first steps", lambda: "[2/" in (first.stdout.readline() or ""), 60)
        first.send_signal(signal.SIGKILL)  # killed halfway: no chance to clean up
        first.wait(10)
        halfway = hosted_by(rig, "net1")
        second = verb(rig, "evacuate", "net1")
        assert second.returncode == 0, second.stdout + second.stderr
        assert hosted_by(rig, "net1") == 0
        time.sleep(3.0)  # several daemon passes (resync every second)
    assert not gaps, gaps[:3]
    assert hosted_by(rig, "net1") == 0, "the daemon moved something back"
    assert not any(a["admin_state_up"] for a in host_agents(rig, "net1"))
    assert rig.every_router_on_one_of(rig.l3_ids())
    measure("evacuate_killed_halfway_left", None, hosted_halfway=halfway)
    assert verb(rig, "restore", "net1").returncode == 0
    time.sleep(2.0)
    assert all(a["admin_state_up"] for a in host_agents(rig, "net1"))
    daemon.assert_clean_exit()
