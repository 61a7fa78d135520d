"""Guards at the AMQP edge: look at a raw delivery before kombu decodes it, measure lag.

* :class:`ScreenedConsumer`: a kombu Consumer that shows each raw delivery to a screen
  before kombu builds its Message. kombu's ``Message.__init__`` inflates a body whose
  ``compression`` header is set (``kombu.compression.decompress``) before any ``on_message``
  hook runs: the screen is the only place a compressed body can be refused unread.
* :class:`LagEstimator`: the consumer's lag from queue depth and consumption rate.
* :func:`safe_label`: a routing key or method name fit for a log line, or only its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import kombu.message
import kombu.messaging

from rpcdaemon.adapters.codec import RateLimitedLog
from rpcdaemon.core.events import ConsumerLag

logger = logging.getLogger(__name__)

_KombuMessage: Any = kombu.message.Message

LAG_INTERVAL = 5.0  # seconds between two measurements of our backlog
LAG_LOG_SECONDS = 10.0  # a backlog older than this is logged (once), and its end
W_LAGGING = "our consumer lags: %d message(s) waiting in %s, about %.1fs behind"
I_CAUGHT_UP = "our consumer caught up after %.0fs (at most %d message(s) were waiting)"


class LagEstimator:
    """Consumer lag from successive (queue depth, messages handled) samples. Pure."""

    def __init__(self, now: float, handled: int = 0) -> None:
        self._last_empty = now
        self._last_at = now
        self._last_handled = handled

    def update(self, ready: int, handled: int, now: float) -> ConsumerLag:
        """``ready``: messages waiting now; ``handled``: the running count we consumed."""
        elapsed = now - self._last_at
        rate = max(0, handled - self._last_handled) / elapsed if elapsed > 0 else 0.0
        self._last_at, self._last_handled = now, handled
        if ready <= 0:
            self._last_empty = now
            return ConsumerLag(0, 0.0)
        bound = max(0.0, now - self._last_empty)
        seconds = bound if rate <= 0 else min(bound, ready / rate)
        return ConsumerLag(ready, seconds)


class LagMonitor:
    """Measures our backlog every ``interval`` seconds on the consumer thread: a passive
    declare of each queue on a channel of its own (a failure there never touches the
    consuming channel), fed to a :class:`LagEstimator`. Logs once when the estimated lag
    reaches ``log_seconds`` and once when it is back under half that."""

    def __init__(
        self,
        queues: Sequence[str],
        *,
        interval: float = LAG_INTERVAL,
        log_seconds: float = LAG_LOG_SECONDS,
        on_lag: Callable[[ConsumerLag], None] | None = None,
    ) -> None:
        self._queues = tuple(queues)
        self._interval = interval
        self._log_seconds = log_seconds
        self._on_lag = on_lag
        self._ratelog = RateLimitedLog(logger)
        self._channel: Any = None
        self._estimator = LagEstimator(0.0)
        self._next = 0.0
        self._since: float | None = None  # when the logged lag began
        self._peak = 0
        self.last = ConsumerLag(0, 0.0)

    def start(self, now: float, handled: int) -> None:
        """A new connection: a new probe channel and a fresh estimate."""
        self._channel = None
        self._estimator = LagEstimator(now, handled)
        self._next = now + self._interval
        if self._since is not None:
            logger.info("consumer lag no longer measured: the connection was replaced")
        self._since = None
        self.last = ConsumerLag(0, 0.0)

    def tick(self, conn: Any, now: float, handled: int) -> ConsumerLag | None:
        """Measure if it is time; returns the measurement, if one was taken."""
        if now < self._next:
            return None
        self._next = now + self._interval
        ready = self._depth(conn)
        if ready is None:
            return None
        lag = self._estimator.update(ready, handled, now)
        self._report(lag, now)
        return lag

    def _depth(self, conn: Any) -> int | None:
        try:
            if self._channel is None:
                self._channel = conn.channel()
            return sum(
                int(self._channel.queue_declare(queue=name, passive=True)[1])
                for name in self._queues
            )
        except conn.channel_errors as exc:
            try:
                self._channel.close()
            except Exception:
                logger.debug("ignoring an error while closing the probe channel", exc_info=True)
            self._channel = None
            self._ratelog(
                logging.INFO, "depth", "cannot measure our backlog: %s", type(exc).__name__
            )
            return None

    def _report(self, lag: ConsumerLag, now: float) -> None:
        self.last = lag
        if self._since is None and lag.seconds >= self._log_seconds:
            self._since, self._peak = now, lag.messages
            logger.warning(W_LAGGING, lag.messages, ", ".join(self._queues), lag.seconds)
        elif self._since is not None:
            self._peak = max(self._peak, lag.messages)
            if lag.seconds < self._log_seconds / 2:
                logger.info(I_CAUGHT_UP, now - self._since, self._peak)
                self._since = None
        if self._on_lag is not None:
            try:
                self._on_lag(lag)
            except Exception:
                self._ratelog(logging.ERROR, "on_lag", "on_lag failed", exc_info=True)


def safe_label(text: object, limit: int = 100) -> str:
    """``text`` for a log line when it is short and plain (a routing key, a method name),
    else only its size: never an attacker's control characters or a long payload."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    if len(text) <= limit and text.isascii() and text.isprintable():
        return repr(text)
    return f"<{len(text)} characters>"


