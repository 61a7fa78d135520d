"""Benchmark 2: Neutron API calls per idle minute, OURS vs the 2014 pattern.

50 agents (25 L3 + 25 DHCP), some routers and networks, nothing dead, every API call
delayed by ``--latency`` (20 ms). OURS is the real daemon with both planners and the
shipped defaults (check_interval 1 s, resync_interval 60 s): its window runs from the end
of its start-up pass to the end of its first ``resync`` pass (one resync period, ~60 s),
scaled to a minute. The 2014 pattern (both plugins, 1 s tick) is counted over
``--legacy-window`` seconds after its first tick and scaled to a minute.

    .venv/bin/python -m bench.idle_calls [--quick] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import legacy2014
from bench.common import (
    BenchError,
    DaemonTuning,
    Rig,
    diff_counts,
    quiet_logs,
    section_text,
    start_daemon,
    table,
    update_results,
    wait_for,
)
from rpcdaemon.settings import DaemonSettings
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.scenario import build_cloud


@dataclass(frozen=True)
class Params:
    l3_agents: int = 25
    dhcp_agents: int = 25
    routers: int = 100
    networks: int = 50
    latency: float = 0.02
    legacy_window: float = 20.0
    resync_interval: float = 60.0
    amqp_url: str = "memory://"


@dataclass(frozen=True)
class Idle:
    who: str
    window: float
    calls: int
    per_minute: float
    detail: str


def make_cloud(p: Params) -> SimCloud:
    return build_cloud(
        l3_agents=p.l3_agents,
        dhcp_agents=p.dhcp_agents,
        routers=p.routers,
        networks=p.networks,
        dhcp_agents_per_network=p.dhcp_agents,  # already converged: every network everywhere
        seed=5,
    )


def _breakdown(counts: dict[tuple[str, str], int]) -> str:
    parts = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{m} {t} x{n}" for (m, t), n in parts)


def run_ours(p: Params) -> Idle:
    """Start the daemon, let its start-up passes settle, then count every API call over a
    window of two resync intervals (so it holds two periodic resyncs). The full snapshot
    it also takes every ``full_resync_interval`` is added, amortized, to the per-minute
    figure: its cost is the start-up pass's snapshot."""
    tuning = DaemonTuning(resync_interval=p.resync_interval)
    full_every = DaemonSettings.full_resync_interval
    with Rig(make_cloud(p), latency=p.latency, amqp_url=p.amqp_url) as rig:
        daemon = start_daemon(
            rig, plugins=("L3Agent", "DHCPAgent"), agent_down_time=75.0, tuning=tuning
        )
        try:
            if wait_for(lambda: len(daemon.passes) >= 1, 60, 0.05) is None:
                raise BenchError("ours: no start-up pass within 60s")
            snapshot_calls = daemon.pass_calls[0]
            # settle: no pass for 3 s (start-up follow-ups done)
            while time.monotonic() - daemon.passes[-1][0] < 3.0:
                time.sleep(0.2)
            passes_before = len(daemon.passes)
            before = rig.server.calls.snapshot()
            started = time.monotonic()
            time.sleep(2 * p.resync_interval)
            window = time.monotonic() - started
            counts = diff_counts(rig.server.calls.snapshot(), before)
            triggers = [r.trigger for _, r in daemon.passes[passes_before:]]
        finally:
            daemon.close()
    calls = sum(counts.values())
    per_minute = calls * 60.0 / window + snapshot_calls * 60.0 / full_every
    detail = (
        f"calls in the window: {_breakdown(counts) or 'none'}; passes in the window: "
        f"{triggers or 'none'}; plus one full snapshot ({snapshot_calls} calls) every "
        f"full_resync_interval = {full_every:g} s, amortized into the per-minute figure"
    )
    return Idle(
        f"OURS, defaults (resync_interval={p.resync_interval:g} s, "
        f"full_resync_interval={full_every:g} s)",
        window,
        calls,
        per_minute,
        detail,
    )


def run_legacy(p: Params) -> Idle:
    with Rig(make_cloud(p), latency=p.latency, amqp_url=p.amqp_url) as rig:
        legacy = legacy2014.Legacy2014(rig.sdk(), l3=True, dhcp=True)
        thread = legacy2014.start(legacy)
        try:
            if wait_for(lambda: legacy.ticks >= 1, 120, 0.05) is None:
                raise BenchError("2014 pattern: no tick in 120s")
            before = rig.server.calls.snapshot()
            ticks = legacy.ticks
            started = time.monotonic()
            time.sleep(p.legacy_window)
            window = time.monotonic() - started
            counts = diff_counts(rig.server.calls.snapshot(), before)
            ticks = legacy.ticks - ticks
        finally:
            legacy2014.stop(legacy, thread)
    calls = sum(counts.values())
    detail = f"{ticks} ticks in the window; {_breakdown(counts)}"
    return Idle("2014 pattern (L3 + DHCP, 1 s tick)", window, calls, calls * 60.0 / window, detail)


def report(p: Params, ours: Idle, legacy: Idle) -> str:
    head = (
        f"{p.l3_agents} L3 + {p.dhcp_agents} DHCP agents, {p.routers} routers, {p.networks} "
        f"networks, nothing dead, {p.latency * 1000:.0f} ms per API call, bus {p.amqp_url}. "
        "Goal: OURS <= 1/100 of the 2014 pattern.\n\n"
    )
    rows = [(r.who, f"{r.window:.1f}", r.calls, f"{r.per_minute:.0f}") for r in (ours, legacy)]
    ratio = ours.per_minute / legacy.per_minute if legacy.per_minute else float("nan")
    body = table(("contender", "window (s)", "API calls in window", "calls per minute"), rows)
    return (
        head
        + body
        + f"\n\nRatio OURS / 2014 = {ratio:.4f} (1/{1 / ratio:.0f})\n\n"
        + f"- OURS: {ours.detail}\n- 2014: {legacy.detail}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.idle_calls", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 s 2014 window, 15 s resync")
    ap.add_argument("--latency", type=float, default=0.02, help="seconds per API call")
    ap.add_argument("--amqp", default="memory://", help="broker URL (default memory://)")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    quiet_logs(args.verbose)
    p = Params(
        latency=args.latency,
        amqp_url=args.amqp,
        legacy_window=5.0 if args.quick else 20.0,
        resync_interval=15.0 if args.quick else 60.0,
    )
    ours = run_ours(p)
    legacy = run_legacy(p)
    text = report(p, ours, legacy)
    print(text)
    if args.write:
        command = ".venv/bin/python -m bench.idle_calls " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        update_results("idle_calls", section_text("API calls per idle minute", command, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
