"""Properties of the node-death detector's pure rules (core.rhythm, core.detector).

Hypothesis builds small clouds on a virtual clock: every agent reports every ``interval``
from its own phase with a jitter, some processes crash or pause, a node dies; the detector
ticks every second and each probe is answered by the processes alive when it is sent (a dead
node, a crashed or paused process answers nothing; the broker still counts the consumers of
a paused process, and of a dead node for ``HEARTBEAT`` s, not of a crashed process: the
result's ``held``). Every run also checks, at every step,
the invariants no scenario may break: an arrival clears its host's death at once; no tick
with the brake on, the bus down or lagging, or inside the listening window adds a death; a
host declared dead had every agent silent for at least ``suspect_floor``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.detection import DetectorPolicy, HostState, ProbeRequest, ProbeResult
from rpcdaemon.core.detection import probe_queue as queue_of
from rpcdaemon.core.detector import Detector
from rpcdaemon.core.events import ConsumerLag
from rpcdaemon.core.ids import AgentType, Host
from rpcdaemon.core.records import AgentKey
from rpcdaemon.core.rhythm import (
    BURST_FRACTION,
    GAIN,
    MIN_SAMPLES,
    OUTLIER_CLIP,
    Rhythm,
    suspect_after,
)

TICK = 1.0
ANSWER = 0.05  # a live process answers a probe at once
HEARTBEAT = 60.0  # the broker drops a dead host's consumers after its heartbeat timeout
KINDS: dict[str, tuple[AgentType, ...]] = {
    "network": (AgentType.L3, AgentType.DHCP, AgentType.OVS, AgentType.METADATA),
    "dvr": (AgentType.L3, AgentType.OVS, AgentType.METADATA),
    "compute": (AgentType.OVS, AgentType.METADATA),
}
CONFIRMABLE = ("network", "dvr")  # two agents or more that consume a queue
QUICK = settings(max_examples=60, deadline=None)

intervals = st.sampled_from([2.5, 5.0, 10.0, 30.0])
ratios = st.floats(min_value=2.5, max_value=4.0)  # agent_down_time / report_interval
jitters = st.floats(min_value=0.0, max_value=0.1)  # of the interval
seeds = st.integers(min_value=0, max_value=2**32 - 1)  # the jitter's random stream


def periodic(
    rnd: random.Random, interval: float, jitter: float, stop: float, *, phase: float | None = None
) -> list[float]:
    """Reports every ``interval`` from ``phase``, each late by up to ``jitter`` seconds."""
    t = rnd.uniform(0.0, interval) if phase is None else phase
    out = []
    while t < stop:
        out.append(t + rnd.uniform(0.0, jitter))
        t += interval
    return out


def paused(times: list[float], start: float, length: float, interval: float) -> list[float]:
    """The same reports with the process paused ``length`` s from ``start``: the report due
    in the pause goes out when it ends, the next ones one interval apart from there."""
    before = [t for t in times if t < start]
    due = [t for t in times if t >= start]
    if not due or due[0] >= start + length:
        return times
    resumed = start + length
    return before + [resumed + k * interval for k in range(len(due))]


@dataclass
class World:
    """Who reports when, who answers probes, and what the bus looks like."""

    interval: float
    down_time: float
    hosts: dict[Host, tuple[AgentType, ...]]
    arrivals: dict[AgentKey, list[float]] = field(default_factory=dict)
    dead: dict[Host, float] = field(default_factory=dict)  # answers nothing from then on
    down: dict[AgentKey, list[tuple[float, float]]] = field(default_factory=dict)  # paused
    crashed: dict[AgentKey, list[tuple[float, float]]] = field(default_factory=dict)
    controls_answer: bool = True
    probe_error: str | None = None
    bus: Callable[[float], BusState] = lambda now: BusState(connected=True, listening_since=0.0)

    @property
    def policy(self) -> DetectorPolicy:
        return DetectorPolicy(agent_down_time=self.down_time)

    def keys(self) -> list[AgentKey]:
        return [AgentKey(t.value, h) for h, types in self.hosts.items() for t in types]

    def answers(self, key: AgentKey, t0: float, t1: float) -> bool:
        died = self.dead.get(key.host)
        if died is not None and died <= t0:
            return False
        at = t0
        for start, stop in sorted(self.down.get(key, []) + self.crashed.get(key, [])):
            if start <= at < stop:
                at = stop
        return at <= t1

    def holds(self, key: AgentKey, t: float) -> bool:
        """The broker still counts a consumer on ``key``'s queue: a paused process holds on,
        a crashed one lets go at once, a dead host's hold until the heartbeat timeout."""
        if t >= self.dead.get(key.host, math.inf) + HEARTBEAT:
            return False
        return not any(start <= t < stop for start, stop in self.crashed.get(key, []))


