"""The probe's wire format: the call we build, the replies we read (a real capture, oslo's
failure shape, compression, garbage), and matching replies to calls."""

from __future__ import annotations

import bz2
import itertools
import json
import lzma
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcdaemon.adapters.probewire import (
    MAX_REPLY_BYTES,
    PROBE_METHOD,
    PROBE_VERSION,
    PendingCalls,
    ProbeOutcome,
    ProbeReply,
    ProbeResult,
    build_request,
    check_queue_names,
    check_timeout,
    expiration_ms,
    inflate,
    parse_reply,
    reply_queue_name,
)

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"


def envelope(inner: dict[str, Any]) -> bytes:
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


def oslo_failure(cls: str = "NoSuchMethod") -> str:
    """What oslo's serialize_remote_exception puts in ``failure``: a JSON string."""
    return json.dumps(
        {
            "class": cls,
            "module": "oslo_messaging.rpc.dispatcher",
            "message": f"Endpoint does not support RPC method {PROBE_METHOD}",
            "tb": ["Traceback (most recent call last):\n", "..."],
            "args": [PROBE_METHOD],
            "kwargs": {},
        }
    )


def version_is_compatible(implemented: str, requested: str) -> bool:
    """oslo.messaging's rule (``_utils.version_is_compatible``), major.minor only."""
    imp_major, imp_minor = (int(x) for x in implemented.split(".")[:2])
    major, minor = (int(x) for x in requested.split(".")[:2])
    return major == imp_major and minor <= imp_minor


# -- the request --------------------------------------------------------------------------


def test_request_is_an_oslo_call_of_a_method_that_cannot_be_dispatched() -> None:
    ids = (f"{i:032x}" for i in itertools.count(1))
    request = build_request("l3_agent.net1", "reply_abc", 2.5, new_id=lambda: next(ids))
    top = json.loads(request.body)
    assert set(top) == {"oslo.version", "oslo.message"} and top["oslo.version"] == "2.0"
    inner = json.loads(top["oslo.message"])
    assert inner["method"] == PROBE_METHOD
    # private (the default access policy never calls it) and quiet (logged at DEBUG by
    # oslo.messaging >= 11.0.0 when the NoSuchMethod comes back)
    assert PROBE_METHOD.startswith("_") and PROBE_METHOD.endswith("_ignore_errors")
    assert inner["args"] == {} and "namespace" not in inner
    assert inner["_msg_id"] == request.msg_id == f"{1:032x}"
    assert inner["_unique_id"] == f"{2:032x}"
    assert inner["_reply_q"] == "reply_abc" and inner["_timeout"] is None
    assert inner["_context_request_id"].startswith("req-")
    assert request.queue == "l3_agent.net1" and request.expiration_ms == 2500


@pytest.mark.parametrize("target", ["1.0", "1.4", "1.7", "1.99"])
def test_request_version_fits_every_1x_agent_target(target: str) -> None:
    # L3 agent 1.4, DHCP agent 1.0, OVS agent 1.7: never UnsupportedVersion (logged loudly)
    assert version_is_compatible(target, PROBE_VERSION)


def test_requests_get_fresh_ids() -> None:
    a, b = (build_request("q", "reply_x", 1.0) for _ in range(2))
    assert a.msg_id != b.msg_id and len(a.msg_id) == 32


def test_request_has_the_shape_neutron_sends_a_call_in() -> None:
    capture = json.loads((WIRE / "server_to_agent__router_added_to_agent_CALL.json").read_text())
    real = capture["oslo_message_decoded"]
    ours = json.loads(json.loads(build_request("q", "reply_x", 1.0).body)["oslo.message"])
    for key in ("method", "args", "version", "_msg_id", "_reply_q", "_timeout", "_unique_id"):
        assert key in real and key in ours
    assert {k for k in ours if k.startswith("_context_")} <= {
        k for k in real if k.startswith("_context_")
    }


@pytest.mark.parametrize(
    ("timeout", "ms"), [(1.0, 1000), (2.5, 2500), (0.0001, 1), (0.0015, 2), (300, 300_000)]
)
def test_expiration_is_whole_milliseconds_at_least_one(timeout: float, ms: int) -> None:
    assert expiration_ms(timeout) == ms


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), 301, True, "1"])
def test_bad_timeouts_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        check_timeout(bad, 300)


def test_queue_names_are_checked_deduplicated_and_bounded() -> None:
    assert check_queue_names(["a.h1", "b.h1", "a.h1"], limit=2) == ("a.h1", "b.h1")
    assert check_queue_names([], limit=1) == ()
    with pytest.raises(ValueError, match="at most 2"):
        check_queue_names(["a", "b", "c"], limit=2)
    with pytest.raises(ValueError):
        check_queue_names([""], limit=5)
    with pytest.raises(ValueError):
        check_queue_names(["é" * 128], limit=5)  # 256 bytes in UTF-8
    with pytest.raises(TypeError):
        check_queue_names("l3_agent.net1", limit=5)


def test_reply_queue_names_are_oslo_shaped_and_ours() -> None:
    a, b = reply_queue_name(), reply_queue_name()
    assert a.startswith("reply_rpcdaemon-") and a != b


