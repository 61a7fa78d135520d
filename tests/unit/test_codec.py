"""The codec against every capture from a real neutron 29 bus, bare 1.0 messages, and every
malformed shape we could think of."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from rpcdaemon.adapters.codec import (
    MAX_BODY,
    CodecStats,
    RateLimitedLog,
    Rejection,
    decode,
    heartbeat_from,
    notification_from,
)
from rpcdaemon.core.events import BusMessage, MessageKind

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
CAPTURES = sorted(WIRE.glob("*.json"))
OSLO_CAPTURES = [p for p in CAPTURES if "oslo_message_decoded" in json.loads(p.read_text())]
KINDS = {
    "call": MessageKind.RPC_CALL,
    "cast": MessageKind.RPC_CAST,
    "notification": MessageKind.NOTIFICATION,
    "reply": MessageKind.REPLY,
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def decode_capture(cap: dict[str, Any]) -> BusMessage | Rejection:
    return decode(
        cap["raw_body"].encode("utf-8"),
        content_type=cap["content_type"],
        content_encoding=cap["content_encoding"],
        exchange=cap["delivery_info"]["exchange"],
        routing_key=cap["delivery_info"]["routing_key"],
        properties=cap["properties"],
        received_at=123.0,
    )


def decode_json(obj: Any, **kw: Any) -> BusMessage | Rejection:
    args: dict[str, Any] = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "exchange": "neutron",
        "routing_key": "q-reports-plugin",
        "properties": {},
        "received_at": 5.0,
    }
    args.update(kw)
    return decode(json.dumps(obj).encode(), **args)


def test_fixtures_are_present() -> None:
    assert len(CAPTURES) >= 19 and len(OSLO_CAPTURES) >= 16


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_every_capture_decodes_to_its_kind(path: Path) -> None:
    cap = load(path)
    result = decode_capture(cap)
    if cap["kind"] == "event":  # rabbitmq_event_exchange: empty body, all in headers
        assert isinstance(result, Rejection)
        assert result.reason == "not_json"
        return
    assert isinstance(result, BusMessage), result
    assert result.kind is KINDS[cap["kind"]]
    assert result.envelope_version == "2.0"
    assert result.exchange == cap["delivery_info"]["exchange"]
    assert result.routing_key == cap["delivery_info"]["routing_key"]
    assert result.received_at == 123.0
    decoded = cap["oslo_message_decoded"]
    if result.kind is MessageKind.NOTIFICATION:
        assert result.event_type == cap["method"]
        assert result.payload == decoded["payload"]
        assert result.publisher_id == decoded["publisher_id"]
        assert result.priority == "INFO"
        assert result.method is None
    elif result.kind is MessageKind.REPLY:
        assert result.body["result"] == decoded["result"]
        assert result.method is None and result.event_type is None
    else:
        assert result.method == cap["method"]
        assert result.args == decoded["args"]
    # _context_* moved into context, without the prefix, and nowhere else
    expected_context = {
        k[len("_context_") :]: v for k, v in decoded.items() if k.startswith("_context_")
    }
    assert result.context == expected_context
    assert not any(k.startswith("_context_") for k in result.body)
    assert result.properties == cap["properties"]


@pytest.mark.parametrize("path", OSLO_CAPTURES, ids=lambda p: p.stem)
def test_bare_1_0_message_decodes_like_its_envelope(path: Path) -> None:
    cap = load(path)
    bare = decode_json(cap["oslo_message_decoded"])
    wrapped = decode_capture(cap)
    assert isinstance(bare, BusMessage) and isinstance(wrapped, BusMessage)
    assert bare.envelope_version == "1.0"
    assert (bare.kind, bare.method, bare.event_type, dict(bare.args), dict(bare.context)) == (
        wrapped.kind,
        wrapped.method,
        wrapped.event_type,
        dict(wrapped.args),
        dict(wrapped.context),
    )


def test_already_decoded_mapping_is_accepted() -> None:
    cap = load(WIRE / "report_state_cast.json")
    result = decode(
        cap["body_json"],
        content_type=None,
        content_encoding=None,
        exchange="neutron",
        routing_key="q-reports-plugin",
        properties={},
        received_at=1.0,
    )
    assert isinstance(result, BusMessage)
    assert result.kind is MessageKind.RPC_CAST


@pytest.mark.parametrize(
    "name",
    [
        "report_state_call__L3_or_DHCP_agent.json",
        "report_state_call__as_seen_by_firehose.json",
        "report_state_cast.json",
    ],
)
def test_report_state_becomes_heartbeat(name: str) -> None:
    cap = load(WIRE / name)
    message = decode_capture(cap)
    assert isinstance(message, BusMessage)
    hb = heartbeat_from(message, received_wall=1_000.0)
    assert hb is not None
    state = cap["oslo_message_decoded"]["args"]["agent_state"]["agent_state"]
    assert hb.host == state["host"]
    assert hb.agent_type == state["agent_type"]
    assert hb.binary == state["binary"]
    assert hb.topic == state["topic"]
    assert hb.configurations == state["configurations"]
    assert hb.availability_zone == state.get("availability_zone")
    assert hb.agent_time == cap["oslo_message_decoded"]["args"]["time"]
    assert hb.start_flag is False
    assert hb.received_at == 123.0 and hb.received_wall == 1_000.0


def test_l3_call_heartbeat_has_agent_mode() -> None:
    message = decode_capture(load(WIRE / "report_state_call__L3_or_DHCP_agent.json"))
    assert isinstance(message, BusMessage)
    hb = heartbeat_from(message, received_wall=0.0)
    assert hb is not None
    assert (hb.host, hb.agent_type, hb.configurations["agent_mode"]) == (
        "net1",
        "L3 agent",
        "legacy",
    )


def test_heartbeat_from_1_0_shape_with_state_directly_under_agent_state() -> None:
    message = decode_json(
        {
            "method": "report_state",
            "args": {
                "agent_state": {
                    "host": "net9",
                    "agent_type": "DHCP agent",
                    "binary": "neutron-dhcp-agent",
                    "topic": "dhcp_agent",
                    "configurations": {"networks": 3},
                    "start_flag": True,
                },
                "time": "2014-01-01T00:00:00",
            },
            "_context_auth_token": "s3cret",
        }
    )
    assert isinstance(message, BusMessage)
    assert message.envelope_version == "1.0"
    assert message.context == {"auth_token": "s3cret"}
    hb = heartbeat_from(message, received_wall=2.0)
    assert hb is not None
    assert (hb.host, hb.agent_type, hb.start_flag) == ("net9", "DHCP agent", True)
    assert hb.configurations == {"networks": 3}
    assert hb.availability_zone is None


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"agent_state": "x"},
        {"agent_state": {"agent_state": {"host": "h"}}},
        {"agent_state": {"agent_type": "L3 agent"}},
        {"agent_state": {"host": 5, "agent_type": "L3 agent"}},
    ],
)
def test_a_report_state_of_the_wrong_shape_is_rejected_and_never_a_heartbeat(
    args: dict[str, Any],
) -> None:
    result = decode_json({"method": "report_state", "args": args})
    assert isinstance(result, Rejection) and result.reason == "bad_heartbeat"
    built = BusMessage(
        kind=MessageKind.RPC_CAST,
        exchange="neutron",
        routing_key="q-reports-plugin",
        envelope_version="1.0",
        received_at=0.0,
        method="report_state",
        args=args,
    )
    assert heartbeat_from(built, received_wall=0.0) is None


@pytest.mark.parametrize(
    "inner",
    [
        {"method": "sync_routers", "args": {"host": "net1"}},
        {"event_type": "report_state", "payload": {}},
        {"result": "alive", "failure": None, "ending": True},
    ],
)
def test_heartbeat_from_refuses_other_shapes(inner: dict[str, Any]) -> None:
    message = decode_json(inner)
    assert isinstance(message, BusMessage)
    assert heartbeat_from(message, received_wall=0.0) is None


@pytest.mark.parametrize(
    ("name", "resource", "resource_id"),
    [
        ("notification_network.create.end.json", "network", "5521ea7a-621c-4818-97db-cf01a9af7555"),
        ("notification_router.delete.end.json", "router", "1dcb2338-81ae-49bc-a055-44dd11105266"),
        ("notification_agent.update.end.json", "agent", "9fab225e-e8cc-46d4-8274-9ef49a866178"),
        (
            "notification_dhcp_agent.network.add.json",
            "dhcp_agent",
            "9eb8cde3-a12b-4523-91d5-f24e7c5007b3",
        ),
        (
            "notification_l3_agent.router.remove.json",
            "l3_agent",
            "3923d5f0-3999-42fe-961b-782623a4cdd7",
        ),
    ],
)
def test_notification_from_captures(name: str, resource: str, resource_id: str) -> None:
    cap = load(WIRE / name)
    message = decode_capture(cap)
    assert isinstance(message, BusMessage)
    note = notification_from(message)
    assert note is not None
    assert note.event_type == cap["method"]
    assert note.resource == resource
    assert note.resource_id == resource_id
    assert note.payload == cap["oslo_message_decoded"]["payload"]
    assert note.received_at == 123.0


def test_notification_id_from_resource_id_key() -> None:
    message = decode_json({"event_type": "network.delete.end", "payload": {"network_id": "n1"}})
    assert isinstance(message, BusMessage)
    note = notification_from(message)
    assert note is not None and (note.resource, note.resource_id) == ("network", "n1")


def test_notification_from_refuses_rpc_and_odd_payloads() -> None:
    rpc = decode_capture(load(WIRE / "report_state_cast.json"))
    assert isinstance(rpc, BusMessage)
    assert notification_from(rpc) is None
    odd = decode_json({"event_type": "network.delete.end", "payload": ["n1"]})
    assert isinstance(odd, BusMessage)
    assert notification_from(odd) is None
    no_id = decode_json({"event_type": "port.create.end", "payload": {"port": {"name": "x"}}})
    assert isinstance(no_id, BusMessage)
    note = notification_from(no_id)
    assert note is not None and note.resource_id is None


def envelope(inner: Any) -> dict[str, Any]:
    return {"oslo.version": "2.0", "oslo.message": inner}


MALFORMED: list[tuple[str, bytes, str | None, str | None, str]] = [
    ("empty", b"", "application/json", "utf-8", "not_json"),
    ("garbage", b"this is not json", "application/json", "utf-8", "not_json"),
    ("truncated", b'{"oslo.version": "2.0", "oslo.mes', None, None, "not_json"),
    ("bad_utf8", b'{"a": "\xff\xfe"}', "application/json", "utf-8", "bad_encoding"),
    ("latin1_label", b"{}", "application/json", "latin-1", "bad_encoding"),
    ("pickle", b"\x80\x04K\x01.", "application/x-python-serialize", "binary", "bad_content_type"),
    ("yaml", b"a: 1", "application/x-yaml", "utf-8", "bad_content_type"),
    ("too_large", b'"' + b"x" * MAX_BODY + b'"', "application/json", "utf-8", "too_large"),
    ("list", b"[1, 2]", "application/json", "utf-8", "not_object"),
    ("string", b'"report_state"', "application/json", "utf-8", "not_object"),
    ("null", b"null", None, None, "not_object"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, None, None, "not_json"),
    (
        "version_3",
        json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
        None,
        None,
        "bad_envelope",
    ),
    ("no_version", json.dumps({"oslo.message": "{}"}).encode(), None, None, "bad_envelope"),
    ("inner_not_json", json.dumps(envelope("{nope")).encode(), None, None, "bad_envelope"),
    ("inner_list", json.dumps(envelope("[1]")).encode(), None, None, "bad_envelope"),
    ("inner_object", json.dumps(envelope({"method": "x"})).encode(), None, None, "bad_envelope"),
    ("inner_missing", json.dumps({"oslo.version": "2.0"}).encode(), None, None, "bad_envelope"),
    ("no_kind", json.dumps({"hello": "world"}).encode(), None, None, "missing_field"),
    (
        "inner_no_kind",
        json.dumps(envelope('{"_unique_id": "u"}')).encode(),
        None,
        None,
        "missing_field",
    ),
    ("method_int", json.dumps({"method": 5}).encode(), None, None, "bad_field"),
    ("method_empty", json.dumps({"method": ""}).encode(), None, None, "bad_field"),
    ("args_list", json.dumps({"method": "m", "args": [1]}).encode(), None, None, "bad_field"),
    ("event_null", json.dumps({"event_type": None}).encode(), None, None, "bad_field"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "content_encoding", "reason"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_input_is_a_counted_rejection(
    body: bytes, content_type: str | None, content_encoding: str | None, reason: str
) -> None:
    stats = CodecStats()
    result = decode(
        body,
        content_type=content_type,
        content_encoding=content_encoding,
        exchange="neutron",
        routing_key="q-reports-plugin",
        properties={},
        received_at=0.0,
    )
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail and "\n" not in result.detail and len(result.detail) <= 300
    stats.record_rejected(result.reason)
    assert stats.snapshot()[f"rejected.{reason}"] == 1
    assert stats.snapshot()["rejected"] == 1


def test_content_type_parameters_and_case_are_accepted() -> None:
    result = decode_json(
        {"method": "m", "args": {}},
        content_type="Application/JSON; charset=utf-8",
        content_encoding="UTF-8",
    )
    assert isinstance(result, BusMessage)


def test_max_size_is_configurable() -> None:
    body = json.dumps({"method": "m", "args": {"x": "y" * 100}}).encode()
    common: dict[str, Any] = {
        "content_type": None,
        "content_encoding": None,
        "exchange": "e",
        "routing_key": "r",
        "properties": {},
        "received_at": 0.0,
    }
    assert isinstance(decode(body, max_size=len(body), **common), BusMessage)
    small = decode(body, max_size=len(body) - 1, **common)
    assert isinstance(small, Rejection) and small.reason == "too_large"


def test_call_vs_cast_by_reply_fields() -> None:
    call = decode_json({"method": "m", "args": {}, "_reply_q": "reply_x"})
    cast = decode_json({"method": "m", "args": {}})
    msg_id_only = decode_json({"method": "m", "_msg_id": "1"})
    assert isinstance(call, BusMessage) and call.kind is MessageKind.RPC_CALL
    assert isinstance(cast, BusMessage) and cast.kind is MessageKind.RPC_CAST
    assert isinstance(msg_id_only, BusMessage) and msg_id_only.kind is MessageKind.RPC_CALL
    assert msg_id_only.args == {}


def test_codec_stats_snapshot_counts_everything() -> None:
    stats = CodecStats()
    for _ in range(3):
        stats.record_decoded()
    stats.record_rejected("not_json")
    stats.record_rejected("not_json")
    stats.record_rejected("too_large")
    stats.record_handler_error()
    assert stats.snapshot() == {
        "decoded": 3,
        "handler_errors": 1,
        "rejected": 3,
        "rejected.not_json": 2,
        "rejected.too_large": 1,
    }
    assert stats.rejected() == {"not_json": 2, "too_large": 1}
    assert stats.decoded == 3


def test_rate_limited_log_says_how_many_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.ratelimit")
    assert log(logging.WARNING, "not_json", "dropped %s", "a") is True
    for _ in range(5):
        now[0] += 1.0
        assert log(logging.WARNING, "not_json", "dropped %s", "b") is False
    assert log(logging.WARNING, "too_large", "other %s", "c") is True  # keys are independent
    now[0] += 10.0
    assert log(logging.WARNING, "not_json", "dropped %s", "d") is True
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["dropped a", "other c", "dropped d (5 similar suppressed)"]


def test_text_bodies_are_measured_in_bytes() -> None:
    common: dict[str, Any] = {
        "content_type": None,
        "content_encoding": None,
        "exchange": "e",
        "routing_key": "r",
        "properties": {},
        "received_at": 0.0,
    }
    text = json.dumps({"method": "m", "args": {"x": "€" * 400}}, ensure_ascii=False)
    assert len(text) < 1000 < len(text.encode())
    result = decode(text, max_size=1000, **common)
    assert isinstance(result, Rejection) and result.reason == "too_large"