def healthy_cloud(
    rnd: random.Random,
    interval: float,
    ratio: float,
    jitter: float,
    stop: float,
    extra: dict[str, str],
) -> World:
    """Three healthy network hosts (controls) plus ``extra`` (name -> kind)."""
    hosts = {Host(f"ctl{i}"): KINDS["network"] for i in range(3)}
    hosts |= {Host(name): KINDS[kind] for name, kind in extra.items()}
    world = World(interval, interval * ratio, hosts)
    for key in world.keys():
        world.arrivals[key] = periodic(rnd, interval, jitter * interval, stop)
    return world


@dataclass
class Run:
    verdicts: list[tuple[Host, float]] = field(default_factory=list)
    probes: list[ProbeRequest] = field(default_factory=list)
    first_not_ok: dict[Host, float] = field(default_factory=dict)
    final: dict[Host, HostState] = field(default_factory=dict)  # hosts not OK at the end
    seen: set[tuple[Host, HostState]] = field(default_factory=set)  # every state held
    brakes: list[str] = field(default_factory=list)


def drive(world: World, until: float) -> Run:
    """Arrivals, probe results and ticks in time order; the invariants checked at each."""
    policy = world.policy
    detector = Detector(policy)
    keys = world.keys()
    detector.set_known(keys)
    by_queue = {q: k for k in keys if (q := queue_of(k.agent_type, k.host)) is not None}
    feed = sorted((t, k) for k, ts in world.arrivals.items() for t in ts)
    results: list[tuple[float, int, ProbeResult]] = []
    last: dict[AgentKey, float] = {}
    run, i, seq = Run(), 0, 0
    declared: set[Host] = set()
    for n in range(1, int(until / TICK) + 1):
        now = n * TICK
        while True:
            arrival = feed[i][0] if i < len(feed) else math.inf
            answer = results[0][0] if results else math.inf
            if min(arrival, answer) > now:
                break
            if arrival <= answer:
                at, key = feed[i]
                i += 1
                detector.arrival(key, at)
                last[key] = at
                assert key.host not in detector.deaths(), f"{key} arrived at {at}, still dead"
            else:
                detector.probe_done(heapq.heappop(results)[2])
        bus = world.bus(now)
        step = detector.tick(now, bus)
        if step.brake is not None:
            run.brakes.append(step.brake)
        for probe in step.probes:
            run.probes.append(probe)
            done, reply = _answer(world, by_queue, probe, policy)
            heapq.heappush(results, (done, seq, reply))
            seq += 1
        deaths = detector.deaths()
        for host in deaths.keys() - declared:
            run.verdicts.append((host, now))
            braked = (
                not bus.connected or bus.lagging or bus.listened_for(now) < policy.agent_down_time
            )
            lag = bus.lag is not None and bus.lag.seconds > policy.lag_limit
            assert step.brake is None and not braked and not lag, (host, now, step.brake, bus)
            for key in keys:
                if key.host == host and key in last and now - last[key] < policy.agent_down_time:
                    assert now - last[key] >= policy.suspect_floor, (host, key, last[key], now)
        declared = set(deaths)
        for host, state in detector.states().items():
            run.first_not_ok.setdefault(host, now)
            run.seen.add((host, state))
    run.final = detector.states()
    return run


