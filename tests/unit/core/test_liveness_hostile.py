"""Liveness under hostile input: agents Neutron does not know are bounded, silent and
expiring; a lagging consumer declares nobody dead; NaN can never reach the counts."""

from __future__ import annotations

import pytest

from rpcdaemon.core.events import ConsumerLag
from rpcdaemon.core.ids import AgentType, Host, Liveness
from rpcdaemon.core.liveness import (
    AgentKey,
    AgentRecord,
    BusState,
    LivenessModel,
    judge,
    lag_limit,
)
from rpcdaemon.core.policy import Policy
from rpcdaemon.testing import listening, make_agent, make_heartbeat, make_view

ALIVE, DEAD, UNKNOWN = Liveness.ALIVE, Liveness.DEAD, Liveness.UNKNOWN
DOWN = 75.0
POLICY = Policy(agent_down_time=DOWN)
L3 = AgentType.L3.value
REAL = AgentKey(L3, Host("net1"))


def test_unknown_agents_produce_no_transitions_and_no_skew_warnings() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    model.observe(make_heartbeat(host="net1", received_at=1.0), policy=POLICY)
    for i in range(100):
        skew = model.observe(
            make_heartbeat(host=f"forged-{i}", received_at=1.0, agent_time="1999-01-01T00:00:00"),
            policy=POLICY,
        )
        assert skew is None
    changes = model.evaluate(2.0, POLICY, listening(0.0))
    assert [t.key for t in changes] == [REAL]
    assert model.unknown_count == 100
    # silence: the real one goes DEAD, the forged ones just disappear
    changes = model.evaluate(200.0, POLICY, listening(0.0))
    assert [(t.key, t.new) for t in changes] == [(REAL, DEAD)]
    assert model.unknown_count == 0


def test_unknown_records_expire_after_agent_down_time_of_silence() -> None:
    model = LivenessModel()
    model.observe(make_heartbeat(host="x", received_at=10.0), policy=POLICY)
    model.evaluate(10.0 + DOWN, POLICY, listening(0.0))
    assert model.unknown_count == 1  # exactly agent_down_time: still kept
    model.evaluate(10.0 + DOWN + 0.1, POLICY, listening(0.0))
    assert model.unknown_count == 0 and model.get(AgentKey(L3, Host("x"))) is None


def test_unknown_records_are_capped_least_recently_heard_first() -> None:
    model = LivenessModel(unknown_cap=10, unknown_per_known=2)
    model.set_known([REAL, AgentKey(L3, Host("net2"))])
    assert model.unknown_limit == 14
    for i in range(1000):
        model.observe(make_heartbeat(host=f"forged-{i}", received_at=float(i) / 100), policy=POLICY)
        assert model.unknown_count <= 14
    assert model.unknown_count == 14
    kept = {key.host for key in model.snapshot()}
    assert kept == {Host(f"forged-{i}") for i in range(986, 1000)}
    assert len(model) == 14


def test_newcomers_count_first_heard_unknown_keys_since_the_last_call() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    assert model.take_newcomers() == 0
    model.observe(make_heartbeat(host="net1", received_at=1.0), policy=POLICY)
    assert model.take_newcomers() == 0  # known: not a newcomer
    model.observe(make_heartbeat(host="net9", received_at=1.0), policy=POLICY)
    model.observe(make_heartbeat(host="net9", received_at=2.0), policy=POLICY)
    model.observe(make_heartbeat(host="net8", received_at=2.0), policy=POLICY)
    assert model.take_newcomers() == 2
    assert model.take_newcomers() == 0
    model.observe(make_heartbeat(host="net9", received_at=3.0), policy=POLICY)
    assert model.take_newcomers() == 0  # still held: not new


def test_a_replacement_node_once_known_is_judged_with_its_record() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    new = AgentKey(L3, Host("net9"))
    model.observe(make_heartbeat(host="net9", received_at=100.0), policy=POLICY)
    assert model.evaluate(101.0, POLICY, listening(0.0), agent_type=L3) == []
    model.set_known([REAL, new])  # the reactor's fresh snapshot shows it
    changes = model.evaluate(102.0, POLICY, listening(0.0), agent_type=L3)
    assert (new, UNKNOWN, ALIVE) in [(t.key, t.old, t.new) for t in changes]
    assert model.unknown_count == 0


def test_expected_keys_count_as_known() -> None:
    model = LivenessModel()
    model.observe(make_heartbeat(host="net1", received_at=100.0), policy=POLICY)
    changes = model.evaluate(101.0, POLICY, listening(0.0), expected=[REAL])
    assert [(t.key, t.new) for t in changes] == [(REAL, ALIVE)]
    assert model.unknown_count == 0
    model.observe(make_heartbeat(host="net1", received_at=102.0), policy=POLICY)
    assert model.unknown_count == 0


