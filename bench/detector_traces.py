"""The node-death detector's false-verdict rate and detection times on a synthetic day (issue 12).

Pure: the real :class:`~rpcdaemon.core.detector.Detector` on a simulated clock; no bus, no
API. Network hosts (L3, DHCP, Open vSwitch, metadata agents) and compute hosts (Open vSwitch,
metadata) live through a day of:

* reports every ``report_interval`` from a random phase, on a fixed-interval loop (oslo's
  FixedIntervalLoopingCall: a late report delays the next only when the call took longer
  than the interval), each reaching us after a long-tailed jitter (log-normal, median 10 ms,
  ~0.3 s at the 99th and ~1 s at the 99.9th percentile, capped at 2 s);
* GC-like pauses of single processes, one every ``pause_every`` s per process on average,
  log-uniform from 0.2 s to one interval: a paused process neither reports nor answers a
  probe; its report goes out when the pause ends;
* a slow neutron-server hour: report_state is an RPC *call*, so every report is late by the
  server's latency (counted as if we saw it only when the server handled it: the harsher
  reading): 5 s, with six bursts ramping in 30 s to 20-40 s, held 1-3 minutes; latencies
  and ramps scaled by ``report_interval / 30``;
* broker restarts: down 10-60 s; agents back 0.5-8 s after it; our consumer notices 0-2 s
  after it went down (the first restart: 10-40 s, an unclean failover noticed by the AMQP
  heartbeat) and reconnects 1-5 s after it is back (``Detector.disconnected`` /
  ``reconnected`` and a ``BusState`` with ``listening_since``); probes fail meanwhile;
* single-process crashes (systemd restarts them after 5-20 s, first report 1-5 s later);
* node deaths: every agent of the host silent from ``D`` on, its queues unanswered; half on
  network hosts, three in the slow hour, three near a broker restart, the rest at random.

Probes: a live process answers at once; a paused or crashed one, or a dead host, does not. An
unanswered queue is *held* (the broker still counts its consumer) while its process is paused,
and on a dead host until ``heartbeat_timeout`` (60 s: the broker's AMQP heartbeat timeout);
a crashed process lets go at once (its kernel closes the connection).

The world is generated first (every arrival, in order, in two arrays), then replayed into the
detector (a tick every ``check_interval``, probe results delivered at their finish time) and
into a dict of last-seen times (the baseline: the cost of just taking the arrivals in). A
DEAD verdict for a host that was not dead at that moment is a *false node death*.

    python -m bench.detector_traces [--hours 24] [--seed 1] [--pause-every S]
        [--fast-hours H] [--json FILE] [--write]

``--write`` replaces this benchmark's whole section of bench/RESULTS.md (notes included).
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import math
import random
import statistics
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.common import section_text, table, update_results
from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.detection import (
    DetectorPolicy,
    HostState,
    ProbeRequest,
    ProbeResult,
    probe_queue,
)
from rpcdaemon.core.detector import Detector
from rpcdaemon.core.ids import AgentType, Host
from rpcdaemon.core.records import AgentKey

NETWORK: tuple[AgentType, ...] = (AgentType.L3, AgentType.DHCP, AgentType.OVS, AgentType.METADATA)
COMPUTE: tuple[AgentType, ...] = (AgentType.OVS, AgentType.METADATA)
ANSWER_TIME = 0.05
"""Seconds a live process takes to answer a probe (an unsupported-method error, at once)."""
WARMUP = 600.0
"""No event before this: every rhythm is learned first."""


@dataclass(frozen=True)
class Params:
    hours: float = 24.0
    seed: int = 1
    network_hosts: int = 100
    compute_hosts: int = 300
    report_interval: float = 30.0
    agent_down_time: float = 75.0
    check_interval: float = 1.0
    pause_every: float = 4 * 3600.0
    crashes: int = 8
    broker_restarts: int = 3
    deaths: int = 20
    slow_hour: bool = True
    heartbeat_timeout: float = 60.0  # the broker drops a dead host's consumers this late


@dataclass(frozen=True)
class Outage:
    """Broker down ``start``-``end``; our consumer ``ours_down``-``ours_up``; agent i back
    at ``back[i]``."""

    start: float
    end: float
    ours_down: float
    ours_up: float
    back: tuple[float, ...]


@dataclass
class World:
    p: Params
    keys: list[AgentKey]
    deaths: dict[Host, float]
    down: list[list[tuple[float, float]]]  # per agent: pauses and crashes
    crashed: list[list[tuple[float, float]]]  # per agent: crashes (its consumers let go)
    outages: list[Outage]
    slow: tuple[float, float] | None
    bursts: list[tuple[float, float, float]]  # (start, hold, peak latency)
    times: array[float] = field(default_factory=lambda: array("d"))
    who: array[int] = field(default_factory=lambda: array("l"))

    def latency(self, t: float) -> float:
        """neutron-server's answer time to a report_state call sent at ``t``."""
        if self.slow is None or not self.slow[0] <= t < self.slow[1]:
            return 0.0
        scale, (start, end) = self.p.report_interval / 30.0, self.slow
        ramp = 30.0 * scale
        latency = 5.0 * min(1.0, (t - start) / 120.0, (end - t) / 120.0)
        for at, hold, peak in self.bursts:
            if at <= t < at + 2 * ramp + hold:
                latency = max(
                    latency, peak * min(1.0, (t - at) / ramp, (at + 2 * ramp + hold - t) / ramp)
                )
        return latency * scale

    def probes_fail(self, t0: float, t1: float) -> bool:
        """The broker, or our connection to it, is down between ``t0`` and ``t1``."""
        return any(o.start < t1 and t0 < o.ours_up for o in self.outages)

    def answers(self, agent: int, t0: float, t1: float) -> bool:
        """Does the process of ``agent`` answer a probe sent at ``t0`` by ``t1``?"""
        if self.deaths.get(self.keys[agent].host, math.inf) <= t0:
            return False
        at = t0
        for start, stop in sorted(self.down[agent]):
            if start <= at < stop:
                at = stop
        return at <= t1

    def holds(self, agent: int, t: float) -> bool:
        """Does the broker count a consumer on ``agent``'s queue at ``t``? A crashed process
        lets go at once (its kernel closes the connection); a paused one holds on; a dead
        host's hold until the broker's heartbeat timeout."""
        died = self.deaths.get(self.keys[agent].host, math.inf)
        if t >= died + self.p.heartbeat_timeout:
            return False
        return not any(start <= t < stop for start, stop in self.crashed[agent])


