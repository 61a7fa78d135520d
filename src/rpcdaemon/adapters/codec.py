"""oslo.messaging wire format -> ``core.events``: pure, stdlib only, never raises.

Accepted shapes (both seen on a neutron 29 bus, see tests/fixtures/wire/):

* envelope 2.0: ``{"oslo.version": "2.0", "oslo.message": "<JSON object as a string>"}``;
* bare 1.0: the message object itself (pre-Icehouse senders, hand-written tools).

The inner message is classified by its keys, in this order:

* ``event_type``            -> ``NOTIFICATION`` (``payload``, ``publisher_id``, ``priority``);
* ``method``                -> ``RPC_CALL`` when ``_msg_id`` or ``_reply_q`` is present (we never
  reply: neutron-server does), else ``RPC_CAST``;
* ``result``/``failure``/``ending`` -> ``REPLY`` (only visible to Dump).

Every ``_context_<name>`` key moves into ``BusMessage.context`` as ``<name>`` (the prefix is
dropped: ``_context_auth_token`` becomes ``context["auth_token"]``). ``BusMessage.body`` keeps
every other key of the inner message, as decoded.

Anything else becomes a :class:`Rejection` whose ``reason`` is a short, stable label (a metric
label): ``too_large``, ``compressed`` (set by the consumer, before kombu could inflate it),
``bad_content_type``, ``bad_encoding``, ``not_json`` (also JSON nested deeper than the stack
allows), ``too_deep``, ``bad_number`` (``NaN``, ``Infinity`` or a float literal that overflows:
legal for Python's json, never sent by an agent), ``not_object``, ``bad_envelope``,
``missing_field``, ``bad_field``, ``bad_heartbeat`` (a ``report_state`` whose ``agent_state``
fails :func:`check_report_state`), ``internal``.

Numbers are validated where they enter: no decoded message holds a non-finite float, and a
``report_state`` is accepted only when every field the daemon reads has the right type and a
bounded size (see :func:`check_report_state`). After this, nothing downstream can meet NaN.

A rejection's ``detail`` never quotes message content (a password in a wrong field must not
reach the log): it names our field, the JSON kind found and sizes, never values.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpcdaemon.adapters.agentstate import (
    MAX_COUNT,
    MAX_DEPTH,
    MAX_INT,
    MAX_NAME,
    check_report_state,
    kind_of,
    state_of,
)
from rpcdaemon.adapters.counters import CodecStats, RateLimitedLog
from rpcdaemon.core.events import BusMessage, Heartbeat, MessageKind, ResourceNotification
from rpcdaemon.core.ids import Host

logger = logging.getLogger(__name__)

MAX_BODY = 1_048_576
CONTEXT_PREFIX = "_context_"
JSON_CONTENT_TYPES = frozenset({"application/json", "application/x-json", "text/json"})
TEXT_ENCODINGS = frozenset({"utf-8", "utf8"})
REPLY_KEYS = ("result", "failure", "ending")


@dataclass(frozen=True)
class Rejection:
    """Why a delivery could not be decoded. The consumer counts it, logs it and acks it."""

    reason: str  # short stable label, used as a metric label
    detail: str  # one line for the log


def _reject(reason: str, detail: str) -> Rejection:
    return Rejection(reason, " ".join(detail.split())[:300])


def _check_content_type(content_type: str | None) -> Rejection | None:
    if not content_type:
        return None  # the firehose and hand-written publishers send none
    base = content_type.split(";", 1)[0].strip().lower()
    if base in JSON_CONTENT_TYPES:
        return None
    return _reject("bad_content_type", f"content type ({len(content_type)} characters) is not JSON")


def _text_of(body: bytes | str, content_encoding: str | None, max_size: int) -> str | Rejection:
    size = len(body)
    if isinstance(body, str) and size * 4 > max_size:
        size = len(body.encode("utf-8", "surrogatepass"))  # count bytes, as on the wire
    if size > max_size:
        return _reject("too_large", f"body of {size} bytes exceeds the {max_size} byte limit")
    if isinstance(body, str):
        return body
    if content_encoding and content_encoding.strip().lower() not in TEXT_ENCODINGS:
        return _reject(
            "bad_encoding", f"content encoding ({len(content_encoding)} characters) is not UTF-8"
        )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject("bad_encoding", f"body of {size} bytes is not UTF-8 (at byte {exc.start})")


class _NotFinite(ValueError):
    """A JSON number that is not a finite float (NaN, Infinity, 1e999)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite("a float literal overflows")
    return value