class ScreenedConsumer(kombu.messaging.Consumer):
    """A kombu Consumer that shows each raw delivery to ``screen`` before kombu turns it
    into a Message (and inflates a compressed body). ``screen`` returns True when it has
    refused (and acked) the delivery."""

    def __init__(self, *args: Any, screen: Callable[[Any], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._screen = screen

    def _receive_callback(self, message: Any) -> Any:
        if self._screen(message):
            return None
        return super()._receive_callback(message)  # type: ignore[no-untyped-call]


def raw_parts(raw: Any) -> tuple[int, dict[str, Any]]:
    """(body size in bytes, application headers) of a raw delivery, without decoding it."""
    if isinstance(raw, _KombuMessage):  # virtual transports: already built
        body, headers = raw.body, raw.headers
    else:  # py-amqp's basic_message.Message
        body = raw.body
        properties = raw.properties if isinstance(raw.properties, dict) else {}
        headers = properties.get("application_headers")
    size = len(body) if isinstance(body, bytes | bytearray | str) else 0
    return size, headers if isinstance(headers, dict) else {}


def ack_raw(raw: Any) -> None:
    if isinstance(raw, _KombuMessage):
        raw.ack()
    else:
        raw.channel.basic_ack(raw.delivery_tag)


__all__ = [
    "LAG_INTERVAL",
    "LAG_LOG_SECONDS",
    "LagEstimator",
    "LagMonitor",
    "ScreenedConsumer",
    "ack_raw",
    "raw_parts",
    "safe_label",
]


ACK_BATCH = 32
"""Deliveries acknowledged by one ``basic.ack`` with ``multiple`` (at most half the prefetch).
One ack per message cost a socket write each: at 10,000 agents the consumer spent half its
time in ``sendall``. Safe: deliveries are handled in order on one thread, so every delivery
up to the acknowledged tag has been handled; a lost connection redelivers at most a batch."""
ACK_DELAY = 0.05
"""Seconds an acknowledgement may wait for its batch to fill (the consumer also flushes as
soon as its queue is quiet that long): a broker restart redelivers at most that much."""


class AckBatcher:
    """Acknowledge handled deliveries in batches (``basic.ack`` with ``multiple``). Used by
    the consumer thread only; :meth:`flush` when the queue goes quiet and before a stop."""

    def __init__(self, *, prefetch: int, batch: int = ACK_BATCH, delay: float = ACK_DELAY) -> None:
        self._batch = max(1, min(batch, prefetch // 2))
        self._delay = delay
        self._last: Any = None  # the last handled delivery not acknowledged yet
        self._count = 0
        self._since = 0.0
        self.acks = 0  # basic.ack frames sent (for tests and benchmarks)

    def handled(self, message: Any, now: float) -> None:
        """``message`` (and every delivery before it) is done: acknowledge with the batch."""
        if self._last is None:
            self._since = now
        self._last = message
        self._count += 1
        if self._count >= self._batch:
            self.flush()

    def wait(self, longest: float, now: float) -> float:
        """How long the consumer may block for the next delivery: ``longest``, or less while
        an acknowledgement waits (it is sent when nothing comes meanwhile)."""
        if self._last is None:
            return longest
        return max(0.001, min(longest, self._since + self._delay - now))  # 0 = non-blocking

    def due(self, now: float) -> bool:
        """An acknowledgement has waited ``delay`` for its batch."""
        return self._last is not None and now - self._since >= self._delay

    def reset(self) -> None:
        """A new connection: forget what the old one delivered (the broker redelivers it;
        acknowledging its tag on the new channel would be a channel error)."""
        self._last, self._count = None, 0

    def flush(self) -> None:
        message, self._last, self._count = self._last, None, 0
        if message is not None:
            self.acks += 1
            message.ack(multiple=True)
