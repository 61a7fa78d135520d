"""Hypothesis: the codec never raises, and oslo envelopes round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.adapters.codec import Rejection, decode
from rpcdaemon.core.events import BusMessage, MessageKind

COMMON: dict[str, Any] = {
    "exchange": "neutron",
    "routing_key": "q-reports-plugin",
    "properties": {},
    "received_at": 1.0,
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
plain_keys = st.text(min_size=1, max_size=12).filter(lambda k: not k.startswith("_context_"))
json_objects = st.dictionaries(plain_keys, json_values, max_size=5)


@settings(max_examples=300)
@given(
    body=st.binary(max_size=512),
    content_type=st.none() | st.sampled_from(["application/json", "text/plain", ""]),
    content_encoding=st.none() | st.sampled_from(["utf-8", "binary", "gzip"]),
)
def test_any_bytes_decode_or_reject(
    body: bytes, content_type: str | None, content_encoding: str | None
) -> None:
    result = decode(body, content_type=content_type, content_encoding=content_encoding, **COMMON)
    assert isinstance(result, BusMessage | Rejection)


@settings(max_examples=300)
@given(value=json_values)
def test_any_json_value_decodes_or_rejects(value: Any) -> None:
    for body in (json.dumps(value).encode(), json.dumps(value)):
        result = decode(body, content_type="application/json", content_encoding="utf-8", **COMMON)
        assert isinstance(result, BusMessage | Rejection)
        if not isinstance(value, dict):
            assert isinstance(result, Rejection) and result.reason == "not_object"


@settings(max_examples=300)
@given(version=json_values, inner=json_values | json_values.map(json.dumps))
def test_any_envelope_decodes_or_rejects(version: Any, inner: Any) -> None:
    top = {"oslo.version": version, "oslo.message": inner}
    for body in (json.dumps(top).encode(), top):
        result = decode(body, content_type=None, content_encoding=None, **COMMON)
        assert isinstance(result, BusMessage | Rejection)


@settings(max_examples=200)
@given(value=json_objects)
def test_any_mapping_decodes_or_rejects(value: dict[str, Any]) -> None:
    assert isinstance(
        decode(value, content_type=None, content_encoding=None, **COMMON), BusMessage | Rejection
    )


context_names = st.text(
    alphabet=st.characters(whitelist_categories=("Ll",)), min_size=1, max_size=10
)


@settings(max_examples=200)
@given(
    method=st.text(min_size=1, max_size=20).filter(lambda m: m != "report_state"),
    args=json_objects,
    context=st.dictionaries(context_names, json_values, max_size=5),
    call=st.booleans(),
    wrapped=st.booleans(),
)
def test_rpc_round_trip(
    method: str, args: dict[str, Any], context: dict[str, Any], call: bool, wrapped: bool
) -> None:
    inner: dict[str, Any] = {"method": method, "args": args, "version": "1.4", "_unique_id": "u"}
    if call:
        inner.update({"_msg_id": "m", "_reply_q": "reply_q", "_timeout": None})
    inner.update({f"_context_{k}": v for k, v in context.items()})
    top = {"oslo.version": "2.0", "oslo.message": json.dumps(inner)} if wrapped else inner
    result = decode(
        json.dumps(top).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        **COMMON,
    )
    assert isinstance(result, BusMessage)
    assert result.kind is (MessageKind.RPC_CALL if call else MessageKind.RPC_CAST)
    assert result.envelope_version == ("2.0" if wrapped else "1.0")
    assert result.method == method
    assert result.args == args
    assert result.context == context
    rebuilt = dict(result.body)
    rebuilt.update({f"_context_{k}": v for k, v in result.context.items()})
    assert rebuilt == inner


@settings(max_examples=100)
@given(
    event_type=st.text(min_size=1, max_size=30),
    payload=json_values,
    publisher=st.text(max_size=20),
)
def test_notification_round_trip(event_type: str, payload: Any, publisher: str) -> None:
    inner = {
        "message_id": "id",
        "event_type": event_type,
        "payload": payload,
        "publisher_id": publisher,
        "priority": "INFO",
        "timestamp": "2026-11-24 05:24:49.992534",
    }
    top = {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}
    result = decode(json.dumps(top), content_type=None, content_encoding=None, **COMMON)
    assert isinstance(result, BusMessage)
    assert result.kind is MessageKind.NOTIFICATION
    assert (result.event_type, result.payload, result.publisher_id) == (
        event_type,
        payload,
        publisher,
    )
    assert dict(result.body) == inner
