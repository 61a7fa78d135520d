"""Hostile input at the codec: numbers validated where they enter, bounded shapes, no value in
a rejection's detail. Hypothesis drives the properties; the examples pin each rule."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.adapters.codec import (
    MAX_COUNT,
    MAX_DEPTH,
    MAX_INT,
    MAX_NAME,
    Rejection,
    decode,
    heartbeat_from,
)
from rpcdaemon.core.events import BusMessage, Heartbeat
from rpcdaemon.core.liveness import AgentKey, LivenessModel
from rpcdaemon.core.policy import Policy
from rpcdaemon.testing import listening, make_agent, make_view

SECRET = "hunter2-CANARY"
COMMON: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "exchange": "neutron",
    "routing_key": "q-reports-plugin",
    "properties": {},
    "received_at": 10.0,
}


def state(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "binary": "neutron-dhcp-agent",
        "topic": "dhcp_agent",
        "agent_type": "DHCP agent",
        "availability_zone": "nova",
        "configurations": {"networks": 3, "subnets": 3, "ports": 9},
        "host": "net1",
    }
    base.update(overrides)
    return base


def report(agent_state: Any, *, time: Any = "2027-01-15T08:00:00") -> dict[str, Any]:
    args: dict[str, Any] = {"agent_state": {"agent_state": agent_state}}
    if time is not None:
        args["time"] = time
    inner = {"method": "report_state", "args": args, "version": "1.4", "_unique_id": "u"}
    return {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}


def decode_text(text: str) -> BusMessage | Rejection:
    return decode(text.encode("utf-8", "surrogatepass"), **COMMON)


def decode_report(agent_state: Any, **kwargs: Any) -> BusMessage | Rejection:
    return decode_text(json.dumps(report(agent_state, **kwargs)))


# --- numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
@pytest.mark.parametrize("where", ["networks", "subnets", "unrelated"])
def test_non_finite_numbers_are_refused_wherever_they_are(token: str, where: str) -> None:
    body = json.dumps(report(state(configurations={where: 424242}))).replace("424242", token)
    result = decode_text(body)
    assert isinstance(result, Rejection) and result.reason == "bad_number"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "1e999"])
def test_non_finite_numbers_are_refused_outside_heartbeats_too(token: str) -> None:
    result = decode_text('{"event_type": "network.create.end", "payload": {"x": ' + token + "}}")
    assert isinstance(result, Rejection) and result.reason == "bad_number"


@pytest.mark.parametrize(
    "count", [-1, MAX_COUNT + 1, 2**70, 3.5, 0.0, True, "12", None, [1], {"n": 1}]
)
def test_a_resource_count_must_be_an_integer_in_range(count: Any) -> None:
    result = decode_report(state(configurations={"networks": count}))
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    assert "configurations.networks" in result.detail


def test_huge_integers_anywhere_in_the_state_are_refused() -> None:
    result = decode_report(state(uuid=MAX_INT + 1))
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    assert isinstance(decode_report(state(uuid=MAX_INT)), BusMessage)


def test_a_valid_heartbeat_keeps_its_counts() -> None:
    message = decode_report(state())
    assert isinstance(message, BusMessage)
    heartbeat = heartbeat_from(message, received_wall=0.0)
    assert heartbeat is not None and heartbeat.configurations["networks"] == 3


# --- shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_001, 100_000])
def test_json_nested_past_the_stack_is_malformed_not_a_crash(depth: int) -> None:
    result = decode_text("[" * depth + "]" * depth)
    assert isinstance(result, Rejection) and result.reason == "not_json"
    result = decode_text('{"a": ' * depth + "1" + "}" * depth)
    assert isinstance(result, Rejection) and result.reason == "not_json"


def test_json_nested_deeper_than_the_limit_is_refused() -> None:
    deep = '{"method": "m", "args": ' + '{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH + "}"
    result = decode_text(deep)
    assert isinstance(result, Rejection) and result.reason == "too_deep"
    shallow = '{"method": "m", "args": ' + '{"a": ' * 20 + "1" + "}" * 20 + "}"
    assert isinstance(decode_text(shallow), BusMessage)


WRONG: list[tuple[str, Any]] = [
    ("host", [SECRET]),
    ("host", {"password": SECRET}),
    ("host", 5),
    ("host", ""),
    ("host", "h" * (MAX_NAME + 1)),
    ("agent_type", None),
    ("agent_type", 1.5),
    ("binary", [SECRET]),
    ("topic", {"p": SECRET}),
    ("availability_zone", 7),
    ("start_flag", "true"),
    ("start_flag", 1),
    ("configurations", [SECRET]),
    ("configurations", SECRET),
]


@pytest.mark.parametrize(
    ("field", "value"), WRONG, ids=[f"{f}-{i}" for i, (f, _) in enumerate(WRONG)]
)
def test_every_field_of_the_wrong_type_or_size_is_refused_without_quoting_it(
    field: str, value: Any
) -> None:
    result = decode_report(state(**{field: value}))
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    assert field in result.detail
    assert SECRET not in result.detail and "h" * 50 not in result.detail


@pytest.mark.parametrize("value", [[SECRET], 12, {"p": SECRET}, "t" * 65])
def test_the_agent_time_must_be_a_short_string(value: Any) -> None:
    result = decode_report(state(), time=value)
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    assert SECRET not in result.detail


@pytest.mark.parametrize(
    "name", ["net1\nnet2", "\x1b[31mred", "nul\x00", "tab\t", "\ud800x", "bell\x07", "\u2028"]
)
@pytest.mark.parametrize("field", ["host", "agent_type", "availability_zone", "binary"])
def test_control_characters_and_lone_surrogates_in_names_are_refused(name: str, field: str) -> None:
    result = decode_report(state(**{field: name}))
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    assert name not in result.detail


def test_rejection_details_never_quote_values() -> None:
    cases = [
        decode(SECRET.encode(), **COMMON),
        decode(b"\xff" + SECRET.encode(), **COMMON),
        decode(b"{}", **{**COMMON, "content_type": f"text/{SECRET}"}),
        decode(b"{}", **{**COMMON, "content_encoding": SECRET}),
        decode_text(json.dumps({"oslo.version": SECRET, "oslo.message": "{}"})),
        decode_text(json.dumps({"oslo.version": "2.0", "oslo.message": [SECRET]})),
        decode_text(json.dumps({"method": [SECRET]})),
        decode_text(json.dumps({"event_type": {"x": SECRET}})),
        decode_text(json.dumps({"method": "m", "args": [SECRET]})),
        decode_text(json.dumps([SECRET])),
    ]
    for result in cases:
        assert isinstance(result, Rejection)
        assert SECRET not in result.detail and "hunter2" not in result.detail, result


# --- properties ------------------------------------------------------------------------

hostile_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=300)
    | st.sampled_from(["\x00", "\ud800", "\n", "x" * 70_000, SECRET])
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = [
    "host",
    "agent_type",
    "binary",
    "topic",
    "availability_zone",
    "start_flag",
    "configurations",
]


def _numbers(value: Any) -> list[float | int]:
    out: list[float | int] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(item)
    return out


def _assert_safe(heartbeat: Heartbeat) -> None:
    for number in _numbers(heartbeat.configurations):
        assert math.isfinite(number) and abs(number) <= MAX_INT
    for name in (heartbeat.host, heartbeat.agent_type, heartbeat.binary, heartbeat.topic):
        assert name.isprintable() and len(name) <= MAX_NAME
    model = LivenessModel()
    key = AgentKey.of(heartbeat)
    model.set_known([key])
    policy = Policy(agent_down_time=75.0)
    model.observe(heartbeat, policy=policy)
    model.evaluate(500.0, policy, listening(0.0))
    record = model.get(key)
    assert record is not None and 0 <= record.reported_networks <= MAX_COUNT
    view = make_view(agents=[make_agent("a", agent_type=heartbeat.agent_type, host=heartbeat.host)])
    model.verdicts(view, 500.0, policy, listening(0.0))


@settings(max_examples=400, deadline=None)
@given(
    overrides=st.dictionaries(st.sampled_from(FIELD_NAMES), hostile_values, max_size=3),
    config=st.dictionaries(
        st.sampled_from(["networks", "routers", "ports", "agent_mode", "x"]),
        hostile_values,
        max_size=3,
    ),
    time=hostile_values,
)
def test_any_agent_state_is_refused_or_safe(
    overrides: dict[str, Any], config: dict[str, Any], time: Any
) -> None:
    agent_state = state(**overrides)
    if isinstance(agent_state.get("configurations"), dict):
        agent_state["configurations"] = {**agent_state["configurations"], **config}
    try:
        text = json.dumps(report(agent_state, time=time))  # allow_nan: NaN on the wire
    except (ValueError, RecursionError):
        return
    result = decode_text(text)
    if isinstance(result, Rejection):
        assert SECRET not in result.detail
        return
    heartbeat = heartbeat_from(result, received_wall=1_800_000_000.0)
    assert heartbeat is not None
    _assert_safe(heartbeat)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(), max_size=400))
def test_any_text_decodes_or_rejects(text: str) -> None:
    result = decode_text(text)
    assert isinstance(result, BusMessage | Rejection)
    if isinstance(result, BusMessage):
        assert all(math.isfinite(n) for n in _numbers(dict(result.body)))


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(min_value=0, max_value=50_000), opener=st.sampled_from(["[", '{"a":']))
def test_any_nesting_depth_decodes_or_rejects(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = '{"method": "m", "args": {"x": ' + opener * depth + "1" + closer * depth + "}}"
    result = decode_text(body)
    if depth + 3 > MAX_DEPTH:
        assert isinstance(result, Rejection) and result.reason in ("too_deep", "not_json")
    else:
        assert isinstance(result, BusMessage)