def _answer(
    world: World, by_queue: dict[str, AgentKey], probe: ProbeRequest, policy: DetectorPolicy
) -> tuple[float, ProbeResult]:
    sent, timeout = probe.sent_at, policy.probe_timeout
    if world.probe_error is not None:
        result = ProbeResult(probe, frozenset(), sent + ANSWER, error=world.probe_error)
        return result.finished_at, result
    asked = list(probe.queues) + (list(probe.control) if world.controls_answer else [])
    answered = frozenset(q for q in asked if world.answers(by_queue[q], sent, sent + timeout))
    held = frozenset(
        q for q in probe.queues + probe.control
        if q not in answered and world.holds(by_queue[q], sent)
    )  # fmt: skip
    done = sent + (ANSWER if len(answered) == len(probe.queues + probe.control) else timeout)
    return done, ProbeResult(probe, answered, done, held=held)


def warm_until(world: World) -> float:
    """When every rhythm is learned and the listening window is over."""
    return max(world.down_time, (MIN_SAMPLES + 2) * world.interval) + 2 * world.interval


def kill(world: World, host: Host, at: float) -> None:
    world.dead[host] = at
    for key in world.keys():
        if key.host == host:
            world.arrivals[key] = [t for t in world.arrivals[key] if t < at]


# -- node deaths and what must never look like one -----------------------------------------------


@QUICK
@given(
    seeds,
    intervals,
    ratios,
    jitters,
    st.sampled_from(sorted(KINDS)),
    st.floats(0.0, 1.0),
    st.floats(0.1, 3.0),
)
def test_any_arrival_clears_a_death_at_once(
    seed: int,
    interval: float,
    ratio: float,
    jitter: float,
    kind: str,
    when: float,
    away: float,
) -> None:
    """A node dies, then its agents come back: from its first arrival on it is not dead
    (checked by ``drive`` after every arrival), and a verdict never names a host with an
    agent heard less than ``suspect_floor`` before it."""
    rnd = random.Random(seed)
    stop = 30 * interval
    world = healthy_cloud(rnd, interval, ratio, jitter, stop, {"victim": kind})
    victim = Host("victim")
    died = warm_until(world) + when * world.interval
    back = died + away * world.down_time
    kill(world, victim, died)
    world.dead.pop(victim)
    world.down = {k: [(died, back)] for k in world.keys() if k.host == victim}
    for key in world.down:
        world.arrivals[key] += periodic(rnd, interval, jitter * interval, stop, phase=back)
    run = drive(world, stop)
    assert all(h == victim for h, _ in run.verdicts)
    assert run.final.get(victim) is not HostState.DEAD


@QUICK
@given(
    seeds,
    intervals,
    ratios,
    jitters,
    st.sampled_from(sorted(KINDS)),
    st.data(),
)
def test_a_single_silent_agent_never_makes_a_node_death(
    seed: int,
    interval: float,
    ratio: float,
    jitter: float,
    kind: str,
    data: st.DataObject,
) -> None:
    """One process crashes (for any time, even for good) while its neighbours report with
    their usual jitter: its host is never probed, never DEAD."""
    rnd = random.Random(seed)
    stop = 30 * interval
    world = healthy_cloud(rnd, interval, ratio, jitter, stop, {"h": kind})
    key = AgentKey(data.draw(st.sampled_from(KINDS[kind])).value, Host("h"))
    crash = warm_until(world) + data.draw(st.floats(0.0, 2.0)) * interval
    restart = crash + data.draw(st.floats(5.0, 20 * interval))
    world.crashed[key] = [(crash, restart)]
    world.arrivals[key] = [t for t in world.arrivals[key] if not crash <= t < restart]
    run = drive(world, stop)
    assert not run.verdicts
    assert not any(p.host == Host("h") for p in run.probes)


