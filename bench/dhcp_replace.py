"""Benchmark 3: a DHCP agent replaced, OURS vs the 2014 pattern, on the same simulator.

``N`` DHCP networks on every one of 10 DHCP agents, every API call delayed by
``--latency`` (20 ms). One agent dies (no more heartbeats); at T0 - the instant the
simulated API reports it ``alive: false`` - a fresh DHCP agent on a new host starts
heartbeating. Converged = the dead agent hosts nothing and the new one hosts all ``N``
networks. Time and API calls are counted from T0 to converged. OURS is the real daemon
(DHCPAgent planner) with the shipped defaults and with tuned settings.

    .venv/bin/python -m bench.dhcp_replace [--quick] [--write]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import (
    CONVERGE_POLL,
    BenchError,
    DaemonTuning,
    Failover,
    Rig,
    diff_counts,
    failover_table,
    quiet_logs,
    run_legacy_failover,
    run_ours_failover,
    section_text,
    update_results,
    wait_for,
    writes_of,
)
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT
from rpcdaemon.sim.scenario import build_cloud

TUNED = DaemonTuning(max_concurrency=32, max_moves_per_pass=1000)
NEW_HOST = "replacement1"


@dataclass(frozen=True)
class Params:
    networks: int = 500
    agents: int = 10
    latency: float = 0.02
    agent_down_time: float = 5.0
    timeout: float = 600.0
    amqp_url: str = "memory://"


def make_cloud(p: Params) -> tuple[SimCloud, str]:
    cloud = build_cloud(
        l3_agents=0,
        dhcp_agents=p.agents,
        routers=0,
        networks=p.networks,
        dhcp_agents_per_network=p.agents,
        agent_down_time=p.agent_down_time,
        seed=9,
    )
    victim = min(
        (a for a in cloud.agents() if a["agent_type"] == DHCP_AGENT), key=lambda a: a["host"]
    )
    return cloud, str(victim["id"])


def converged(cloud: SimCloud, victim: str, new: str, total: int) -> bool:
    return not cloud.networks_on(victim) and len(cloud.networks_on(new)) == total


def _measure(rig: Rig, victim: str, p: Params, who: str) -> tuple[float, float, int, int]:
    """Kill the victim; at T0 start the replacement; (T0, T1, calls, writes)."""
    rig.bus.kill(victim)
    t0 = rig.wait_api_dead(victim, p.agent_down_time * 3 + 10)
    before = rig.server.calls.snapshot()
    new = str(rig.cloud.add_agent(DHCP_AGENT, NEW_HOST)["id"])  # heartbeats from now on
    t1 = wait_for(lambda: converged(rig.cloud, victim, new, p.networks), p.timeout, CONVERGE_POLL)
    after = rig.server.calls.snapshot()
    if t1 is None:
        raise BenchError(f"{who}: not converged {p.timeout:.0f}s after T0")
    counts = diff_counts(after, before)
    return t0, t1, sum(counts.values()), writes_of(counts)


def run_ours(p: Params, tuning: DaemonTuning) -> Failover:
    cloud, victim = make_cloud(p)
    return run_ours_failover(
        cloud,
        victim,
        lambda rig, v: _measure(rig, v, p, "ours"),
        plugin="DHCPAgent",
        latency=p.latency,
        amqp_url=p.amqp_url,
        agent_down_time=p.agent_down_time,
        tuning=tuning,
    )


def run_legacy(p: Params) -> Failover:
    cloud, victim = make_cloud(p)
    return run_legacy_failover(
        cloud,
        victim,
        lambda rig, v: _measure(rig, v, p, "2014"),
        latency=p.latency,
        amqp_url=p.amqp_url,
        l3=False,
        dhcp=True,
    )


def report(p: Params, results: Sequence[Failover]) -> str:
    head = (
        f"{p.networks} DHCP networks on each of {p.agents} DHCP agents; one dies and a fresh "
        f"agent starts at T0 (API reports the old one dead); {p.latency * 1000:.0f} ms per "
        f"API call, agent_down_time {p.agent_down_time:g} s, bus {p.amqp_url}. "
        "Time = T0 -> dead agent empty and the new one hosting every network.\n\n"
    )
    return head + failover_table(results)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dhcp_replace", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="50 networks instead of 500")
    ap.add_argument("--networks", type=int, default=None)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds per API call")
    ap.add_argument("--amqp", default="memory://", help="broker URL (default memory://)")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    quiet_logs(args.verbose)
    networks = args.networks or (50 if args.quick else 500)
    p = Params(networks=networks, latency=args.latency, amqp_url=args.amqp)
    results = [run_ours(p, DaemonTuning()), run_ours(p, TUNED), run_legacy(p)]
    text = report(p, results)
    print(text)
    if args.write:
        command = ".venv/bin/python -m bench.dhcp_replace " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        update_results("dhcp_replace", section_text("DHCP agent replaced", command, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