def test_an_agent_no_longer_known_becomes_a_silent_expiring_record() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    model.observe(make_heartbeat(host="net1", received_at=100.0), policy=POLICY)
    model.evaluate(101.0, POLICY, listening(0.0))
    model.set_known([])  # deleted from Neutron
    assert model.unknown_count == 1
    assert model.evaluate(300.0, POLICY, listening(0.0)) == []
    assert model.unknown_count == 0


def test_verdicts_see_records_of_agents_in_the_view_even_before_set_known() -> None:
    model = LivenessModel()
    model.observe(make_heartbeat(host="net1", received_at=100.0), policy=POLICY)
    view = make_view(agents=[make_agent("a", host="net1", alive=False)])
    assert model.verdicts(view, 150.0, POLICY, listening(0.0)) == {"a": ALIVE}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -5, True, "7"])
def test_counts_never_meet_nan_even_if_the_codec_were_bypassed(value: object) -> None:
    record = AgentRecord(
        key=REAL,
        last_seen=0.0,
        started_at=0.0,
        availability_zone=None,
        configurations={"networks": value, "routers": value},
    )
    assert record.reported_networks == 0 and record.reported_routers == 0


def test_records_keep_only_bounded_scalar_configurations() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    config = {f"k{i}": i for i in range(500)} | {"nested": {"a": [1] * 1000}, "s": "x" * 10_000}
    model.observe(make_heartbeat(received_at=1.0, configurations=config), policy=POLICY)
    record = model.get(REAL)
    assert record is not None
    assert len(record.configurations) <= 64
    assert "nested" not in record.configurations and "s" not in record.configurations


# --- consumer lag ----------------------------------------------------------------------

LIMIT = lag_limit(DOWN)


def test_lag_limit_is_a_quarter_of_agent_down_time() -> None:
    assert LIMIT == pytest.approx(18.75)


def test_no_death_while_our_consumer_lags_and_a_full_window_after_it_catches_up() -> None:
    stale = AgentRecord(key=REAL, last_seen=0.0, started_at=None, availability_zone=None)
    bus = listening(since=0.0)
    assert judge(stale, now=500.0, policy=POLICY, bus=bus).liveness is DEAD
    bus = bus.with_lag(ConsumerLag(5000, LIMIT + 1), 500.0, limit=LIMIT)
    assert bus.lagging and bus.listened_for(500.0) == 0.0
    verdict = judge(stale, now=500.0, policy=POLICY, bus=bus)
    assert verdict.liveness is UNKNOWN and "lags" in verdict.reason
    # still over half the limit: still lagging (hysteresis)
    bus = bus.with_lag(ConsumerLag(100, LIMIT / 2 + 1), 510.0, limit=LIMIT)
    assert bus.lagging
    bus = bus.with_lag(ConsumerLag(0, 0.0), 520.0, limit=LIMIT)
    assert not bus.lagging and bus.listening_since == 520.0
    assert judge(stale, now=520.0 + DOWN - 1, policy=POLICY, bus=bus).liveness is UNKNOWN
    assert judge(stale, now=520.0 + DOWN, policy=POLICY, bus=bus).liveness is DEAD


def test_small_lag_changes_nothing_and_fresh_heartbeats_stay_alive_while_lagging() -> None:
    bus = listening(since=0.0).with_lag(ConsumerLag(10, LIMIT), 100.0, limit=LIMIT)
    assert not bus.lagging and bus.listening_since == 0.0 and bus.lag == ConsumerLag(10, LIMIT)
    lagging = bus.with_lag(ConsumerLag(10, LIMIT + 5), 100.0, limit=LIMIT)
    fresh = AgentRecord(key=REAL, last_seen=99.0, started_at=None, availability_zone=None)
    assert judge(fresh, now=100.0, policy=POLICY, bus=lagging).liveness is ALIVE


def test_lag_while_disconnected_is_only_recorded() -> None:
    bus = BusState(connected=False).with_lag(ConsumerLag(1, 100.0), 5.0, limit=LIMIT)
    assert not bus.lagging and bus.lag == ConsumerLag(1, 100.0)


def test_overdue_is_empty_while_lagging() -> None:
    model = LivenessModel()
    model.set_known([REAL])
    model.observe(make_heartbeat(host="net1", received_at=1000.0), policy=POLICY)
    view = make_view(agents=[make_agent("a", host="net1")])
    bus = listening(since=0.0)
    assert model.overdue(view, 1050.0, POLICY, bus, agent_type=L3) == {"a"}
    lagging = bus.with_lag(ConsumerLag(1, LIMIT + 1), 1050.0, limit=LIMIT)
    assert model.overdue(view, 1050.0, POLICY, lagging, agent_type=L3) == frozenset()
