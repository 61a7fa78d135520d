"""Snapshot: one full ``NeutronAdapter.snapshot()`` against the simulated API (issue 11).

The simulator (``rpcdaemon.sim``: real HTTP, ``--latency`` per call) holds ``--routers``
routers on ``--agents`` L3 agents (and no networks). The adapter is the daemon's own
(openstacksdk, clouds.yaml ``auth_type: none``), run with ``concurrency=1`` so that every
call happens on the measuring thread: *client CPU* is that thread's CPU time
(``time.thread_time``), a share of the wall time of the snapshot; the server's threads are
not counted. ``--profile`` prints where the client's time goes (cProfile, top 15).

Nothing here asserts: numbers are printed and ``--write`` puts them in RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from bench.common import CLOUD, Rig, quiet_logs, section_text, table, update_results
from rpcdaemon.adapters import neutron
from rpcdaemon.settings import NeutronApiSettings
from rpcdaemon.sim.scenario import build_cloud


def one_run(rig: Rig, repeat: int, profile: bool) -> dict[str, float]:
    api = NeutronApiSettings(cloud=CLOUD, auth=None, source="bench", timeout=60.0)
    adapter = neutron.connect(api, concurrency=1)
    adapter.snapshot()  # connection set up, first-call costs paid
    walls, cpus, calls = [], [], []
    profiler = cProfile.Profile() if profile else None
    for _ in range(repeat):
        before = rig.calls()
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        view = adapter.snapshot()
        if profiler is not None:
            profiler.disable()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.thread_time() - cpu0)
        calls.append(rig.calls() - before)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "calls": statistics.median(calls),
        "routers": len(view.routers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routers", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1,000 routers, 10 agents")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    quiet_logs(False)
    if args.quick:
        args.routers, args.agents = 1_000, 10
    cloud = build_cloud(l3_agents=args.agents, dhcp_agents=0, routers=args.routers, networks=0)
    with Rig(cloud, latency=args.latency) as rig:
        got = one_run(rig, args.repeat, args.profile)
    body = table(
        ["full snapshot", "API calls", "seconds (median)", "client CPU s", "client CPU share"],
        [
            [
                f"{args.routers:,} routers / {args.agents} L3 agents, {args.latency * 1000:.0f} ms",
                f"{got['calls']:.0f}",
                f"{got['wall']:.2f}",
                f"{got['cpu']:.2f}",
                f"{got['cpu'] / got['wall']:.0%}",
            ]
        ],
    )
    print(body)
    if args.write:
        command = ".venv/bin/python -m bench.snapshot" + (" --quick" if args.quick else "")
        update_results("snapshot", section_text("Snapshot: calls and client CPU", command, body))


if __name__ == "__main__":
    main()