def _no_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
"""Python's json, refusing NaN, Infinity and float literals that overflow (one instance: a
decoder per call costs more than the parse of a heartbeat)."""


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Is ``value`` nested deeper than ``limit`` objects/arrays? Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _parse_object(text: str, *, what: str, reason: str) -> dict[str, Any] | Rejection:
    try:
        value = _DECODER.decode(text)
    except _NotFinite as exc:
        return _reject("bad_number", f"{what}: {exc}")
    except json.JSONDecodeError as exc:
        return _reject(reason, f"{what} is not JSON ({exc.msg} at character {exc.pos})")
    except RecursionError:
        return _reject(reason, f"{what} is nested too deeply to parse")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return _reject(reason, f"{what} is not JSON ({type(exc).__name__})")
    if not isinstance(value, dict):
        label = "not_object" if reason == "not_json" else reason
        return _reject(label, f"{what} is {kind_of(value)}, not an object")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth_exceeds(value, MAX_DEPTH):
        return _reject("too_deep", f"{what} nests objects/arrays deeper than {MAX_DEPTH}")
    return value


def _unwrap(top: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | Rejection:
    """Return (envelope_version, inner message)."""
    if "oslo.version" not in top and "oslo.message" not in top:
        return "1.0", dict(top)
    version = top.get("oslo.version")
    if not isinstance(version, str) or not version.startswith("2."):
        return _reject("bad_envelope", f"unsupported oslo.version ({kind_of(version)})")
    inner = top.get("oslo.message")
    if not isinstance(inner, str):
        return _reject("bad_envelope", f"oslo.message is {kind_of(inner)}, not a string")
    parsed = _parse_object(inner, what="oslo.message", reason="bad_envelope")
    if isinstance(parsed, Rejection):
        return parsed
    return version, parsed


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _classify(
    inner: Mapping[str, Any],
) -> tuple[MessageKind, dict[str, Any]] | Rejection:
    """Return the kind and the promoted fields (method, args, event_type, ...)."""
    if "event_type" in inner:
        event_type = inner["event_type"]
        if not isinstance(event_type, str) or not event_type:
            return _reject("bad_field", f"event_type is {kind_of(event_type)}, not a string")
        return MessageKind.NOTIFICATION, {
            "event_type": event_type,
            "payload": inner.get("payload"),
            "publisher_id": _str_or_none(inner.get("publisher_id")),
            "priority": _str_or_none(inner.get("priority")),
        }
    if "method" in inner:
        method = inner["method"]
        if not isinstance(method, str) or not method:
            return _reject("bad_field", f"method is {kind_of(method)}, not a string")
        args = inner.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return _reject("bad_field", f"args is {kind_of(args)}, not an object")
        call = "_msg_id" in inner or "_reply_q" in inner
        kind = MessageKind.RPC_CALL if call else MessageKind.RPC_CAST
        return kind, {"method": method, "args": args}
    if any(key in inner for key in REPLY_KEYS):
        return MessageKind.REPLY, {}
    return _reject("missing_field", "message has no method, event_type or result")


def decode(
    body: bytes | str | Mapping[str, Any],
    *,
    content_type: str | None,
    content_encoding: str | None,
    exchange: str,
    routing_key: str,
    properties: Mapping[str, Any],
    received_at: float,
    max_size: int = MAX_BODY,
) -> BusMessage | Rejection:
    """Decode one delivery. Never raises: anything unexpected is a :class:`Rejection`.

    ``body`` is the raw AMQP body (bytes, or text); a Mapping is taken as already parsed
    JSON (content type, encoding and size are then not checked)."""
    try:
        return _decode(
            body,
            content_type=content_type,
            content_encoding=content_encoding,
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            received_at=received_at,
            max_size=max_size,
        )
    except Exception as exc:  # the contract is "never raises": report instead
        return _reject("internal", f"{type(exc).__name__} while decoding")


def _decode(
    body: bytes | str | Mapping[str, Any],
    *,
    content_type: str | None,
    content_encoding: str | None,
    exchange: str,
    routing_key: str,
    properties: Mapping[str, Any],
    received_at: float,
    max_size: int,
) -> BusMessage | Rejection:
    if isinstance(body, Mapping):
        top: Mapping[str, Any] = body
    else:
        if not isinstance(body, bytes | str):
            return _reject("not_json", f"body is a {type(body).__name__}")
        bad_type = _check_content_type(content_type)
        if bad_type is not None:
            return bad_type
        text = _text_of(body, content_encoding, max_size)
        if isinstance(text, Rejection):
            return text
        parsed = _parse_object(text, what="body", reason="not_json")
        if isinstance(parsed, Rejection):
            return parsed
        top = parsed
    unwrapped = _unwrap(top)
    if isinstance(unwrapped, Rejection):
        return unwrapped
    version, inner = unwrapped
    classified = _classify(inner)
    if isinstance(classified, Rejection):
        return classified
    kind, fields = classified
    if fields.get("method") == "report_state" and kind in (
        MessageKind.RPC_CALL,
        MessageKind.RPC_CAST,
    ):
        problem = check_report_state(fields["args"])
        if problem is not None:
            return _reject("bad_heartbeat", f"report_state: {problem}")
        _checked.args = fields["args"]
    context = {
        key[len(CONTEXT_PREFIX) :]: value
        for key, value in inner.items()
        if key.startswith(CONTEXT_PREFIX)
    }
    rest = {key: value for key, value in inner.items() if not key.startswith(CONTEXT_PREFIX)}
    return BusMessage(
        kind=kind,
        exchange=exchange,
        routing_key=routing_key,
        envelope_version=version,
        received_at=received_at,
        method=fields.get("method"),
        args=fields.get("args", {}),
        event_type=fields.get("event_type"),
        payload=fields.get("payload"),
        publisher_id=fields.get("publisher_id"),
        priority=fields.get("priority"),
        context=context,
        body=rest,
        properties=dict(properties),
    )


class _Checked(threading.local):
    """The ``args`` object :func:`decode` last checked on this thread (held, so its identity
    cannot be reused): :func:`heartbeat_from` on the message :func:`decode` just returned
    does not walk the same ``agent_state`` twice (the walk was 35 % of a heartbeat's decode)."""

    args: object = None


_checked = _Checked()


def heartbeat_from(message: BusMessage, *, received_wall: float) -> Heartbeat | None:
    """A ``report_state`` call or cast -> Heartbeat; None for anything else or a bad shape.

    Accepts ``args.agent_state.agent_state`` (what every agent since Grizzly sends) and the
    older ``args.agent_state`` holding the state directly. The same checks as :func:`decode`
    (:func:`check_report_state`) run here too, so a Heartbeat never holds a non-finite or
    unbounded number, whoever built the message.
    """
    if message.method != "report_state" or message.kind not in (
        MessageKind.RPC_CALL,
        MessageKind.RPC_CAST,
    ):
        return None
    if message.args is not _checked.args and check_report_state(message.args) is not None:
        return None
    state, _ = state_of(message.args)
    if state is None:  # pragma: no cover - check_report_state said it is an object
        return None
    configurations = state.get("configurations")
    agent_time = message.args.get("time")
    return Heartbeat(
        host=Host(state["host"]),
        agent_type=state["agent_type"],
        binary=_str_or_none(state.get("binary")) or "",
        topic=_str_or_none(state.get("topic")) or "",
        availability_zone=_str_or_none(state.get("availability_zone")),
        configurations=dict(configurations) if isinstance(configurations, Mapping) else {},
        start_flag=state.get("start_flag") is True,
        agent_time=agent_time if isinstance(agent_time, str) else None,
        received_at=message.received_at,
        received_wall=received_wall,
    )


def notification_from(message: BusMessage) -> ResourceNotification | None:
    """A notification -> ResourceNotification (``network.delete.end`` -> resource ``network``).

    The id comes from ``payload[resource]["id"]``, else ``payload[f"{resource}_id"]``; for
    ``l3_agent.*``/``dhcp_agent.*`` events (payload ``{"agent": {...}}``) from ``payload.agent.id``.
    """
    if message.kind is not MessageKind.NOTIFICATION or not message.event_type:
        return None
    payload = message.payload
    if not isinstance(payload, Mapping):
        return None
    resource = message.event_type.split(".", 1)[0]
    resource_id: str | None = None
    candidates: list[Any] = [payload.get(resource)]
    if resource.endswith("_agent"):
        candidates.append(payload.get("agent"))
    for candidate in candidates:
        if isinstance(candidate, Mapping) and isinstance(candidate.get("id"), str):
            resource_id = candidate["id"]
            break
    if resource_id is None:
        resource_id = _str_or_none(payload.get(f"{resource}_id"))
    return ResourceNotification(
        event_type=message.event_type,
        resource=resource,
        resource_id=resource_id,
        payload=dict(payload),
        received_at=message.received_at,
    )


__all__ = [
    "MAX_BODY",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NAME",
    "CodecStats",
    "RateLimitedLog",
    "Rejection",
    "check_report_state",
    "decode",
    "heartbeat_from",
    "kind_of",
    "notification_from",
]
