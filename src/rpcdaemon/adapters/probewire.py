"""The active probe's wire format: the oslo.messaging RPC call we send, the reply we match.

Pure (stdlib only, no IO): :mod:`rpcdaemon.adapters.probe` does the talking.

The request is what an oslo.messaging client sends for ``call()`` (envelope 2.0, see
oslo_messaging/_drivers/common.py ``serialize_msg`` and amqpdriver.py ``_send``)::

    {"oslo.version": "2.0", "oslo.message": "<JSON of the message below>"}
    {"method": PROBE_METHOD, "args": {}, "version": "1.0",
     "_msg_id": <hex>, "_reply_q": <our reply queue>, "_timeout": null,
     "_unique_id": <hex>, "_context_request_id": "req-<uuid>"}

Why these values (oslo_messaging/rpc/dispatcher.py and rpc/server.py):

* ``method`` starts with ``_``: the dispatcher calls a method only if the endpoint has it
  *and* the access policy allows it, and the default policy (the one neutron's RPC servers
  use) never allows a private name. So the probe can never run anything, even on an endpoint
  with a catch-all ``__getattr__``; the server answers ``NoSuchMethod``.
* it ends in ``_ignore_errors``: since oslo.messaging 11.0.0 (Ussuri) the server logs such a
  ``NoSuchMethod`` at DEBUG instead of ``LOG.exception`` (an ERROR with a traceback on every
  agent host, every probe). Older agents still answer, with that ERROR.
* ``version`` "1.0": the dispatcher wants an endpoint whose target has the same major and a
  minor >= ours, else it raises ``UnsupportedVersion``, which *is* logged with a traceback.
  Every 1.x target accepts 1.0 (L3 agent 1.4, DHCP agent 1.0, OVS agent 1.7).
* no ``namespace`` key: oslo's client leaves it out when it is None, and None is what the
  agents' manager endpoints accept.
* ``_timeout`` null: no call-monitor heartbeats (the server would send one every
  ``_timeout / 2`` s while the call runs).
* one ``_context_*`` key (a request id, for the agent's debug log): the context is only
  deserialised when a method is really dispatched, which a probe never is.

A reply (amqpdriver.py ``AMQPIncomingMessage._send_reply``) is the same envelope around
``{"result": ..., "failure": <JSON string or null>, "ending": true, "_msg_id": ...,
"_unique_id": ...}``; ANY reply carrying one of our msg ids means a live process consumed
the request. ``failure`` names the remote exception (``NoSuchMethod`` from a real agent).
"""

from __future__ import annotations

import bz2
import json
import lzma
import math
import socket
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

PROBE_METHOD = "_rpcdaemon_probe_ignore_errors"
PROBE_VERSION = "1.0"
ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
MAX_REPLY_BYTES = 1_048_576  # a NoSuchMethod reply with its traceback is ~1 KiB
MAX_QUEUE_NAME = 255  # AMQP shortstr, in UTF-8 bytes

# kombu's compression content types (kombu/compression.py), as oslo's kombu_compression sets
# them in the ``compression`` header; decompressed with a size cap (no zip bombs).
_ZLIB = frozenset({"application/x-gzip", "gzip", "zlib"})
_BZ2 = frozenset({"application/x-bz2", "bzip2", "bz2"})
_LZMA = frozenset({"application/x-lzma", "lzma", "xz"})


@dataclass(frozen=True)
class ProbeRequest:
    """One call, ready to publish: ``body`` goes to ``queue`` (the routing key)."""

    queue: str
    msg_id: str
    body: bytes
    expiration_ms: int


@dataclass(frozen=True)
class ProbeReply:
    """What we read from a reply: whose it is and whether the remote end raised."""

    msg_id: str
    failure: str | None  # the remote exception's class ("NoSuchMethod"), None on success
    ending: bool


class ProbeOutcome(str, Enum):
    ANSWERED = "answered"  # a reply with our msg id: a live process consumes the queue
    SILENT = "silent"  # routed to a queue a consumer still holds, no reply within the timeout
    NO_CONSUMER = "no_consumer"  # routed to a queue, no reply, and nobody consumes it now
    UNROUTABLE = "unroutable"  # no queue bound for the routing key (basic.return)
    REFUSED = "refused"  # the broker nacked it (e.g. a full queue that rejects publishes)


@dataclass(frozen=True)
class ProbeResult:
    """One queue's answer to one probe."""

    queue: str
    outcome: ProbeOutcome
    seconds: float  # from the start of the probe to the reply, or to the end of the wait
    failure: str | None = None  # remote exception class of an answer ("NoSuchMethod")

    @property
    def answered(self) -> bool:
        return self.outcome is ProbeOutcome.ANSWERED


def reply_queue_name() -> str:
    """``reply_rpcdaemon-<hostname>-<uuid8>``: oslo's prefix, recognisably ours."""
    host = socket.gethostname().split(".", 1)[0] or "localhost"
    return f"reply_rpcdaemon-{host}-{uuid.uuid4().hex[:8]}"


