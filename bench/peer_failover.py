"""Side by side on a real neutron-server 29: how long until 50 routers of a killed L3 agent run again.

    .venv/bin/python -m bench.peer_failover [--routers 50] [--runs 3] [--json FILE]

Same rig (tests/peer/rig.py), same agent_down_time (10 s), same fake agents (report every 2 s):

(a) rpcdaemon (``python -m rpcdaemon -d``, L3Agent, defaults incl. confirm_with_api), Neutron's
    own failover off;
(b) Neutron's ``allow_automatic_l3agent_failover = True`` with ``neutron-periodic-workers``
    running, rpcdaemon off.

Each run: 50 new routers bound to L3 agent net1, then net1 is killed (no heartbeats, no RPC
consumer). The clock starts at net1's last heartbeat that neutron-server answered and stops at
the first poll (every 0.2 s) where all 50 routers are on live agents (net2, net3).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.peer.daemon import Daemon, bind_router, create_router, tag
from tests.peer.rig import AGENT_DOWN_TIME, REPORT_INTERVAL, Rig

logger = logging.getLogger(__name__)


def routers_on(rig: Rig, agent_id: str) -> set[str]:
    status, body = rig.call("GET", f"/agents/{agent_id}/l3-routers?fields=id")
    assert status == 200, body
    return {r["id"] for r in body["routers"]}


def detected_at(daemon: Daemon | None) -> float | None:
    """Wall-clock time of the daemon's last "L3 agent@net1 is DOWN" line, if any."""
    if daemon is None:
        return None
    lines = [x for x in daemon.text().splitlines() if "L3 agent@net1 is DOWN" in x]
    if not lines:
        return None
    return datetime.fromisoformat(lines[-1].split()[0]).timestamp()


def one_run(rig: Rig, n: int, timeout: float, daemon: Daemon | None) -> dict[str, float]:
    rig.revive_all()
    victim = rig.agent_id("L3 agent", "net1")
    live = [rig.agent_id("L3 agent", h) for h in ("net2", "net3")]
    t = tag()
    routers = {create_router(rig, f"bench-{t}-{i}") for i in range(n)}
    for router in routers:
        bind_router(rig, victim, router)
    assert routers <= routers_on(rig, victim)
    rig.set_agent("l3", "net1", "hard")
    time.sleep(REPORT_INTERVAL + 0.5)  # the agent has read its control file by now
    last_beat = rig.last_heartbeat("l3", "net1")
    deadline = time.time() + timeout
    while time.time() < deadline:
        moved = set().union(*(routers_on(rig, a) for a in live)) & routers
        if moved == routers:
            done = time.time()
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"only {len(moved)}/{n} routers moved within {timeout:g}s")
    left = routers_on(rig, victim) & routers
    assert not left, f"{len(left)} routers still on the dead agent"
    for router in routers:  # keep the next run's numbers clean
        rig.call("DELETE", f"/routers/{router}")
    result = {"seconds": done - last_beat}
    seen = detected_at(daemon)
    if seen is not None:
        result["detected"] = seen - last_beat
    return result


def measure(
    label: str, rig: Rig, runs: int, n: int, timeout: float, daemon: Daemon | None = None
) -> list[float]:
    out = []
    for i in range(runs):
        run = one_run(rig, n, timeout, daemon)
        note = f" (declared dead after {run['detected']:.1f}s)" if "detected" in run else ""
        print(f"  {label} run {i + 1}: {run['seconds']:.1f}s{note}", flush=True)
        out.append(run["seconds"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_failover", description=__doc__)
    p.add_argument("--routers", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rig = Rig.load()
    result: dict[str, Any] = {
        "routers": args.routers,
        "agent_down_time": AGENT_DOWN_TIME,
        "report_interval": REPORT_INTERVAL,
    }
    try:
        print("(a) rpcdaemon, Neutron's failover off", flush=True)
        rig.up(neutron_failover=False)
        with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
            with Daemon(rig, Path(tmp), plugins="L3Agent") as daemon:
                daemon.wait_log("listening on the bus")
                time.sleep(AGENT_DOWN_TIME + 2)  # steady state: our clock is established
                result["rpcdaemon"] = measure(
                    "rpcdaemon", rig, args.runs, args.routers, args.timeout, daemon
                )
        print("(b) Neutron allow_automatic_l3agent_failover + neutron-periodic-workers", flush=True)
        rig.up(neutron_failover=True)
        time.sleep(AGENT_DOWN_TIME + 2)  # the periodic worker's first check has run
        result["neutron"] = measure("neutron", rig, args.runs, args.routers, args.timeout)
    finally:
        rig.down()
    a, b = statistics.median(result["rpcdaemon"]), statistics.median(result["neutron"])
    result["median_rpcdaemon"], result["median_neutron"], result["ratio"] = a, b, b / a
    print(f"median: rpcdaemon {a:.1f}s, neutron {b:.1f}s, neutron/rpcdaemon = {b / a:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