@settings(max_examples=60, deadline=None)
@example(  # two pauses, as cmp-140 in bench.detector_traces --seed 2 --pause-every 3600
    seed=0, interval=30.0, kind="compute", first=AgentType.OVS, crash=False,
    start=0.8, length=0.8, pause_at=0.3, pause=0.7,
)  # fmt: skip
@example(  # the metadata agent crashed, the OVS agent paused
    seed=0, interval=30.0, kind="compute", first=AgentType.METADATA, crash=True,
    start=0.5, length=2.0, pause_at=0.6, pause=1.0,
)  # fmt: skip
@given(
    seeds,
    intervals,
    st.sampled_from(sorted(KINDS)),
    st.sampled_from(list(AgentType)),
    st.booleans(),
    st.floats(0.0, 2.0),
    st.floats(0.2, 4.0),
    st.floats(-1.0, 2.0),
    st.floats(0.0, 1.0),
)
def test_two_hiccups_on_a_live_node_are_not_a_node_death(
    seed: int,
    interval: float,
    kind: str,
    first: AgentType,
    crash: bool,
    start: float,
    length: float,
    pause_at: float,
    pause: float,
) -> None:
    """One process of a live node crashes (systemd restarts it) or pauses, and meanwhile
    another one pauses (GC-like, up to one interval): two single-process events, not a
    node death."""
    rnd = random.Random(seed)
    stop = 30 * interval
    world = healthy_cloud(rnd, interval, 2.5, 0.02, stop, {"h": kind})
    types = KINDS[kind]
    first = first if first in types else types[0]
    second = next(t for t in types if t is not first)
    one, other = (AgentKey(t.value, Host("h")) for t in (first, second))
    at = warm_until(world) + start * interval
    if crash:  # gone for ``length`` intervals, then restarted: no report, queue let go
        world.crashed[one] = [(at, at + length * interval)]
        world.arrivals[one] = [
            t for t in world.arrivals[one] if not at <= t < at + length * interval
        ]
    else:  # paused for up to one interval: no report, no answer, queue held
        world.down[one] = [(at, at + min(1.0, length) * interval)]
        world.arrivals[one] = paused(world.arrivals[one], at, min(1.0, length) * interval, interval)
    begin, span = at + pause_at * interval, pause * interval
    world.down[other] = [(begin, begin + span)]
    world.arrivals[other] = paused(world.arrivals[other], begin, span, interval)
    run = drive(world, stop)
    assert not run.verdicts, run.verdicts


# -- the brake and the proof -------------------------------------------------------------------

CONDITIONS = (
    "disconnected",
    "lagging",
    "lag",
    "listening",
    "no control answers",
    "probe error",
    "own queue answers",
)


@QUICK
@given(
    seeds,
    st.sampled_from([5.0, 10.0, 30.0]),
    st.floats(0.0, 0.05),
    st.sampled_from(CONFIRMABLE),
    st.sampled_from(CONDITIONS),
    st.floats(0.0, 1.0),
    st.data(),
)
def test_no_node_death_under_a_brake_or_without_proof(
    seed: int,
    interval: float,
    jitter: float,
    kind: str,
    condition: str,
    when: float,
    data: st.DataObject,
) -> None:
    """The same node death is declared on a clean bus, and never: while the bus is down,
    lagging (flag or measured lag beyond ``lag_limit``) or within ``agent_down_time`` of
    ``listening_since``; when no control answers or the probe fails on our side; when one of
    the host's own queues answers (a slow node, not a dead one)."""
    victim = Host("victim")

    def scenario() -> World:
        rnd = random.Random(seed)
        world = healthy_cloud(rnd, interval, 4.0, jitter, 20 * interval, {"victim": kind})
        kill(world, victim, warm_until(world) + when * interval)
        return world

    clean = drive(scenario(), 20 * interval)
    assert [h for h, _ in clean.verdicts] == [victim]

    world = scenario()
    died = world.dead[victim]
    limit = world.policy.lag_limit
    listen = died - data.draw(st.floats(0.0, 0.5)) * world.down_time
    lag = ConsumerLag(messages=100, seconds=data.draw(st.floats(limit + 0.01, 10 * limit)))
    late: dict[str, BusState] = {
        "disconnected": BusState(connected=False),
        "lagging": BusState(connected=True, listening_since=0.0, lagging=True),
        "lag": BusState(connected=True, listening_since=0.0, lag=lag),
        "listening": BusState(connected=True, listening_since=listen),
    }
    if condition in late:
        after = listen if condition == "listening" else died
        world.bus = lambda now: late[condition] if now >= after else BusState(True, 0.0)
    elif condition == "no control answers":
        world.controls_answer = False
    elif condition == "probe error":
        world.probe_error = "our probe connection is down"
    else:  # mute, not dead: some of its agents still answer
        del world.dead[victim]
        queues = [k for k in world.keys() if k.host == victim and queue_of(*k) is not None]
        alive = data.draw(st.lists(st.sampled_from(queues), min_size=1, unique=True))
        world.down = {k: [(died, math.inf)] for k in queues if k not in alive}
    run = drive(world, 20 * interval)
    if condition == "listening":
        assert all(at >= listen + world.down_time for _, at in run.verdicts), run.verdicts
    elif condition == "own queue answers":
        # SLOW for the rest of this silence, even once the agents that answered are past
        # agent_down_time and only the unanswering ones are left to probe
        assert not run.verdicts, run.verdicts
        assert (victim, HostState.SLOW) in run.seen
    else:
        assert not run.verdicts, (condition, run.verdicts)