# -- replies ------------------------------------------------------------------------------


def test_the_captured_success_reply_parses() -> None:
    capture = json.loads((WIRE / "report_state_reply__firehose.json").read_text())
    reply = parse_reply(capture["raw_body"])
    assert reply == ProbeReply("7651b64f0f24409eb5d068dbf949a536", failure=None, ending=True)


def test_a_no_such_method_failure_is_an_answer() -> None:
    body = envelope(
        {
            "result": None,
            "failure": oslo_failure(),
            "ending": True,
            "_msg_id": "m1",
            "_unique_id": "u",
        }
    )
    assert parse_reply(body) == ProbeReply("m1", failure="NoSuchMethod", ending=True)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (None, None),
        ("", None),
        ("not json", "RemoteError"),
        (json.dumps({"module": "x"}), "RemoteError"),
        ({"class": "UnsupportedVersion"}, "UnsupportedVersion"),
    ],
)
def test_failure_class_is_read_best_effort(failure: Any, expected: str | None) -> None:
    reply = parse_reply(envelope({"failure": failure, "_msg_id": "m"}))
    assert reply is not None and reply.failure == expected


def test_call_monitor_heartbeats_and_bare_replies_count() -> None:
    heartbeat = parse_reply(
        envelope({"result": None, "failure": None, "ending": False, "_msg_id": "m"})
    )
    assert heartbeat == ProbeReply("m", None, ending=False)
    bare = parse_reply(json.dumps({"result": "pong", "failure": None, "_msg_id": "m"}))
    assert bare is not None and bare.msg_id == "m"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"a string"',
        envelope({"result": 1}),  # no msg id
        envelope({"result": 1, "_msg_id": 7}),
        envelope({"method": "router_added_to_agent", "_msg_id": "m"}),  # a request
        json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
        json.dumps({"oslo.version": "2.0", "oslo.message": 5}).encode(),
        json.dumps({"oslo.version": "2.0", "oslo.message": "[]"}).encode(),
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_anything_else_is_not_a_reply(body: bytes) -> None:
    assert parse_reply(body) is None


@pytest.mark.parametrize(
    ("header", "compress"),
    [
        ("application/x-gzip", zlib.compress),
        ("zlib", zlib.compress),
        ("application/x-bz2", bz2.compress),
        ("application/x-lzma", lzma.compress),
    ],
)
def test_kombu_compressed_replies_are_read(header: str, compress: Any) -> None:
    body = compress(envelope({"result": None, "failure": oslo_failure(), "_msg_id": "m"}))
    reply = parse_reply(body, compression=header)
    assert reply is not None and reply.msg_id == "m"


def test_decompression_is_capped() -> None:
    bomb = zlib.compress(b" " * (MAX_REPLY_BYTES + 1))
    assert inflate(bomb, "application/x-gzip") is None
    assert inflate(b"x" * (MAX_REPLY_BYTES + 1), None) is None
    assert inflate(b"garbage", "application/x-bz2") is None
    assert inflate(b"anything", "application/x-brotli") is None  # unknown scheme: unread
    assert parse_reply(bomb, compression="application/x-gzip") is None


def test_other_content_encodings() -> None:
    body = json.dumps({"result": "é", "_msg_id": "m"}).encode("latin-1")
    assert parse_reply(body, content_encoding="latin-1") is not None
    assert parse_reply(body, content_encoding="no-such-codec") is None


@given(st.binary(max_size=512), st.sampled_from([None, "application/x-gzip", "bz2", "xz"]))
def test_parse_reply_never_raises(body: bytes, compression: str | None) -> None:
    parse_reply(body, compression=compression)


@given(st.text(min_size=1, max_size=64))
def test_any_msg_id_round_trips(msg_id: str) -> None:
    reply = parse_reply(
        envelope({"result": None, "failure": None, "ending": True, "_msg_id": msg_id})
    )
    assert reply is not None and reply.msg_id == msg_id


# -- matching -----------------------------------------------------------------------------


def test_pending_calls_match_each_reply_once() -> None:
    pending = PendingCalls()
    a = build_request("l3_agent.h1", "reply_x", 1.0)
    b = build_request("dhcp_agent.h1", "reply_x", 1.0)
    pending.expect(a)
    pending.expect(b)
    assert pending.waiting == 2
    assert pending.match(ProbeReply("someone-elses", None, True)) is None
    assert pending.match(ProbeReply(a.msg_id, "NoSuchMethod", True)) == "l3_agent.h1"
    assert pending.match(ProbeReply(a.msg_id, None, True)) is None  # a duplicate
    assert pending.waiting == 1
    pending.forget("dhcp_agent.h1")  # returned by the broker: nothing will answer
    assert pending.waiting == 0
    assert pending.match(ProbeReply(b.msg_id, None, True)) is None
    assert pending.answered() == {"l3_agent.h1": ProbeReply(a.msg_id, "NoSuchMethod", True)}
    pending.clear()
    assert pending.answered() == {} and pending.waiting == 0


def test_results_say_answered_only_for_an_answer() -> None:
    for outcome in ProbeOutcome:
        assert ProbeResult("q", outcome, 0.1).answered is (outcome is ProbeOutcome.ANSWERED)
