"""Issue 11: a liveness tick costs what changed, not what exists (counts, never times).

``LivenessModel.judged_total`` counts agents judged by ``evaluate``. With thousands of
agents, a tick re-judges exactly the agents heard since the last tick, those whose deadline
passed, and (on a bus change) those not ALIVE. An independent re-judgement of every agent
with :func:`judge` must agree with what the incremental model reported.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.ids import AgentType, Host, Liveness
from rpcdaemon.core.liveness import LivenessModel, judge
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.records import AgentKey
from rpcdaemon.testing import DISCONNECTED, listening, make_heartbeat

POLICY = Policy(agent_down_time=75.0)
AGENTS = 4_000
TYPES = (AgentType.L3.value, AgentType.DHCP.value)


def key(i: int) -> AgentKey:
    return AgentKey(TYPES[i % 2], Host(f"node-{i:05d}"))


def heartbeat(i: int, at: float) -> object:
    k = key(i)
    return make_heartbeat(host=k.host, agent_type=k.agent_type, received_at=at)


def tick(model: LivenessModel, now: float, bus: BusState, keys: list[AgentKey]) -> list:
    changes = []
    for agent_type in TYPES:
        expected = [k for k in keys if k.agent_type == agent_type]
        changes += model.evaluate(now, POLICY, bus, agent_type=agent_type, expected=expected)
    return changes


def steady_model() -> tuple[LivenessModel, list[AgentKey]]:
    """AGENTS agents, all heard at 70..99 s, judged once at 100 s (all ALIVE)."""
    model = LivenessModel()
    keys = [key(i) for i in range(AGENTS)]
    model.set_known(keys)
    for i in range(AGENTS):
        model.observe(heartbeat(i, 70.0 + i % 30), policy=POLICY)  # type: ignore[arg-type]
    first = tick(model, 100.0, listening(0.0), keys)
    assert len(first) == AGENTS and {c.new for c in first} == {Liveness.ALIVE}
    return model, keys


def test_a_steady_tick_judges_only_the_agents_heard_since_the_last() -> None:
    model, keys = steady_model()
    for second in range(1, 11):
        now = 100.0 + second
        heard = range((second - 1) * 133, second * 133)
        for i in heard:
            model.observe(heartbeat(i, now - 0.5), policy=POLICY)  # type: ignore[arg-type]
        before = model.judged_total
        assert tick(model, now, listening(0.0), keys) == []
        assert model.judged_total - before == len(heard)


def test_a_deadline_passing_judges_that_agent_alone() -> None:
    model, keys = steady_model()
    # agents heard at 70.0 (i % 30 == 0) are due at 145.0; everyone else is refreshed at 140
    for i in range(AGENTS):
        if i % 30:
            model.observe(heartbeat(i, 140.0), policy=POLICY)  # type: ignore[arg-type]
    tick(model, 140.5, listening(0.0), keys)
    before = model.judged_total
    changes = tick(model, 145.5, listening(0.0), keys)
    silent = {key(i) for i in range(0, AGENTS, 30)}
    assert {c.key for c in changes} == silent
    assert {(c.old, c.new) for c in changes} == {(Liveness.ALIVE, Liveness.DEAD)}
    assert model.judged_total - before == len(silent)
    assert [c.key for c in changes] == sorted(c.key for c in changes)


def test_a_bus_change_rejudges_only_the_agents_not_alive() -> None:
    model, keys = steady_model()
    before = model.judged_total
    assert tick(model, 101.0, DISCONNECTED, keys) == []  # ALIVE agents stay ALIVE
    assert model.judged_total - before == 0
    never_heard = [AgentKey(TYPES[0], Host(f"ghost-{i}")) for i in range(10)]
    changes = tick(model, 102.0, DISCONNECTED, keys + never_heard)
    assert {c.key for c in changes} == set()  # UNKNOWN from UNKNOWN: nothing to say
    before = model.judged_total
    changes = tick(model, 200.0, listening(100.0), keys + never_heard)  # window over at 175
    assert {c.key for c in changes} >= set(never_heard)
    # every agent's deadline (<= 174) passed too: all judged once, none twice
    assert model.judged_total - before == AGENTS + len(never_heard)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["beat", "beat", "beat", "start", "tick", "tick", "bus", "know"]),
        st.integers(min_value=0, max_value=11),
        st.floats(min_value=0.0, max_value=40.0),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_incremental_judgement_agrees_with_judging_everyone(ops: list) -> None:
    model = LivenessModel()
    now, bus = 0.0, listening(0.0)
    known = [key(i) for i in range(8)]
    model.set_known(known)
    state: dict[AgentKey, Liveness] = {}
    rng = random.Random(len(ops))
    for op, agent, step in ops:
        if op in ("beat", "start"):
            hb = make_heartbeat(
                host=key(agent).host,
                agent_type=key(agent).agent_type,
                received_at=now,
                start_flag=op == "start",
            )
            model.observe(hb, policy=POLICY)
        elif op == "bus":
            bus = rng.choice([DISCONNECTED, listening(now), BusState(True, now - 100.0, True)])
        elif op == "know":
            known = [key(i) for i in range(12) if rng.random() < 0.7]
            model.set_known(known)
            state = {k: v for k, v in state.items() if k in known}
        else:
            now += step
            for change in tick(model, now, bus, known):
                assert state.get(change.key, Liveness.UNKNOWN) is change.old
                state[change.key] = change.new
            for k in known:
                expect = judge(model.get(k), now=now, policy=POLICY, bus=bus).liveness
                assert state.get(k, Liveness.UNKNOWN) is expect, k


def test_the_same_expected_tuple_is_taken_in_once_until_a_key_is_dropped() -> None:
    model = LivenessModel()
    keys = tuple(key(i) for i in range(0, 2_000, 2))  # L3 only
    model.evaluate(1.0, POLICY, listening(0.0), agent_type=TYPES[0], expected=keys)
    before = model.judged_total
    for second in range(2, 12):
        model.evaluate(float(second), POLICY, listening(0.0), agent_type=TYPES[0], expected=keys)
    assert model.judged_total == before  # nothing heard, nothing due: nothing judged
    model.set_known(keys[1:])  # Neutron no longer lists keys[0]: it is dropped
    changes = model.evaluate(200.0, POLICY, listening(0.0), agent_type=TYPES[0], expected=keys)
    assert keys[0] in {c.key for c in changes}  # read again: judged (DEAD) from UNKNOWN
    assert {c.new for c in changes} == {Liveness.DEAD}


def test_records_share_equal_counts_but_never_confuse_true_with_one() -> None:
    model = LivenessModel()
    keys = [key(i) for i in range(0, 6, 2)]  # three L3 agents
    model.set_known(keys)
    for k, routers in zip(keys, [1, True, 1], strict=True):
        hb = make_heartbeat(
            host=k.host,
            agent_type=k.agent_type,
            received_at=1.0,
            configurations={"routers": routers},
        )
        model.observe(hb, policy=POLICY)
    first, odd, third = (model.get(k) for k in keys)
    assert first is not None and odd is not None and third is not None
    assert first.configurations is third.configurations  # one mapping for equal counts
    assert (first.reported_routers, odd.reported_routers) == (1, 0)  # a boolean is no count
    assert first.key is keys[0]  # the record shares the known key (and its host string)