@QUICK
@given(
    seeds,
    st.sampled_from([2.5, 10.0, 30.0]),
    st.integers(min_value=3, max_value=12),
    st.integers(min_value=0, max_value=3),
    st.floats(0.0, 1.0),
)
def test_many_hosts_quiet_together_are_never_node_deaths(
    seed: int, interval: float, others: int, extra: int, when: float
) -> None:
    """More than ``max(quiet_hosts, quiet_fraction * hosts)`` hosts fall silent together
    (a broker partition, a slow neutron-server): no DEAD, the brake names a disruption."""
    rnd = random.Random(seed)
    stop = 20 * interval
    names = {f"n{i}": rnd.choice(sorted(KINDS)) for i in range(others)}
    world = healthy_cloud(rnd, interval, 3.0, 0.05, stop, names)
    policy = world.policy
    limit = max(policy.quiet_hosts, int(policy.quiet_fraction * len(world.hosts)))
    silent = [Host(n) for n in sorted(names)][: min(others, limit + 1 + extra)]
    if len(silent) <= limit:
        return  # too few hosts to exceed the limit
    phase = rnd.uniform(0.0, interval)
    for key in world.keys():
        if key.host in silent:  # one rhythm for all: they fall silent in the same tick
            world.arrivals[key] = periodic(rnd, interval, 0.02, stop, phase=phase)
    died = warm_until(world) + when * interval
    for host in silent:
        kill(world, host, died)
    run = drive(world, stop)
    assert not run.verdicts
    assert any("went quiet" in b for b in run.brakes)


@QUICK
@given(
    seeds,
    intervals,
    st.floats(3.0, 4.0),
    jitters,
    st.sampled_from(CONFIRMABLE),
    st.floats(0.0, 1.0),
)
def test_a_dead_node_is_declared_within_its_rhythm_a_tick_and_a_probe(
    seed: int, interval: float, ratio: float, jitter: float, kind: str, when: float
) -> None:
    """A node whose agents consume queues dies among healthy ones: DEAD by the latest of
    its agents' ``last + multiple * interval + margin * deviation`` (their learned rhythm),
    plus two ticks (suspicion, conclusion) and the probe's timeout."""
    rnd = random.Random(seed)
    stop = 25 * interval
    world = healthy_cloud(rnd, interval, ratio, jitter, stop, {"victim": kind})
    victim = Host("victim")
    kill(world, victim, warm_until(world) + when * interval)
    policy = world.policy
    lasts, dues = [], []
    for key in world.keys():
        if key.host == victim:
            rhythm = Rhythm(world.arrivals[key][0])
            for t in world.arrivals[key][1:]:
                rhythm.arrive(t)
            lasts.append(rhythm.last)
            dues.append(
                rhythm.last
                + suspect_after(
                    rhythm,
                    multiple=policy.suspect_multiple,
                    margin=policy.jitter_margin,
                    floor=policy.suspect_floor,
                    ceiling=policy.agent_down_time,
                )
            )
    bound = max(dues) + 2 * TICK + policy.probe_timeout
    assume(bound < min(lasts) + policy.agent_down_time - TICK)  # else today's rule decides
    assume(bound < world.dead[victim] + HEARTBEAT - TICK)  # else its consumers are gone
    run = drive(world, stop)
    assert [h for h, _ in run.verdicts] == [victim]
    assert run.verdicts[0][1] <= bound + 1e-9, (run.verdicts, bound, lasts)