def check_timeout(timeout: float, maximum: float) -> None:
    """ValueError unless ``timeout`` is a number of seconds in (0, ``maximum``]."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if not (math.isfinite(timeout) and 0 < timeout <= maximum):
        raise ValueError(f"timeout must be in (0, {maximum:g}] s, got {timeout!r}")


def expiration_ms(timeout: float) -> int:
    """The AMQP ``expiration`` (whole milliseconds, at least 1) for a call that waits
    ``timeout`` seconds: a request nobody consumed in time is dropped, not delivered to a
    host that comes back later."""
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return max(1, math.ceil(timeout * 1000))


def check_queue_names(queues: Iterable[str], *, limit: int) -> tuple[str, ...]:
    """The distinct queue names, in order; ValueError for a bad name or more than ``limit``."""
    if isinstance(queues, str | bytes):
        raise TypeError("queues must be a sequence of names, not one string")
    out: dict[str, None] = {}
    for name in queues:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a queue name must be a non-empty string, got {name!r}")
        if len(name.encode("utf-8")) > MAX_QUEUE_NAME:
            raise ValueError(f"queue name longer than {MAX_QUEUE_NAME} bytes: {name[:40]!r}...")
        out[name] = None
    if len(out) > limit:
        raise ValueError(f"at most {limit} queues per probe, got {len(out)}")
    return tuple(out)


def build_request(
    queue: str,
    reply_queue: str,
    timeout: float,
    *,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> ProbeRequest:
    """The call for one agent queue, replying to ``reply_queue``."""
    msg_id = new_id()
    message: dict[str, Any] = {
        "method": PROBE_METHOD,
        "args": {},
        "version": PROBE_VERSION,
        "_msg_id": msg_id,
        "_reply_q": reply_queue,
        "_timeout": None,
        "_unique_id": new_id(),
        "_context_request_id": f"req-{uuid.uuid4()}",
    }
    envelope = {VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: json.dumps(message)}
    return ProbeRequest(
        queue=queue,
        msg_id=msg_id,
        body=json.dumps(envelope).encode("utf-8"),
        expiration_ms=expiration_ms(timeout),
    )


def inflate(body: bytes, compression: str | None, *, limit: int = MAX_REPLY_BYTES) -> bytes | None:
    """``body`` decompressed as kombu compressed it, or None (unknown scheme, corrupt, or more
    than ``limit`` bytes once inflated)."""
    if not compression:
        return body if len(body) <= limit else None
    kind = compression.strip().lower()
    engine: Any
    if kind in _ZLIB:
        engine = zlib.decompressobj()
    elif kind in _BZ2:
        engine = bz2.BZ2Decompressor()
    elif kind in _LZMA:
        engine = lzma.LZMADecompressor()
    else:
        return None
    try:
        out: bytes = engine.decompress(body, limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    return out if len(out) <= limit else None


def parse_reply(
    body: bytes | str,
    *,
    content_encoding: str | None = "utf-8",
    compression: str | None = None,
) -> ProbeReply | None:
    """The reply in an oslo reply delivery, or None if this is not one (never raises)."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    data = inflate(raw, compression)
    if data is None:
        return None
    try:
        top = json.loads(data.decode(_codec(content_encoding)))
        inner = _unwrap(top)
    except (ValueError, LookupError, RecursionError):
        return None
    if inner is None:
        return None
    msg_id = inner.get("_msg_id")
    if not isinstance(msg_id, str) or not msg_id:
        return None
    if not any(key in inner for key in ("result", "failure", "ending")):
        return None  # a request, not a reply
    return ProbeReply(
        msg_id=msg_id,
        failure=_failure_class(inner.get("failure")),
        ending=bool(inner.get("ending", True)),
    )


def _codec(content_encoding: str | None) -> str:
    name = (content_encoding or "utf-8").strip().lower()
    return "utf-8" if name in ("", "binary") else name


def _unwrap(top: Any) -> Mapping[str, Any] | None:
    if not isinstance(top, dict):
        return None
    if VERSION_KEY in top and MESSAGE_KEY in top:
        version, text = top[VERSION_KEY], top[MESSAGE_KEY]
        if not isinstance(version, str) or version.split(".", 1)[0] != "2":
            return None
        if not isinstance(text, str):
            return None
        inner = json.loads(text)
        return inner if isinstance(inner, dict) else None
    return top  # bare 1.0: the message itself


def _failure_class(failure: Any) -> str | None:
    """oslo sends the failure as a JSON string ``{"class": ..., "module": ..., ...}``."""
    if failure is None or failure == "":
        return None
    data = failure
    if isinstance(failure, str):
        try:
            data = json.loads(failure)
        except (ValueError, RecursionError):
            return "RemoteError"
    if isinstance(data, dict) and isinstance(data.get("class"), str) and data["class"]:
        return str(data["class"])[:100]
    return "RemoteError"


class PendingCalls:
    """The calls of one probe still waiting for a reply: msg id -> queue.

    Replies for msg ids we never sent, or already matched, are ignored (late replies from an
    earlier probe, a duplicate delivery, someone else's reply). Bounded by the probe's size.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}
        self._answered: dict[str, ProbeReply] = {}

    def expect(self, request: ProbeRequest) -> None:
        self._by_id[request.msg_id] = request.queue

    def forget(self, queue: str) -> None:
        """Stop waiting for ``queue`` (its request was returned or refused)."""
        for msg_id, name in list(self._by_id.items()):
            if name == queue:
                del self._by_id[msg_id]

    def match(self, reply: ProbeReply) -> str | None:
        """The queue ``reply`` answers for, the first time; None otherwise."""
        queue = self._by_id.pop(reply.msg_id, None)
        if queue is not None:
            self._answered[queue] = reply
        return queue

    @property
    def waiting(self) -> int:
        return len(self._by_id)

    def answered(self) -> dict[str, ProbeReply]:
        return dict(self._answered)

    def clear(self) -> None:
        self._by_id.clear()
        self._answered.clear()


__all__ = [
    "MAX_QUEUE_NAME",
    "MAX_REPLY_BYTES",
    "PROBE_METHOD",
    "PROBE_VERSION",
    "PendingCalls",
    "ProbeOutcome",
    "ProbeReply",
    "ProbeRequest",
    "ProbeResult",
    "build_request",
    "check_queue_names",
    "check_timeout",
    "expiration_ms",
    "inflate",
    "parse_reply",
    "reply_queue_name",
]
