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
label): ``too_large``, ``bad_content_type``, ``bad_encoding``, ``not_json``, ``not_object``,
``bad_envelope``, ``missing_field``, ``bad_field``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    return _reject("bad_content_type", f"content type {content_type!r} is not JSON")


def _text_of(body: bytes | str, content_encoding: str | None, max_size: int) -> str | Rejection:
    size = len(body)
    if isinstance(body, str) and size * 4 > max_size:
        size = len(body.encode("utf-8", "surrogatepass"))  # count bytes, as on the wire
    if size > max_size:
        return _reject("too_large", f"body of {size} bytes exceeds the {max_size} byte limit")
    if isinstance(body, str):
        return body
    if content_encoding and content_encoding.strip().lower() not in TEXT_ENCODINGS:
        return _reject("bad_encoding", f"content encoding {content_encoding!r} is not UTF-8")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject("bad_encoding", f"body is not valid UTF-8: {exc}")


def _parse_object(text: str, *, what: str, reason: str) -> dict[str, Any] | Rejection:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return _reject(reason, f"{what} is not JSON: {exc}")
    if not isinstance(value, dict):
        label = "not_object" if reason == "not_json" else reason
        return _reject(label, f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _unwrap(top: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | Rejection:
    """Return (envelope_version, inner message)."""
    if "oslo.version" not in top and "oslo.message" not in top:
        return "1.0", dict(top)
    version = top.get("oslo.version")
    if not isinstance(version, str) or not version.startswith("2."):
        return _reject("bad_envelope", f"unsupported oslo.version {version!r}")
    inner = top.get("oslo.message")
    if not isinstance(inner, str):
        return _reject("bad_envelope", f"oslo.message is a {type(inner).__name__}, not a string")
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
            return _reject("bad_field", f"event_type is {event_type!r}, not a string")
        return MessageKind.NOTIFICATION, {
            "event_type": event_type,
            "payload": inner.get("payload"),
            "publisher_id": _str_or_none(inner.get("publisher_id")),
            "priority": _str_or_none(inner.get("priority")),
        }
    if "method" in inner:
        method = inner["method"]
        if not isinstance(method, str) or not method:
            return _reject("bad_field", f"method is {method!r}, not a string")
        args = inner.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return _reject(
                "bad_field", f"args of {method} is a {type(args).__name__}, not an object"
            )
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
        return _reject("internal", f"{type(exc).__name__}: {exc}")


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


def heartbeat_from(message: BusMessage, *, received_wall: float) -> Heartbeat | None:
    """A ``report_state`` call or cast -> Heartbeat; None for anything else or a bad shape.

    Accepts ``args.agent_state.agent_state`` (what every agent since Grizzly sends) and the
    older ``args.agent_state`` holding the state directly.
    """
    if message.method != "report_state" or message.kind not in (
        MessageKind.RPC_CALL,
        MessageKind.RPC_CAST,
    ):
        return None
    outer = message.args.get("agent_state")
    if not isinstance(outer, Mapping):
        return None
    nested = outer.get("agent_state")
    state: Mapping[str, Any] = nested if isinstance(nested, Mapping) else outer
    host = state.get("host")
    agent_type = state.get("agent_type")
    if not isinstance(host, str) or not host or not isinstance(agent_type, str) or not agent_type:
        return None
    configurations = state.get("configurations")
    agent_time = message.args.get("time")
    return Heartbeat(
        host=Host(host),
        agent_type=agent_type,
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


class CodecStats:
    """Thread-safe counters of what the consumer decoded, rejected and failed to handle.

    ``snapshot()`` keys: ``decoded``, ``handler_errors``, ``rejected`` (total) and
    ``rejected.<reason>`` for each reason seen.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoded = 0
        self._handler_errors = 0
        self._rejected: dict[str, int] = {}

    def record_decoded(self) -> None:
        with self._lock:
            self._decoded += 1

    def record_rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1

    def record_handler_error(self) -> None:
        with self._lock:
            self._handler_errors += 1

    @property
    def decoded(self) -> int:
        with self._lock:
            return self._decoded

    def rejected(self) -> dict[str, int]:
        """Rejections by reason."""
        with self._lock:
            return dict(self._rejected)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = {
                "decoded": self._decoded,
                "handler_errors": self._handler_errors,
                "rejected": sum(self._rejected.values()),
            }
            out.update({f"rejected.{reason}": n for reason, n in self._rejected.items()})
            return out


class RateLimitedLog:
    """At most one log line per key per ``interval`` seconds, with a count of suppressed ones."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(
        self, level: int, key: str, msg: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` ago.
        Returns whether a line was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            self._log.log(
                level,
                msg + " (%d similar suppressed)",
                *args,
                suppressed,
                exc_info=exc_info,
            )
        else:
            self._log.log(level, msg, *args, exc_info=exc_info)
        return True
