"""Liveness: our receive clock, the listening window, the API's flag, grace and skew."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon.core.ids import AgentId, AgentType, Host, Liveness
from rpcdaemon.core.liveness import (
    AgentKey,
    BusState,
    LivenessModel,
    Transition,
    parse_agent_time,
)
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.testing import (
    DISCONNECTED,
    listening,
    make_agent,
    make_dhcp_agent,
    make_heartbeat,
    make_view,
)

ALIVE, DEAD, UNKNOWN = Liveness.ALIVE, Liveness.DEAD, Liveness.UNKNOWN
NOW = 1000.0
DOWN = 75.0
L3_NET1 = AgentKey(AgentType.L3.value, Host("net1"))

HEARTBEATS = {"fresh": NOW - 50.0, "stale": NOW - 100.0, "never": None}
BUSES = {
    "listening": listening(since=0.0),  # 1000 s: past the window
    "window": listening(since=NOW - 40.0),  # reconnected 40 s ago < 75 s
    "disconnected": DISCONNECTED,
}

# (heartbeat, bus, API alive, confirm_with_api) -> verdict. Written out, not computed.
MATRIX = [
    # a fresh heartbeat is proof of life, whatever the API or the bus says
    *[
        ("fresh", bus, api, confirm, ALIVE)
        for bus in BUSES
        for api in (True, False)
        for confirm in (True, False)
    ],
    # past the window: our clock says dead
    ("stale", "listening", False, True, DEAD),
    ("stale", "listening", False, False, DEAD),
    ("stale", "listening", True, True, UNKNOWN),  # the API disagrees: do not act
    ("stale", "listening", True, False, DEAD),  # confirmation switched off
    ("never", "listening", False, True, DEAD),
    ("never", "listening", False, False, DEAD),
    ("never", "listening", True, True, UNKNOWN),
    ("never", "listening", True, False, DEAD),
    # inside the window or disconnected: the API is the source, and never DEAD
    ("stale", "window", True, True, ALIVE),
    ("stale", "window", True, False, ALIVE),
    ("stale", "window", False, True, UNKNOWN),
    ("stale", "window", False, False, UNKNOWN),
    ("never", "window", True, True, ALIVE),
    ("never", "window", False, False, UNKNOWN),
    ("stale", "disconnected", True, True, ALIVE),
    ("stale", "disconnected", True, False, ALIVE),
    ("stale", "disconnected", False, True, UNKNOWN),
    ("stale", "disconnected", False, False, UNKNOWN),
    ("never", "disconnected", True, False, ALIVE),
    ("never", "disconnected", False, False, UNKNOWN),
]


@pytest.mark.parametrize(("heartbeat", "bus", "api_alive", "confirm", "expected"), MATRIX)
def test_verdict_matrix(
    heartbeat: str, bus: str, api_alive: bool, confirm: bool, expected: Liveness
) -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN, confirm_with_api=confirm)
    seen = HEARTBEATS[heartbeat]
    if seen is not None:
        model.observe(make_heartbeat(host="net1", received_at=seen), policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=api_alive)])
    verdicts = model.verdicts(view, NOW, policy, BUSES[bus])
    assert verdicts == {"a1": expected}


def test_heartbeat_exactly_agent_down_time_old_is_alive_and_a_bit_older_is_dead() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN)
    model.observe(make_heartbeat(received_at=NOW - DOWN), policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=False)])
    assert model.verdicts(view, NOW, policy, listening())["a1"] is ALIVE
    assert model.verdicts(view, NOW + 0.01, policy, listening())["a1"] is DEAD


def test_agents_are_joined_by_type_and_host_not_by_host_alone() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN)
    model.observe(make_heartbeat(host="net1", received_at=NOW - 1), policy=policy)  # L3 only
    view = make_view(
        agents=[
            make_agent("l3", host="net1", alive=False),
            make_dhcp_agent("dhcp", host="net1", alive=False),
        ]
    )
    assert model.verdicts(view, NOW, policy, listening()) == {"l3": ALIVE, "dhcp": DEAD}


def test_the_agents_own_time_never_makes_it_alive_or_dead() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN)
    hb = make_heartbeat(received_at=NOW - 1, agent_time="2001-01-01T00:00:00.000000")
    model.observe(hb, policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=False)])
    assert model.verdicts(view, NOW, policy, listening())["a1"] is ALIVE


def test_a_reconnect_reopens_the_window() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN)
    model.observe(make_heartbeat(received_at=100.0), policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=False)])
    assert model.verdicts(view, 300.0, policy, listening(since=0.0))["a1"] is DEAD
    reconnected = BusState(connected=True, listening_since=290.0)
    assert model.verdicts(view, 300.0, policy, reconnected)["a1"] is UNKNOWN
    assert model.verdicts(view, 364.0, policy, reconnected)["a1"] is UNKNOWN
    assert model.verdicts(view, 366.0, policy, reconnected)["a1"] is DEAD


def test_connected_but_not_listening_yet_is_the_window() -> None:
    model = LivenessModel()
    view = make_view(agents=[make_agent("a1", host="net1", alive=False)])
    bus = BusState(connected=True, listening_since=None)
    assert model.verdicts(view, NOW, Policy(), bus)["a1"] is UNKNOWN


def test_transitions_are_reported_once_per_change() -> None:
    model = LivenessModel()
    model.set_known([L3_NET1])
    policy = Policy(agent_down_time=DOWN)
    bus = listening(since=0.0)
    model.observe(make_heartbeat(received_at=100.0), policy=policy)
    first = model.evaluate(110.0, policy, bus)
    assert [(t.key, t.old, t.new) for t in first] == [(L3_NET1, UNKNOWN, ALIVE)]
    assert model.evaluate(120.0, policy, bus) == []
    went_down = model.evaluate(176.0, policy, bus)
    assert [(t.old, t.new) for t in went_down] == [(ALIVE, DEAD)]
    assert "no heartbeat for 76.0s" in went_down[0].reason
    assert model.evaluate(500.0, policy, bus) == []
    model.observe(make_heartbeat(received_at=501.0), policy=policy)
    assert [(t.old, t.new) for t in model.evaluate(502.0, policy, bus)] == [(DEAD, ALIVE)]


def test_evaluate_reports_unknown_on_disconnect_and_never_dead() -> None:
    model = LivenessModel()
    model.set_known([L3_NET1])
    policy = Policy(agent_down_time=DOWN)
    model.observe(make_heartbeat(received_at=100.0), policy=policy)
    model.evaluate(101.0, policy, listening())
    changes = model.evaluate(400.0, policy, DISCONNECTED)
    assert changes == [
        Transition(L3_NET1, ALIVE, UNKNOWN, "bus disconnected: not judging by our clock")
    ]


def test_evaluate_judges_expected_agents_never_heard_of() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN)
    key = AgentKey(AgentType.DHCP.value, Host("net7"))
    assert model.evaluate(50.0, policy, listening(), expected=[key]) == []
    changes = model.evaluate(80.0, policy, listening(), expected=[key])
    assert [(t.key, t.new) for t in changes] == [(key, DEAD)]


def test_evaluate_can_be_restricted_to_one_agent_type() -> None:
    model = LivenessModel()
    model.set_known(
        [AgentKey(AgentType.L3.value, Host("a")), AgentKey(AgentType.DHCP.value, Host("b"))]
    )
    policy = Policy(agent_down_time=DOWN)
    model.observe(make_heartbeat(host="a", received_at=1.0), policy=policy)
    model.observe(
        make_heartbeat(host="b", agent_type=AgentType.DHCP.value, received_at=1.0), policy=policy
    )
    changes = model.evaluate(2.0, policy, listening(), agent_type=AgentType.DHCP.value)
    assert [t.key.host for t in changes] == ["b"]
    assert [t.key.host for t in model.evaluate(2.0, policy, listening())] == ["a"]


def test_an_older_heartbeat_does_not_move_last_seen_back() -> None:
    model = LivenessModel()
    policy = Policy()
    model.observe(make_heartbeat(received_at=200.0), policy=policy)
    model.observe(make_heartbeat(received_at=150.0), policy=policy)
    record = model.get(L3_NET1)
    assert record is not None and record.last_seen == 200.0


def test_forget_drops_the_record() -> None:
    model = LivenessModel()
    model.observe(make_heartbeat(received_at=1.0), policy=Policy())
    model.forget(L3_NET1)
    assert model.get(L3_NET1) is None and len(model) == 0


def test_snapshot_is_a_copy() -> None:
    model = LivenessModel()
    model.observe(make_heartbeat(received_at=1.0), policy=Policy())
    snap = model.snapshot()
    model.forget(L3_NET1)
    assert L3_NET1 in snap


# --- start-up grace -----------------------------------------------------------------


def _dhcp_started(model: LivenessModel, *, networks: int, policy: Policy) -> None:
    hb = make_heartbeat(
        agent_type=AgentType.DHCP.value,
        received_at=100.0,
        start_flag=True,
        configurations={"networks": networks},
    )
    model.observe(hb, policy=policy)


def test_startup_grace_per_reported_network() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN, startup_grace_per_network=2.0)
    _dhcp_started(model, networks=30, policy=policy)  # grace 60 s: dead after 100+75+60
    view = make_view(agents=[make_dhcp_agent("d1", host="net1", alive=False)])
    assert model.verdicts(view, 234.0, policy, listening())["d1"] is ALIVE
    assert model.verdicts(view, 236.0, policy, listening())["d1"] is DEAD


def test_startup_grace_uses_the_views_bindings_when_larger() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN, startup_grace_per_network=2.0)
    _dhcp_started(model, networks=0, policy=policy)  # just started: reports 0 networks
    view = make_view(
        agents=[make_dhcp_agent("d1", host="net1", alive=False)],
        network_bindings={f"n{i}": ["d1"] for i in range(50)},  # grace 100 s
    )
    assert model.verdicts(view, 274.0, policy, listening())["d1"] is ALIVE
    assert model.verdicts(view, 276.0, policy, listening())["d1"] is DEAD


def test_no_grace_without_start_flag_and_grace_kept_by_later_reports() -> None:
    policy = Policy(agent_down_time=DOWN, startup_grace_per_network=2.0)
    view = make_view(
        agents=[make_dhcp_agent("d1", host="net1", alive=False)],
        network_bindings={f"n{i}": ["d1"] for i in range(30)},
    )
    plain = LivenessModel()
    plain.observe(
        make_heartbeat(
            agent_type=AgentType.DHCP.value, received_at=100.0, configurations={"networks": 30}
        ),
        policy=policy,
    )
    assert plain.verdicts(view, 176.0, policy, listening())["d1"] is DEAD
    started = LivenessModel()
    _dhcp_started(started, networks=30, policy=policy)
    started.observe(
        make_heartbeat(
            agent_type=AgentType.DHCP.value, received_at=110.0, configurations={"networks": 30}
        ),
        policy=policy,
    )
    assert started.verdicts(view, 230.0, policy, listening())["d1"] is ALIVE


# --- clock skew -----------------------------------------------------------------------


def test_skew_is_reported_once_until_it_recovers() -> None:
    model = LivenessModel()
    model.set_known([L3_NET1])
    policy = Policy(agent_down_time=DOWN)
    wall = 1_800_000_000.0
    behind = "2027-01-15T07:56:40"  # wall - 200 s
    assert parse_agent_time(behind) == wall - 200.0
    first = model.observe(
        make_heartbeat(received_at=1.0, received_wall=wall, agent_time=behind), policy=policy
    )
    assert first is not None and first.skewed and first.skew == pytest.approx(200.0)
    assert "+200.0s" in first.describe()
    again = make_heartbeat(received_at=2.0, received_wall=wall + 1, agent_time=behind)
    assert model.observe(again, policy=policy) is None
    recovered = model.observe(
        make_heartbeat(received_at=3.0, received_wall=wall + 2), policy=policy
    )
    assert recovered is not None and not recovered.skewed
    assert model.observe(make_heartbeat(received_at=4.0), policy=policy) is None


def test_skew_within_agent_down_time_is_not_reported() -> None:
    model = LivenessModel()
    hb = make_heartbeat(received_wall=1_800_000_000.0, agent_time="2027-01-15T08:00:50")
    assert model.observe(hb, policy=Policy(agent_down_time=DOWN)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-15T08:00:00.500000", 1_800_000_000.5),
        ("2027-01-15T08:00:00Z", 1_800_000_000.0),
        ("2027-01-15T10:00:00+02:00", 1_800_000_000.0),
        ("2027-01-15 08:00:00", 1_800_000_000.0),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_agent_time(text: str | None, expected: float | None) -> None:
    assert parse_agent_time(text) == expected


def test_unreadable_agent_time_is_no_skew_and_still_a_heartbeat() -> None:
    model = LivenessModel()
    assert model.observe(make_heartbeat(agent_time="garbage"), policy=Policy()) is None
    record = model.get(L3_NET1)
    assert record is not None and record.skew is None


# --- properties -------------------------------------------------------------------------


@given(
    beats=st.lists(st.floats(min_value=0, max_value=10_000), max_size=5),
    now=st.floats(min_value=0, max_value=20_000),
    since=st.floats(min_value=0, max_value=20_000),
    api_alive=st.booleans(),
    confirm=st.booleans(),
    down=st.floats(min_value=1, max_value=600),
)
def test_never_dead_while_disconnected_or_inside_the_window(
    beats: list[float], now: float, since: float, api_alive: bool, confirm: bool, down: float
) -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=down, confirm_with_api=confirm)
    for at in beats:
        model.observe(make_heartbeat(received_at=at), policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=api_alive)])
    assert model.verdicts(view, now, policy, DISCONNECTED)["a1"] is not DEAD
    if now - since < down:
        window = BusState(connected=True, listening_since=since)
        assert model.verdicts(view, now, policy, window)["a1"] is not DEAD


@given(
    last=st.floats(min_value=0, max_value=10_000),
    age=st.floats(min_value=0, max_value=1_000),
    api_alive=st.booleans(),
)
def test_dead_needs_the_api_to_agree_when_confirming(
    last: float, age: float, api_alive: bool
) -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN, confirm_with_api=True)
    model.observe(make_heartbeat(received_at=last), policy=policy)
    view = make_view(agents=[make_agent("a1", host="net1", alive=api_alive)])
    verdict = model.verdicts(view, last + age, policy, listening(since=-1e6))["a1"]
    if age <= DOWN:
        assert verdict is ALIVE
    else:
        assert verdict is (UNKNOWN if api_alive else DEAD)


# -- overdue: agents that stopped with the one just declared dead ------------------------


def _model_with(last_seen: dict[str, float]) -> tuple[LivenessModel, ClusterView]:
    model = LivenessModel()
    for host, at in last_seen.items():
        model.observe(make_heartbeat(host=host, received_at=at), policy=Policy(DOWN))
    view = make_view(agents=[make_agent(h, host=h) for h in last_seen])
    return model, view


def test_overdue_lists_agents_past_half_their_deadline_but_not_yet_dead() -> None:
    policy = Policy(agent_down_time=DOWN)
    model, view = _model_with(
        {
            "fresh": NOW - 10.0,  # heard recently
            "late": NOW - 50.0,  # > DOWN/2 without a word: stopped with the others?
            "dead": NOW - 100.0,  # past the deadline: DEAD, not "overdue"
        }
    )
    overdue = model.overdue(view, NOW, policy, listening(since=0.0), agent_type=AgentType.L3.value)
    assert overdue == frozenset({AgentId("late")})


@pytest.mark.parametrize("bus", [DISCONNECTED, listening(since=NOW - 40.0)], ids=["down", "window"])
def test_overdue_is_empty_while_we_cannot_judge(bus: BusState) -> None:
    model, view = _model_with({"late": NOW - 50.0})
    assert model.overdue(view, NOW, Policy(DOWN), bus, agent_type=AgentType.L3.value) == frozenset()


def test_overdue_respects_startup_grace_and_agent_type() -> None:
    model = LivenessModel()
    policy = Policy(agent_down_time=DOWN, startup_grace_per_network=2.0)
    model.observe(
        make_heartbeat(
            host="busy",
            agent_type=AgentType.DHCP.value,
            received_at=NOW - 50.0,
            start_flag=True,
            configurations={"networks": 100},
        ),
        policy=policy,
    )
    view = make_view(
        agents=[make_dhcp_agent("busy", host="busy")],
        network_bindings={f"n{i}": ["busy"] for i in range(100)},  # 200 s of grace
    )
    bus = listening(since=0.0)
    assert model.overdue(view, NOW, policy, bus, agent_type=AgentType.DHCP.value) == frozenset()
    assert model.overdue(view, NOW, policy, bus, agent_type=AgentType.L3.value) == frozenset()
