"""The hostile corpus through the codec and the liveness model, on a virtual clock (fast).

Twenty thousand hostile deliveries over ten virtual minutes, interleaved with the real
heartbeats the simulator's agents send (every 30 s each, byte for byte oslo.messaging's
shape); one real L3 agent is killed half way. Asserted: nothing raises, every hostile case
is rejected under a reason (forged heartbeats are accepted but kept bounded and silent), no
rejection quotes a value, no live agent is ever declared dead, the killed one is declared
dead one agent_down_time after its last heartbeat, the unknown records never exceed the cap.
"""

from __future__ import annotations

import collections
import tracemalloc
from typing import Any

from rpcdaemon.adapters.codec import Rejection, decode, heartbeat_from
from rpcdaemon.core.ids import AgentType, Host, Liveness
from rpcdaemon.core.liveness import AgentKey, LivenessModel, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.sim import wire
from rpcdaemon.sim.scenario import build_cloud
from rpcdaemon.testing import listening
from tests.hostile.corpus import ACCEPTED, SECRET, hostile

DOWN = 75.0
REPORT_INTERVAL = 30.0
DURATION = 600.0
KILL_AT = 300.0
CASES = 20_000
POLICY = Policy(agent_down_time=DOWN)
TYPES = (AgentType.L3.value, AgentType.DHCP.value)


def real_agents() -> list[dict[str, Any]]:
    cloud = build_cloud(l3_agents=6, dhcp_agents=4, routers=12, networks=8, seed=3)
    return [dict(a) for a in cloud.agents()]


def test_the_corpus_never_breaks_the_codec_or_the_model(seed: int) -> None:
    agents = real_agents()
    keys = {AgentKey(str(a["agent_type"]), Host(str(a["host"]))) for a in agents}
    victim = next(a for a in agents if a["agent_type"] == AgentType.L3.value)
    victim_key = AgentKey(str(victim["agent_type"]), Host(str(victim["host"])))
    model = LivenessModel()
    model.set_known(keys)
    bus = listening(since=0.0)
    cases = list(hostile(seed, CASES))
    by_category = collections.Counter(c.category for c in cases)
    outcome: collections.Counter[tuple[str, str]] = collections.Counter()
    transitions: list[tuple[float, Transition]] = []
    last_report: dict[AgentKey, float] = {}
    peak_unknown = 0
    newcomers = 0
    tracemalloc.start()
    step = DURATION / len(cases)
    next_tick = 0.0
    due = {i: (i * REPORT_INTERVAL / len(agents)) for i in range(len(agents))}

    def deliver(body: bytes, now: float) -> Rejection | None:
        result = decode(
            body,
            content_type="application/json",
            content_encoding="utf-8",
            exchange="neutron",
            routing_key="q-reports-plugin",
            properties={},
            received_at=now,
        )
        if isinstance(result, Rejection):
            return result
        heartbeat = heartbeat_from(result, received_wall=1_800_000_000.0 + now)
        if heartbeat is not None:
            model.observe(heartbeat, policy=POLICY)
        return None

    for index, case in enumerate(cases):
        now = index * step
        for i, agent in enumerate(agents):  # the real agents report on time
            if due[i] <= now and not (agent is victim and now >= KILL_AT):
                state = wire.agent_state_of(agent)
                message = wire.report_state(state, now=1_800_000_000.0 + now, reply_q="r")
                assert deliver(wire.envelope(message).encode(), now) is None
                last_report[AgentKey(str(agent["agent_type"]), Host(str(agent["host"])))] = now
                due[i] += REPORT_INTERVAL
        rejection = deliver(case.body, now)
        if rejection is not None:
            assert SECRET not in rejection.detail, (seed, case.category, rejection)
            assert rejection.detail.isprintable(), (seed, case.category, rejection)
        outcome[(case.category, "accepted" if rejection is None else "rejected")] += 1
        peak_unknown = max(peak_unknown, model.unknown_count)
        assert model.unknown_count <= model.unknown_limit
        if now >= next_tick:
            next_tick = now + 1.0
            newcomers += model.take_newcomers()
            for agent_type in TYPES:
                expected = [k for k in keys if k.agent_type == agent_type]
                for change in model.evaluate(
                    now, POLICY, bus, agent_type=agent_type, expected=expected
                ):
                    transitions.append((now, change))
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    newcomers += model.take_newcomers()

    for category, count in by_category.items():
        wanted = "accepted" if category in ACCEPTED else "rejected"
        assert outcome[(category, wanted)] == count, (seed, category, outcome)
    assert {change.key for _, change in transitions} <= keys, "an unknown agent was reported"
    dead = [(at, c.key) for at, c in transitions if c.new is Liveness.DEAD]
    assert [key for _, key in dead] == [victim_key], (seed, dead)
    declared_at = dead[0][0]
    assert last_report[victim_key] + DOWN < declared_at <= last_report[victim_key] + DOWN + 1.5
    assert newcomers == by_category["forged"]  # each forged host is new once
    assert peak_unknown <= model.unknown_limit
    assert peak_bytes < 64 * 1024 * 1024, peak_bytes
    print(
        f"\nHOSTILE-MEASURE model seed={seed} cases={len(cases)} "
        f"categories={dict(sorted(by_category.items()))} crashes=0 "
        f"peak_unknown={peak_unknown} limit={model.unknown_limit} "
        f"peak_traced_MiB={peak_bytes / 2**20:.1f}"
    )


def test_a_flood_of_43000_forged_hosts_is_capped_and_silent(seed: int) -> None:
    """The issue's numbers: 43,000 unique forged hosts, here within 43 virtual seconds."""
    agents = real_agents()
    keys = {AgentKey(str(a["agent_type"]), Host(str(a["host"]))) for a in agents}
    model = LivenessModel()
    model.set_known(keys)
    bus = listening(since=0.0)
    transitions: list[Transition] = []
    for i in range(43_000):
        now = 100.0 + i / 1000
        if i % 1000 == 0:  # the real agents keep reporting, and the reactor keeps ticking
            for agent in agents:
                message = wire.report_state(wire.agent_state_of(agent), now=now, reply_q="r")
                decoded = decode(
                    wire.envelope(message).encode(),
                    content_type=None,
                    content_encoding=None,
                    exchange="neutron",
                    routing_key="q-reports-plugin",
                    properties={},
                    received_at=now,
                )
                assert not isinstance(decoded, Rejection)
                heartbeat = heartbeat_from(decoded, received_wall=now)
                assert heartbeat is not None
                model.observe(heartbeat, policy=POLICY)
            transitions.extend(model.evaluate(now, POLICY, bus, expected=keys))
        state = {"host": f"forged-{seed}-{i}", "agent_type": TYPES[i % 2], "configurations": {}}
        message = wire.report_state(state, now=now, reply_q="r")
        decoded = decode(
            wire.envelope(message).encode(),
            content_type=None,
            content_encoding=None,
            exchange="neutron",
            routing_key="q-reports-plugin",
            properties={},
            received_at=now,
        )
        assert not isinstance(decoded, Rejection)
        heartbeat = heartbeat_from(decoded, received_wall=now)
        assert heartbeat is not None
        assert model.observe(heartbeat, policy=POLICY) is None
        assert model.unknown_count <= model.unknown_limit
    assert model.unknown_count == model.unknown_limit == 1024 + len(keys)
    assert len(model) == model.unknown_limit + len(keys)
    assert {t.key for t in transitions} == keys  # each real agent's first "up", nothing else
    assert all(t.new is Liveness.ALIVE for t in transitions)
    assert model.take_newcomers() == 43_000