# -- rhythm and suspicion --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 200.0), max_size=20),
    st.floats(1.0, 3.0),
    st.floats(0.0, 6.0),
    st.floats(0.0, 5.0),
    st.floats(1.0, 300.0),
)
def test_suspicion_never_comes_after_agent_down_time(
    gaps: list[float], multiple: float, margin: float, floor: float, ceiling: float
) -> None:
    rhythm = Rhythm(0.0)
    t = 0.0
    for gap in gaps:
        t += gap
        rhythm.arrive(t)
        wait = suspect_after(rhythm, multiple=multiple, margin=margin, floor=floor, ceiling=ceiling)
        assert min(floor, ceiling) <= wait <= ceiling


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.5, 300.0),
    st.floats(0.0, 1e6),
    st.integers(min_value=MIN_SAMPLES, max_value=40),
    st.floats(1.0, 3.0),
    st.floats(0.0, 6.0),
)
def test_a_periodic_agent_is_learned_exactly_and_not_suspect_early(
    interval: float, start: float, gaps: int, multiple: float, margin: float
) -> None:
    """After MIN_SAMPLES gaps of a constant interval the estimate is within 1 % of it, and
    the agent is not suspect before ``multiple * interval`` of silence."""
    rhythm = Rhythm(start)
    for k in range(1, gaps + 1):
        rhythm.arrive(start + k * interval)
        if k >= MIN_SAMPLES:
            assert rhythm.learned
            assert abs(rhythm.interval - interval) <= 0.01 * interval
    wait = suspect_after(rhythm, multiple=multiple, margin=margin, floor=1.0, ceiling=1e9)
    assert wait >= multiple * interval * (1 - 1e-9)


@QUICK
@given(seeds, intervals, st.sampled_from(sorted(KINDS)), st.floats(0.0, 1.0))
def test_a_periodic_host_is_not_suspect_before_its_multiple(
    seed: int, interval: float, kind: str, when: float
) -> None:
    """Exactly periodic agents fall silent: their host changes state no sooner than
    ``suspect_multiple`` intervals after their last report, and no later than
    ``agent_down_time`` (plus a tick)."""
    rnd = random.Random(seed)
    stop = 20 * interval
    world = healthy_cloud(rnd, interval, 3.0, 0.0, stop, {"h": kind})
    stopped = warm_until(world) + when * interval
    for key in world.keys():
        if key.host == Host("h"):
            world.arrivals[key] = [t for t in world.arrivals[key] if t < stopped]
    last = min(world.arrivals[k][-1] for k in world.keys() if k.host == Host("h"))
    run = drive(world, stop)
    policy = world.policy
    first = run.first_not_ok[Host("h")]
    assert first >= last + policy.suspect_multiple * interval * (1 - 1e-9)
    assert first <= last + policy.agent_down_time + TICK


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1.0, 300.0),
    st.lists(st.floats(-0.1, 0.1), min_size=MIN_SAMPLES, max_size=30),
    st.floats(0.0, 10.0),
)
def test_one_outlier_moves_the_learned_interval_a_bounded_amount(
    interval: float, jitter: list[float], outlier: float
) -> None:
    """A learned rhythm, then one gap of any length (a GC pause, a lost report, a burst):
    the interval moves by at most GAIN x max(BURST_FRACTION x interval, 10 % of it plus
    1.1 x OUTLIER_CLIP deviations), never by the gap itself."""
    rhythm = Rhythm(0.0)
    t = 0.0
    for j in jitter:
        t += interval * (1 + j)
        rhythm.arrive(t)
    before, deviation = rhythm.interval, rhythm.deviation
    rhythm.arrive(t + outlier * interval)
    bound = GAIN * max(BURST_FRACTION * before, 0.1 * before + 1.1 * OUTLIER_CLIP * deviation)
    assert abs(rhythm.interval - before) <= bound * (1 + 1e-9)
    assert rhythm.interval <= before * 1.1 + OUTLIER_CLIP * deviation
