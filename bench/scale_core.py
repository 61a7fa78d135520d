"""Scale of the pure core: liveness ticks, planning, memory (issue 11).

No IO: the liveness model, the L3 and DHCP planners and the ClusterView are driven the way
the reactor drives them, at the issue's sizes (``--quick``: a tenth). Prints Markdown;
``--write`` replaces this benchmark's section of bench/RESULTS.md.

* **evaluate**: 10,000 agents (half L3, half DHCP), every one heard, then ``--ticks`` ticks
  one second apart; between ticks, 333 heartbeats (10,000 agents / 30 s) arrive. One tick
  = ``evaluate`` for each type with the snapshot's keys as ``expected`` (what the reactor
  does). Also reported: how many agents one tick re-judged (the model's counter).
* **plan**: L3, routers x agents at three sizes with 10 % of the agents dead; DHCP,
  networks x agents, one dead, 2014 policy (every live agent).
* **memory**: tracemalloc of the model (10,000 agents heard) and of the view (100,000
  routers, 20,000 networks, 10,000 agents), and the RSS growth of building them.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import section_text, table, update_results
from rpcdaemon.core import view as _view
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.liveness import AgentKey, LivenessModel
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.dhcpagent import plan_networks
from rpcdaemon.plugins.l3agent import plan_routers
from rpcdaemon.testing import (
    listening,
    make_agent,
    make_dhcp_agent,
    make_heartbeat,
    make_network,
    make_router,
    make_view,
)

share_bindings = getattr(_view, "share_bindings", None)  # absent from a baseline tree
POLICY = Policy(agent_down_time=75.0, max_moves_per_pass=10**9)
TYPES = (AgentType.L3.value, AgentType.DHCP.value)


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _heartbeat(i: int, at: float) -> Any:
    agent_type = TYPES[i % 2]
    config = {"routers": 10, "agent_mode": "legacy"} if i % 2 == 0 else {"networks": 4}
    config |= {
        "interfaces": 12,
        "ex_gw_ports": 3,
        "floating_ips": 7,
        "handle_internal_only_routers": True,
    }
    return make_heartbeat(
        host=f"node-{i:05d}.example.org",
        agent_type=agent_type,
        received_at=at,
        received_wall=1_800_000_000.0 + at,
        configurations=config,
    )


def bench_evaluate(agents: int, ticks: int) -> dict[str, float]:
    model = LivenessModel()
    keys = [AgentKey(TYPES[i % 2], _heartbeat(i, 0.0).host) for i in range(agents)]
    model.set_known(keys)
    bus = listening(0.0)
    for i in range(agents):  # every agent heard within the last report_interval (30 s)
        model.observe(_heartbeat(i, 70.0 + i % 30), policy=POLICY)
    by_type = {t: [k for k in keys if k.agent_type == t] for t in TYPES}
    now = 100.0  # past the listening window
    for t in TYPES:
        model.evaluate(now, POLICY, bus, agent_type=t, expected=by_type[t])
    per_second = max(1, agents // 30)
    cursor = 0
    times: list[float] = []
    judged: list[int] = []
    for _ in range(ticks):
        now += 1.0
        for _ in range(per_second):
            model.observe(_heartbeat(cursor % agents, now - 0.5), policy=POLICY)
            cursor += 1
        before = getattr(model, "judged_total", 0)
        start = time.perf_counter()
        for t in TYPES:
            model.evaluate(now, POLICY, bus, agent_type=t, expected=by_type[t])
        times.append(time.perf_counter() - start)
        judged.append(getattr(model, "judged_total", 0) - before)
    return {
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "judged": statistics.median(judged) if judged else 0,
        "heartbeats": per_second,
    }


def l3_view(routers: int, agents: int) -> ClusterView:
    return make_view(
        agents=[make_agent(f"l3-{i:04d}", host=f"net-{i:04d}") for i in range(agents)],
        routers=[make_router(f"r-{i:07d}") for i in range(routers)],
        router_bindings={f"r-{i:07d}": [f"l3-{i % agents:04d}"] for i in range(routers)},
    )


def dhcp_view(networks: int, agents: int) -> ClusterView:
    ids = [f"dhcp-{i:03d}" for i in range(agents)]
    return make_view(
        agents=[make_dhcp_agent(a, host=f"dh-{a}") for a in ids],
        networks=[make_network(f"n-{i:06d}") for i in range(networks)],
        network_bindings={f"n-{i:06d}": ids for i in range(networks)},
    )


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_l3(routers: int, agents: int) -> tuple[float, int]:
    view = l3_view(routers, agents)
    dead = {AgentId(f"l3-{i:04d}") for i in range(0, agents, 10)}
    verdicts = {a: (Liveness.DEAD if a in dead else Liveness.ALIVE) for a in view.agents}
    seconds, plan = _timed(lambda: plan_routers(view, verdicts, POLICY))
    return seconds, len(plan.tasks)


def bench_dhcp(networks: int, agents: int) -> tuple[float, int]:
    view = dhcp_view(networks, agents)
    verdicts = {a: Liveness.ALIVE for a in view.agents}
    verdicts[AgentId("dhcp-000")] = Liveness.DEAD
    seconds, plan = _timed(lambda: plan_networks(view, verdicts, POLICY))
    return seconds, len(plan.tasks)


def _measure(build: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    rss = _rss_kib()
    tracemalloc.start()
    thing = build()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()
    return traced / 2**20, (_rss_kib() - rss) / 1024, thing


def bench_model_memory(agents: int) -> tuple[float, float]:
    heartbeats = [_heartbeat(i, 1.0) for i in range(agents)]
    keys = [AgentKey(h.agent_type, h.host) for h in heartbeats]

    def build() -> LivenessModel:
        model = LivenessModel()
        model.set_known(keys)
        for hb in heartbeats:
            model.observe(_heartbeat_copy(hb), policy=POLICY)
        for agent_type in TYPES:  # judged once: the deadline queue is part of the cost
            model.evaluate(2.0, POLICY, listening(0.0), agent_type=agent_type)
        return model

    traced, rss, _ = _measure(build)
    return traced, rss


def _heartbeat_copy(hb: Any) -> Any:
    # a heartbeat as the codec hands it over: fresh strings and dicts, not shared ones
    return make_heartbeat(
        host="".join(hb.host),
        agent_type="".join(hb.agent_type),
        received_at=hb.received_at,
        received_wall=hb.received_wall,
        agent_time="".join(hb.agent_time),
        availability_zone="".join(hb.availability_zone or ""),
        configurations={"".join(k): v for k, v in hb.configurations.items()},
    )


def bench_view_memory(
    routers: int, networks: int, agents: int, *, shared: bool
) -> tuple[float, float]:
    """A view built the way the Neutron adapter builds one: ids decoded once (the binding
    maps reuse the inventory's keys), one frozenset per resource (``shared``: through
    ``core.view.share_bindings``)."""
    l3 = agents // 2
    uuid = "{:08d}-{}-4000-8000-000000000000"

    def build() -> ClusterView:
        l3_ids = [AgentId(uuid.format(i, "aaaa")) for i in range(l3)]
        dhcp_ids = [AgentId(uuid.format(i, "dddd")) for i in range(agents - l3)]
        agent_infos = [
            make_agent(a, host=f"network-node-{i:05d}.example.org") for i, a in enumerate(l3_ids)
        ] + [
            make_dhcp_agent(a, host=f"network-node-{i:05d}.example.org")
            for i, a in enumerate(dhcp_ids)
        ]
        router_infos = [make_router(uuid.format(i, "0000")) for i in range(routers)]
        network_infos = [make_network(uuid.format(i, "1111")) for i in range(networks)]
        # the adapter inverts per-agent listings into a set per resource (``_invert``)
        r_bind = {r.id: {l3_ids[i % l3]} for i, r in enumerate(router_infos)}
        n_bind = {
            n.id: {dhcp_ids[i % len(dhcp_ids)], dhcp_ids[(i + 1) % len(dhcp_ids)]}
            for i, n in enumerate(network_infos)
        }
        bind = (
            share_bindings
            if shared and share_bindings is not None
            else (lambda b: {k: frozenset(v) for k, v in b.items()})
        )
        return ClusterView(
            agents={a.id: a for a in agent_infos},
            routers={r.id: r for r in router_infos},
            networks={n.id: n for n in network_infos},
            router_bindings=bind(r_bind),
            network_bindings=bind(n_bind),
        )

    traced, rss, _ = _measure(build)
    return traced, rss


PARTS = ("evaluate", "l3", "dhcp", "model", "view", "view_shared")


def measure(part: str, k: int, ticks: int) -> dict[str, Any]:
    """One part, in this process (``main`` runs each in a fresh one: RSS is per part)."""
    if part == "evaluate":
        return bench_evaluate(10_000 // k, ticks)
    if part == "l3":
        sizes = ((10_000 // k, 20), (30_000 // k, 60), (100_000 // k, 200))
        return {f"{r:,} x {a}": bench_l3(r, a) for r, a in sizes}
    if part == "dhcp":
        sizes = ((2_000 // k, 20), (20_000 // k, 20), (60_000 // k, 20))
        return {f"{n:,} x {a}": bench_dhcp(n, a) for n, a in sizes}
    if part == "model":
        return dict(zip(("traced", "rss"), bench_model_memory(10_000 // k), strict=True))
    if part in ("view", "view_shared"):
        if part == "view_shared" and share_bindings is None:
            return {}
        sizes = (100_000 // k, 20_000 // k, 10_000 // k)
        got = bench_view_memory(*sizes, shared=part == "view_shared")
        return dict(zip(("traced", "rss"), got, strict=True))
    raise ValueError(part)


def run_part(part: str, k: int, ticks: int, src: str | None) -> dict[str, Any]:
    """``measure`` in a fresh interpreter; ``src``: import rpcdaemon from there instead."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-m", "bench.scale_core", "--part", part, "--ticks", str(ticks)]
    if k != 1:
        command.append("--quick")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def baseline_tree(rev: str) -> str:
    """``git archive`` of ``rev``'s src/ into a temporary directory (git state untouched)."""
    root = Path(tempfile.mkdtemp(prefix="scale-baseline-"))
    archive = subprocess.run(
        ["git", "archive", rev, "src"],
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return str(root / "src")


def report(
    now: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]] | None, k: int, rev: str
) -> str:
    def was(part: str, key: str, fmt: str) -> str:
        if base is None or key not in base.get(part, {}):
            return "-"
        value = base[part][key]
        return fmt.format(value[0] if isinstance(value, list) else value)

    ev = now["evaluate"]
    out = [
        table(
            [
                "liveness tick (evaluate, L3 + DHCP)",
                "agents",
                "heartbeats/tick",
                "agents judged/tick",
                "median ms/tick",
                "max ms/tick",
                f"median ms/tick at {rev}",
            ],
            [
                [
                    "333 heartbeats between ticks",
                    10_000 // k,
                    ev["heartbeats"],
                    f"{ev['judged']:.0f}",
                    f"{ev['median_ms']:.2f}",
                    f"{ev['max_ms']:.2f}",
                    was("evaluate", "median_ms", "{:.2f}"),
                ]
            ],
        )
    ]
    rows = []
    for part, label in (("l3", "L3, every 10th agent dead"), ("dhcp", "DHCP, one agent dead")):
        for size, (seconds, tasks) in now[part].items():
            rows.append([label, size, tasks, f"{seconds:.3f}", was(part, size, "{:.3f}")])
    out.append(
        table(
            ["one plan", "resources x agents", "tasks", "seconds (best of 3)", f"seconds at {rev}"],
            rows,
        )
    )
    size = f"{100_000 // k:,} routers, {20_000 // k:,} networks, {10_000 // k:,} agents"
    mem_rows = []
    for part, label, what in (
        ("model", "liveness model (after one tick)", f"{10_000 // k:,} agents heard"),
        ("view", "ClusterView, a frozenset per resource (today's adapter)", size),
        ("view_shared", "ClusterView, bindings through share_bindings", size),
    ):
        if not now[part]:
            continue
        mem_rows.append(
            [
                label,
                what,
                f"{now[part]['traced']:.1f}",
                f"{now[part]['rss']:.1f}",
                was(part, "traced", "{:.1f}"),
                was(part, "rss", "{:.1f}"),
            ]
        )
    out.append(
        table(
            [
                "memory",
                "size",
                "traced MB",
                "RSS growth MB",
                f"traced MB at {rev}",
                f"RSS MB at {rev}",
            ],
            mem_rows,
        )
    )
    return "\n\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--baseline", metavar="REV", help="also measure rpcdaemon at REV")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    k = 10 if args.quick else 1
    if args.part:
        print(json.dumps(measure(args.part, k, args.ticks)))
        return
    now = {part: run_part(part, k, args.ticks, None) for part in PARTS}
    base = None
    if args.baseline:
        src = baseline_tree(args.baseline)
        base = {part: run_part(part, k, args.ticks, src) for part in PARTS}
    body = report(now, base, k, args.baseline or "-")
    print(body)
    if args.write:
        command = ".venv/bin/python -m bench.scale_core" + (" --quick" if args.quick else "")
        if args.baseline:
            command += f" --baseline {args.baseline}"
        text = section_text("Scale: liveness, planning, memory (pure core)", command, body)
        update_results("scale_core", text)


if __name__ == "__main__":
    main()
