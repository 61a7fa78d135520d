"""The operator's verbs against a real neutron-server 29: ``status``, ``check``, ``evacuate``
and ``restore`` (as ``python -m rpcdaemon -c FILE VERB``), with and without the daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peer.daemon import (
    Daemon,
    bind_router,
    create_dhcp_network,
    create_router,
    network_agents,
    router_agents,
    tag,
)
from tests.peer.rig import AGENT_DOWN_TIME, HOSTS, REPORT_INTERVAL, Rig

pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.broker, pytest.mark.slow]


def verb(daemon: Daemon, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A verb with the daemon's configuration (the daemon itself may or may not run)."""
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "-c", str(daemon.conf), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **daemon.env},
        cwd=daemon.workdir,
    )


@pytest.fixture
def restored(fresh_peer: Rig) -> Iterator[Rig]:
    """Every agent admin up again afterwards (the rig is shared by the session)."""
    yield fresh_peer
    for agent in fresh_peer.agents():
        if not agent["admin_state_up"]:
            fresh_peer.call("PUT", f"/agents/{agent['id']}", {"agent": {"admin_state_up": True}})


def test_status_and_check_from_the_api_and_the_bus(restored: Rig, tmp_path: Path) -> None:
    rig = restored
    config = Daemon(rig, tmp_path)  # its configuration only: no daemon runs here
    shown = verb(config, "status", "--json", "--listen", f"{REPORT_INTERVAL * 2:g}")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["source"] == "api+bus"
    ours = [a for a in doc["agents"] if a["agent_type"] in ("L3 agent", "DHCP agent")]
    assert {(a["agent_type"], a["host"]) for a in ours} >= {
        (t, h) for t in ("L3 agent", "DHCP agent") for h in HOSTS
    }
    assert all(a["liveness"] == "alive" and a["alive_api"] for a in ours)
    table = verb(config, "status", "--listen", "0", "--host", "net2")
    assert table.returncode == 0 and "net2" in table.stdout and "net1 " not in table.stdout
    assert verb(config, "status", "--listen", "0", "--host", "nohost").returncode == 2

    l3_net1 = rig.agent_id("L3 agent", "net1")
    router = create_router(rig, f"{tag()}-check")
    bind_router(rig, l3_net1, router)
    before = verb(config, "check")
    stranded = json.loads(verb(config, "status", "--json", "--listen", "0").stdout)["stranded"]
    assert before.returncode == (2 if stranded else 0), before.stdout  # leftovers may exist
    rig.set_agent("l3", "net1", "hard")
    rig.wait_agent_alive(l3_net1, False, timeout=AGENT_DOWN_TIME * 6)
    after = verb(config, "check")
    assert after.returncode == 2 and after.stdout.startswith("CRITICAL: "), after.stdout
    doc = json.loads(verb(config, "status", "--json", "--listen", "0").stdout)
    assert router in {s["id"] for s in doc["stranded"] if s["kind"] == "router"}
    graced = verb(config, "check", "--grace", "3600")
    every_aged = all(s["age"] is not None for s in doc["stranded"])
    assert graced.returncode == (1 if every_aged else 2), graced.stdout


def test_evacuate_and_restore_with_the_daemon_running(restored: Rig, tmp_path: Path) -> None:
    rig = restored
    l3 = {h: rig.agent_id("L3 agent", h) for h in HOSTS}
    dhcp = {h: rig.agent_id("DHCP agent", h) for h in HOSTS}
    t = tag()
    routers = [create_router(rig, f"{t}-{i}") for i in range(4)]
    for router in routers:
        bind_router(rig, l3["net1"], router)
    networks = [create_dhcp_network(rig, f"{t}-{i}", 140 + i) for i in range(2)]
    for network in networks:
        status, body = rig.call(
            "POST", f"/agents/{dhcp['net1']}/dhcp-networks", {"network_id": network}
        )
        assert status in (201, 409), body

    gaps: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every 0.2 s: each of our networks has an admin-up, alive agent
        while not stop.is_set():
            live = {a["id"] for a in rig.agents("DHCP agent") if a["admin_state_up"] and a["alive"]}
            gaps.extend(n for n in networks if not network_agents(rig, n) & live)
            stop.wait(0.2)

    with Daemon(rig, tmp_path) as daemon:
        daemon.wait_log("listening on the bus")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            started = time.monotonic()
            done = verb(daemon, "evacuate", "net1")
            took = time.monotonic() - started
            assert done.returncode == 0, done.stdout + done.stderr
            # the daemon's next passes (resync every 10 s) move nothing back
            time.sleep(12)
        finally:
            stop.set()
            watcher.join(10)
        daemon.assert_running()
    assert not gaps, gaps[:5]
    print(f"\nPEER-MEASURE evacuate_net1 {took:.2f}s")
    status, body = rig.call("GET", f"/agents/{l3['net1']}/l3-routers")
    assert body["routers"] == []
    status, body = rig.call("GET", f"/agents/{dhcp['net1']}/dhcp-networks")
    assert body["networks"] == []
    for router in routers:
        agents = router_agents(rig, router)
        assert len(agents) == 1 and agents[0] in (l3["net2"], l3["net3"])
    for agent_id in (l3["net1"], dhcp["net1"]):
        _, body = rig.call("GET", f"/agents/{agent_id}")
        assert body["agent"]["admin_state_up"] is False

    restored_run = verb(daemon, "restore", "net1")
    assert restored_run.returncode == 0, restored_run.stdout + restored_run.stderr
    for agent_id in (l3["net1"], dhcp["net1"]):
        _, body = rig.call("GET", f"/agents/{agent_id}")
        assert body["agent"]["admin_state_up"] is True