def build(p: Params) -> World:
    """The day's events and every arrival, in order."""
    rng = random.Random(p.seed)
    end = p.hours * 3600.0
    span = (WARMUP, max(WARMUP + 1.0, end - 600.0))
    hosts = [(Host(f"net-{i:03d}"), NETWORK) for i in range(p.network_hosts)]
    hosts += [(Host(f"cmp-{i:03d}"), COMPUTE) for i in range(p.compute_hosts)]
    keys = [AgentKey(t.value, h) for h, types in hosts for t in types]
    slow: tuple[float, float] | None = None
    bursts: list[tuple[float, float, float]] = []
    if p.slow_hour:
        s = rng.uniform(WARMUP, max(WARMUP, end - 4200.0))
        slow = (s, min(end, s + 3600.0))
        bursts = [
            (s + rng.uniform(120.0, 3300.0), rng.uniform(60.0, 180.0), rng.uniform(20.0, 40.0))
            for _ in range(6)
        ]
    outages = []
    for k in range(p.broker_restarts):
        start = rng.uniform(*span)
        stop = start + rng.uniform(10.0, 60.0)
        ours_down = start + (rng.uniform(10.0, 40.0) if k == 0 else rng.uniform(0.0, 2.0))
        back = tuple(stop + rng.uniform(0.5, 8.0) for _ in keys)
        outages.append(
            Outage(start, stop, ours_down, max(stop, ours_down) + rng.uniform(1.0, 5.0), back)
        )
    down: list[list[tuple[float, float]]] = [[] for _ in keys]
    for spans in down:
        t = rng.expovariate(1.0 / p.pause_every)
        while t < end:
            length = math.exp(rng.uniform(math.log(0.2), math.log(p.report_interval)))
            spans.append((t, t + length))
            t += length + rng.expovariate(1.0 / p.pause_every)
    crashed: list[list[tuple[float, float]]] = [[] for _ in keys]
    for _ in range(p.crashes):
        at, i = rng.uniform(*span), rng.randrange(len(keys))
        crashed[i].append((at, at + rng.uniform(5, 20) + rng.uniform(1, 5)))
        down[i].append(crashed[i][-1])
    net = [h for h, types in hosts if types is NETWORK]
    comp = [h for h, types in hosts if types is COMPUTE]
    rng.shuffle(net)
    rng.shuffle(comp)
    deaths: dict[Host, float] = {}
    for k in range(min(p.deaths, len(hosts))):
        host = net.pop() if (k % 2 == 0 and net) or not comp else comp.pop()
        if k < 3 and slow is not None:
            deaths[host] = rng.uniform(*slow)
        elif k < 6 and outages:
            deaths[host] = outages[k % len(outages)].start + rng.uniform(-90.0, 60.0)
        else:
            deaths[host] = rng.uniform(*span)
    world = World(p, keys, deaths, down, crashed, outages, slow, bursts)
    _arrivals(world, rng, end)
    return world


