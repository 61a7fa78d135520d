"""Benchmark 1: L3 failover, OURS vs the 2014 pattern, on the same simulator.

``R`` legacy routers all on one L3 agent, 5 other live L3 agents, every API call delayed
by ``--latency`` (50 ms). The victim's agent is killed (no more heartbeats); both
contenders are timed from T0 - the instant the simulated API starts reporting the victim
``alive: false`` - to the first instant every router is on a live agent and none is left
on the victim. OURS is the real daemon (``runtime.app.run``) in-process over the bus;
it is run with the shipped defaults and with tuned settings.

    .venv/bin/python -m bench.l3_failover [--quick] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
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
from rpcdaemon.sim.resources import L3_AGENT
from rpcdaemon.sim.scenario import build_cloud

TUNED = DaemonTuning(max_concurrency=32, max_moves_per_pass=1000)


@dataclass(frozen=True)
class Params:
    routers: int = 1000
    other_agents: int = 5
    latency: float = 0.05
    agent_down_time: float = 5.0
    timeout: float = 600.0
    amqp_url: str = "memory://"


def make_cloud(p: Params) -> tuple[SimCloud, str]:
    cloud = build_cloud(
        l3_agents=p.other_agents + 1,
        dhcp_agents=0,
        routers=p.routers,
        networks=0,
        bind=False,
        agent_down_time=p.agent_down_time,
        seed=3,
    )
    victim = min(
        (a for a in cloud.agents() if a["agent_type"] == L3_AGENT), key=lambda a: a["host"]
    )
    for router in cloud.routers():
        cloud.add_router_to_agent(str(victim["id"]), str(router["id"]))
    return cloud, str(victim["id"])


def converged(cloud: SimCloud, victim: str, total: int) -> bool:
    if cloud.routers_on(victim):
        return False
    hosted: set[str] = set()
    for agent in cloud.agents():
        if agent["id"] != victim:
            hosted |= cloud.routers_on(str(agent["id"]))
    return len(hosted) == total


def _measure(rig: Rig, victim: str, p: Params, who: str) -> tuple[float, float, int, int]:
    """Kill the victim; (T0, T1, calls, writes) between T0 and convergence."""
    rig.bus.kill(victim)
    t0 = rig.wait_api_dead(victim, p.agent_down_time * 3 + 10)
    before = rig.server.calls.snapshot()
    t1 = wait_for(lambda: converged(rig.cloud, victim, p.routers), p.timeout, CONVERGE_POLL)
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
        plugin="L3Agent",
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
        l3=True,
        dhcp=False,
    )


def report(p: Params, results: Sequence[Failover]) -> str:
    head = (
        f"{p.routers} legacy routers on one L3 agent, {p.other_agents} other live L3 agents, "
        f"{p.latency * 1000:.0f} ms per API call, agent_down_time {p.agent_down_time:g} s, "
        f"bus {p.amqp_url}. Time = T0 (API reports the victim dead) -> every router on a "
        "live agent. Goal: OURS <= 10 s and >= 10x faster than the 2014 pattern.\n\n"
    )
    return head + failover_table(results)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.l3_failover", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="100 routers instead of 1000")
    ap.add_argument("--routers", type=int, default=None)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    ap.add_argument("--amqp", default="memory://", help="broker URL (default memory://)")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="CONCURRENCY,MOVES",
        help="also run OURS with max_concurrency,max_moves_per_pass (repeatable)",
    )
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    quiet_logs(args.verbose)
    routers = args.routers or (100 if args.quick else 1000)
    p = Params(routers=routers, latency=args.latency, amqp_url=args.amqp)
    started = time.monotonic()
    tunings = [DaemonTuning(), TUNED]
    for item in args.also:
        concurrency, moves = (int(x) for x in item.split(","))
        tunings.append(DaemonTuning(max_concurrency=concurrency, max_moves_per_pass=moves))
    results = [*(run_ours(p, t) for t in tunings), run_legacy(p)]
    text = report(p, results)
    print(text)
    print(f"\n(wall time {time.monotonic() - started:.0f}s)")
    if args.write:
        command = ".venv/bin/python -m bench.l3_failover " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:])
        )
        update_results("l3_failover", section_text("L3 failover", command.strip(), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