def _merged(spans: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Overlapping spans joined: (starts, stops), sorted and disjoint."""
    starts: list[float] = []
    stops: list[float] = []
    for start, stop in sorted(spans):
        if stops and start <= stops[-1]:
            stops[-1] = max(stops[-1], stop)
        else:
            starts.append(start)
            stops.append(stop)
    return starts, stops


def _arrivals(world: World, rng: random.Random, end: float) -> None:
    """Every report's arrival on our clock, in order (a heap of each agent's next one). A
    report due while its process is paused or crashed, or while the broker is down for it,
    goes out when that ends; none once its host is dead; none reach us while we are away."""
    interval = world.p.report_interval
    blocked = [
        _merged(world.down[i] + [(o.start, o.back[i]) for o in world.outages])
        for i in range(len(world.keys))
    ]
    died = [world.deaths.get(k.host, math.inf) for k in world.keys]
    away_starts, away_stops = _merged([(o.start, o.ours_up) for o in world.outages])
    latency, lognormal, uniform, mu = world.latency, rng.lognormvariate, rng.uniform, math.log(0.01)
    heap: list[tuple[float, int, float]] = []  # (arrival, agent, next report due)
    last = [0.0] * len(world.keys)

    def push(i: int, due: float) -> None:
        starts, stops = blocked[i]
        j = bisect.bisect_right(starts, due) - 1
        sent = stops[j] if j >= 0 and due < stops[j] else due
        if sent >= died[i]:
            return
        slow = latency(sent)
        arrival = sent + min(2.0, lognormal(mu, 1.5)) + (slow * uniform(0.8, 1.2) if slow else 0)
        last[i] = arrival = max(last[i], arrival)
        heapq.heappush(heap, (arrival, i, sent + max(interval, slow)))

    for i in range(len(world.keys)):
        push(i, uniform(0.0, interval))
    while heap:
        arrival, i, due = heapq.heappop(heap)
        if arrival >= end:
            continue
        j = bisect.bisect_right(away_starts, arrival) - 1
        if j < 0 or arrival >= away_stops[j]:
            world.times.append(arrival)
            world.who.append(i)
        push(i, due)


# -- the replay ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    verdicts: list[tuple[Host, float, bool]] = field(default_factory=list)  # host, at, false
    probes: int = 0
    slow_hosts: int = 0  # SLOW conclusions: silent hosts whose agents answered
    no_proof: int = 0  # probes that proved nothing (our side failed, control unanswered)
    brake: Counter[str] = field(default_factory=Counter)  # ticks held, by kind
    cpu: float = 0.0
    cpu_ticks: float = 0.0


def replay(world: World, *, baseline: bool = False) -> Outcome:
    """Feed the day to the detector (``baseline``: to a dict of last-seen times)."""
    p, out = world.p, Outcome()
    detector = Detector(DetectorPolicy(agent_down_time=p.agent_down_time))
    detector.set_known(world.keys)
    seen: dict[AgentKey, float] = {}
    feed = seen.__setitem__ if baseline else detector.arrival
    index = {k: i for i, k in enumerate(world.keys)}
    agent_of = {q: index[k] for k in world.keys if (q := probe_queue(*k)) is not None}
    events: list[tuple[float, int, BusState | ProbeResult]] = []
    for o in world.outages:
        events.append((o.ours_down, len(events), BusState(connected=False)))
        events.append((o.ours_up, len(events), BusState(True, listening_since=o.ours_up)))
    heapq.heapify(events)
    bus, seq = BusState(connected=True, listening_since=0.0), len(events)
    times, who, keys, count, i = world.times, world.who, world.keys, len(world.times), 0
    deaths, declared = detector.deaths(), set[Host]()
    started = time.process_time()
    for k in range(1, int(p.hours * 3600.0 / p.check_interval) + 1):
        now = k * p.check_interval
        while True:
            limit = min(now, events[0][0]) if events else now
            while i < count and times[i] <= limit:
                if bus.connected:
                    feed(keys[who[i]], times[i])
                i += 1
            if not events or events[0][0] > now:
                break
            at, _, item = heapq.heappop(events)
            if isinstance(item, ProbeResult):
                detector.probe_done(item)
            elif not baseline:
                detector.reconnected(at) if item.connected else detector.disconnected()
            bus = item if isinstance(item, BusState) else bus
        if baseline:
            continue
        tick_started = time.process_time()
        step = detector.tick(now, bus)
        out.cpu_ticks += time.process_time() - tick_started
        if step.brake is not None:
            out.brake[step.brake_kind or step.brake] += 1
        for change in step.changes:
            out.slow_hosts += change.new is HostState.SLOW
            out.no_proof += "our trouble" in change.reason or "our side" in change.reason
        for probe in step.probes:
            out.probes += 1
            result = _answer(world, agent_of, probe, detector.policy.probe_timeout)
            heapq.heappush(events, (result.finished_at, seq, result))
            seq += 1
        if deaths.keys() != declared:
            for host in deaths.keys() - declared:
                out.verdicts.append((host, now, world.deaths.get(host, math.inf) > now))
            declared = set(deaths)
    out.cpu = time.process_time() - started
    return out


def _answer(
    world: World, agent_of: dict[str, int], probe: ProbeRequest, timeout: float
) -> ProbeResult:
    sent = probe.sent_at
    if world.probes_fail(sent, sent + timeout):
        return ProbeResult(probe, frozenset(), sent + ANSWER_TIME, error="broker unreachable")
    asked = probe.queues + probe.control
    answered = frozenset(q for q in asked if world.answers(agent_of[q], sent, sent + timeout))
    held = frozenset(q for q in asked if q not in answered and world.holds(agent_of[q], sent))
    done = sent + (ANSWER_TIME if len(answered) == len(asked) else timeout)
    return ProbeResult(probe, answered, done, held=held)


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Death:
    host: Host
    kind: str  # network or compute
    died: float
    context: str  # quiet time, slow neutron-server hour, near a broker restart
    verdict_after: float | None  # the first DEAD verdict, seconds after the death
    fast: bool  # a verdict within agent_down_time + one interval
    todays_rule_after: float  # last heartbeat + agent_down_time (after a reconnect: window)


def deaths_of(world: World, out: Outcome) -> list[Death]:
    p, last = world.p, dict[Host, float]()
    for t, i in zip(world.times, world.who, strict=True):
        if world.keys[i].host in world.deaths:
            last[world.keys[i].host] = t
    first: dict[Host, float] = {}
    for host, at, false in out.verdicts:
        if not false:
            first.setdefault(host, at)
    rows = []
    for host, died in sorted(world.deaths.items(), key=lambda kv: kv[1]):
        context = "quiet time"
        if any(o.start - 90.0 <= died <= o.ours_up + 2 * p.agent_down_time for o in world.outages):
            context = "near a broker restart"
        if world.slow is not None and world.slow[0] <= died < world.slow[1]:
            context = "slow neutron-server hour"
        today = last.get(host, died) + p.agent_down_time  # no death within a listening window
        for o in world.outages:
            if o.ours_down <= today < o.ours_up + p.agent_down_time:
                today = o.ours_up + p.agent_down_time
        after = None if host not in first else round(first[host] - died, 1)
        fast = after is not None and after <= p.agent_down_time + p.report_interval
        kind = "network" if host.startswith("net-") else "compute"
        rows.append(Death(host, kind, round(died, 1), context, after, fast, round(today - died, 1)))
    return rows


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    v = sorted(values)
    p90 = v[min(len(v) - 1, math.ceil(0.9 * len(v)) - 1)]
    return f"{v[0]:g} / {statistics.median(v):g} / {p90:g} / {v[-1]:g}"


def summarize(world: World, out: Outcome, base: Outcome) -> dict[str, Any]:
    """The numbers of one run, JSON-ready."""
    p, rows = world.p, deaths_of(world, out)
    detector_cpu = out.cpu - base.cpu
    return {
        "params": asdict(p),
        "agents": len(world.keys),
        "hosts": p.network_hosts + p.compute_hosts,
        "arrivals": len(world.times),
        "pauses": sum(map(len, world.down)) - p.crashes,
        "slow_hour": world.slow,
        "broker_outages": [[o.start, o.end, o.ours_down, o.ours_up] for o in world.outages],
        "false_node_deaths": sum(false for _, _, false in out.verdicts),
        "false_verdicts": [[h, at] for h, at, false in out.verdicts if false],
        "deaths": [asdict(d) for d in rows],
        "fast_verdict_after_death_s": _spread([d.verdict_after or 0.0 for d in rows if d.fast]),
        "todays_rule_after_death_s": _spread([d.todays_rule_after for d in rows]),
        "probes": out.probes,
        "slow_conclusions": out.slow_hosts,
        "probes_proving_nothing": out.no_proof,
        "brake_seconds": {k: v * p.check_interval for k, v in sorted(out.brake.items())},
        "cpu_s": {
            "detector_loop": round(out.cpu, 2),
            "ticks": round(out.cpu_ticks, 2),
            "baseline_loop": round(base.cpu, 2),
            "detector_per_day": round(detector_cpu * 24.0 / p.hours, 2),
            "us_per_arrival": round(1e6 * detector_cpu / max(1, len(world.times)), 2),
        },
    }


def report(results: list[dict[str, Any]]) -> str:
    """Markdown: verdicts, deaths by host kind and context, probes, brake and cost."""
    named = []
    for r in results:
        p = r["params"]
        named.append(
            (f"{p['report_interval']:g} s / {p['agent_down_time']:g} s, {p['hours']:g} h", r)
        )
    verdicts = [
        [run, f"{r['agents']} / {r['hosts']}", f"{r['arrivals']:,}", r["false_node_deaths"],
         len(r["deaths"]), sum(d["fast"] for d in r["deaths"]),
         sum(not d["fast"] for d in r["deaths"]),
         r["fast_verdict_after_death_s"], r["todays_rule_after_death_s"]]
        for run, r in named
    ]  # fmt: skip
    groups = []
    for run, r in named:
        for kind, context in sorted({(d["kind"], d["context"]) for d in r["deaths"]}):
            ds = [d for d in r["deaths"] if (d["kind"], d["context"]) == (kind, context)]
            fast = ", ".join(f"{d['verdict_after']:g}" for d in ds if d["fast"]) or "-"
            today = ", ".join(f"{d['todays_rule_after']:g}" for d in ds)
            groups.append([run, kind, context, len(ds), sum(d["fast"] for d in ds), fast, today])
    cost = [
        [run, r["probes"], r["slow_conclusions"], r["probes_proving_nothing"],
         "; ".join(f"{k}: {v:g}" for k, v in r["brake_seconds"].items()) or "-",
         r["cpu_s"]["detector_loop"], r["cpu_s"]["baseline_loop"],
         r["cpu_s"]["detector_per_day"], r["cpu_s"]["us_per_arrival"]]
        for run, r in named
    ]  # fmt: skip
    spread = "s after the death (min / median / p90 / max)"
    return "\n\n".join(
        [
            table(["run (report_interval / agent_down_time)", "agents / hosts", "arrivals",
                   "false node deaths", "real deaths", "fast verdicts", "slow path",
                   f"fast verdict, {spread}", f"today's rule, {spread}"], verdicts),
            table(["run", "dead host", "died in", "deaths", "fast", "fast verdict, s after",
                   "today's rule, s after"], groups),
            table(["run", "probes", "SLOW (silent, answered)", "probes proving nothing",
                   "brake held, s (by kind)", "detector loop CPU s", "baseline loop CPU s",
                   "detector CPU s per day", "us per arrival"], cost),
        ]
    )  # fmt: skip


def run(p: Params) -> dict[str, Any]:
    world = build(p)
    return summarize(world, replay(world), replay(world, baseline=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--network-hosts", type=int, default=Params.network_hosts)
    parser.add_argument("--compute-hosts", type=int, default=Params.compute_hosts)
    parser.add_argument("--pause-every", type=float, default=Params.pause_every, metavar="S")
    parser.add_argument(
        "--fast-hours",
        type=float,
        default=2.0,
        metavar="H",
        help="also run report_interval 2.5 s / agent_down_time 10 s this long (0: no)",
    )
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--write", action="store_true", help="replace the RESULTS.md section")
    args = parser.parse_args(argv)
    common = Params(
        seed=args.seed,
        network_hosts=args.network_hosts,
        compute_hosts=args.compute_hosts,
        pause_every=args.pause_every,
    )
    configs = [replace(common, hours=args.hours)]
    if args.fast_hours > 0:
        configs.append(
            replace(common, hours=args.fast_hours, report_interval=2.5, agent_down_time=10.0)
        )
    results = [run(p) for p in configs]
    text = report(results)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    if args.write:
        words = sys.argv[1:] if argv is None else argv
        command = " ".join([".venv/bin/python -m bench.detector_traces", *words])
        title = "Node-death detector: false verdicts and detection on a synthetic day"
        update_results("detector_traces", section_text(title, command, text))
    return 1 if any(r["false_node_deaths"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
