"""The AMQP consumer (kombu): private queues, passive exchanges, decode, hand over, ack.

Bus etiquette, as a neutron 29 bus needs it:

* We never consume Neutron's own queues (``q-reports-plugin``, ``notifications.info``): each
  :class:`QueueSpec` is one queue of ours, bound to the configured exchange(s). A topic
  exchange copies every message to every bound queue, so neutron-server loses nothing.
* We never reply to RPC calls (neutron-server does) and never publish anything.
* Exchanges are declared *passively*: Neutron owns them (``neutron`` is ``topic``,
  ``durable=False``; declaring it with other flags fails with 406). If one does not exist yet,
  we wait and retry, logging that once a minute.
* Our queue is durable with ``x-expires`` (or exclusive): RabbitMQ 4 refuses transient
  non-exclusive queues. The name is chosen once per :class:`BusConsumer` and reused on every
  reconnect, so a broker restart never leaves an orphan behind; a crashed daemon's queue
  expires after ``expires`` seconds; a clean :meth:`BusConsumer.stop` deletes it.
* Per-consumer prefetch (``basic.qos`` with ``global=False``). ``report_state`` calls carry an
  ``expiration`` (the agent's report_interval) that applies in our queue too: the handler
  must be fast (decode and enqueue), or heartbeats expire unread.
* Every delivery is acked after the handler returns, whatever happened: a message we cannot
  decode, or whose handler raises, is logged (rate-limited), counted and dropped, never
  redelivered forever. The log line names the reason and sizes, never message content.
* Hostile input is screened on the raw delivery, before kombu builds its Message: a body
  with a ``compression`` header is refused unread (kombu would inflate it first: a 785-byte
  bz2 body becomes gigabytes), and the size limit applies to the raw bytes. (kombu's
  in-process ``memory://`` transport inflates before any hook; it is for demos and tests.)
* Consumer lag is measured every ``lag_interval`` seconds: our queues' depth (a passive
  declare's ``message_count``) and the estimated age of the oldest waiting message (depth
  divided by the rate we consumed at, and never more than the time since the queues were
  last seen empty). oslo.messaging sets no AMQP timestamp and the agents' own ``time`` is
  their clock, not ours, so neither is used. Reported through ``on_lag``; logged once when
  lag starts and once when it ends.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import kombu.connection
import kombu.entity

from rpcdaemon.adapters.busguard import (
    LAG_INTERVAL,
    LAG_LOG_SECONDS,
    AckBatcher,
    LagMonitor,
    ScreenedConsumer,
    ack_raw,
    raw_parts,
    safe_label,
)
from rpcdaemon.adapters.codec import MAX_BODY, CodecStats, RateLimitedLog, Rejection, decode
from rpcdaemon.adapters.queues import QueueSpec, private_queue_name
from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.events import ConsumerLag

logger = logging.getLogger(__name__)

# kombu's annotations are partial: at this edge its objects are handled as Any.
Connection: Any = kombu.connection.Connection
Queue: Any = kombu.entity.Queue

W_CONNECTION_LOST = "AMQP consumption from %s interrupted: %s; reconnecting"
W_CANNOT_CONNECT = "cannot connect to AMQP broker %s: %s; retrying in %.1f s"
I_CONNECTED = "consuming from %s: %s"
S_STILL_DOWN = "still cannot reach AMQP broker %s: %s"
W_EXCHANGE_MISSING = (
    "exchange %r does not exist on %s yet (Neutron declares it when it starts); "
    "waiting for it (attempt %d)"
)

DRAIN_TIMEOUT = 1.0  # seconds: how often the consumer loop looks at the stop flag
CONNECT_TIMEOUT = 5.0
AMQP_HEARTBEAT = 20  # seconds; kombu sends/checks them from our drain loop
EXCHANGE_RETRY = 2.0  # seconds between passive declares while an exchange is missing
EXCHANGE_LOG_EVERY = 60.0
INITIAL_BACKOFF = 1.0


MEMORY_POLL = 0.05
"""Seconds between polls of kombu's ``memory://`` transport (the demo and tests)."""


class _ExchangeMissing(Exception):
    def __init__(self, exchange: str) -> None:
        super().__init__(exchange)
        self.exchange = exchange


class BusConsumer:
    """Consume ``queues`` from ``url`` until :meth:`stop`, reconnecting forever.

    ``url`` may list several brokers separated by ``;`` (tried in turn). Run :meth:`run` on a
    thread of its own; ``on_connection_change(True)`` fires once we consume again after every
    (re)connect, ``on_connection_change(False)`` on every loss. ``on_lag`` gets a
    :class:`~rpcdaemon.core.events.ConsumerLag` every ``lag_interval`` seconds while
    connected (on the consumer thread: it must be fast). Raw bodies over ``max_size`` bytes,
    and compressed ones, are refused before decoding.
    """

    def __init__(
        self,
        url: str,
        queues: Sequence[QueueSpec],
        *,
        prefetch: int = 100,
        reconnect_max_backoff: float = 30.0,
        stats: CodecStats | None = None,
        on_connection_change: Callable[[bool], None] | None = None,
        on_lag: Callable[[ConsumerLag], None] | None = None,
        lag_interval: float = LAG_INTERVAL,
        lag_log_seconds: float = LAG_LOG_SECONDS,
        max_size: int = MAX_BODY,
    ) -> None:
        self._urls = [u.strip() for u in url.split(";") if u.strip()] or [url]
        self._queues = tuple(queues)
        self._prefetch = prefetch
        self._max_backoff = max(reconnect_max_backoff, INITIAL_BACKOFF)
        self.stats = stats if stats is not None else CodecStats()
        self._on_change = on_connection_change
        self._stopping = threading.Event()
        self._connected = False
        self._ratelog = RateLimitedLog(logger)
        self._remind = RateLimitedLog(logger, interval=EXCHANGE_LOG_EVERY)
        self._down_reported = False
        self._exchange_tries = 0
        self._exchange_logged_at: float | None = None
        self._max_size = max_size
        self._handled = 0  # deliveries taken off our queues (the consumption rate)
        self.acks = AckBatcher(prefetch=prefetch)  # basic.ack with multiple: see busguard
        self._lag = LagMonitor(
            [q.name for q in self._queues],
            interval=lag_interval,
            log_seconds=lag_log_seconds,
            on_lag=on_lag,
        )

    @property
    def connected(self) -> bool:
        """True while we consume (connected, declared, bound)."""
        return self._connected

    def stop(self) -> None:
        """Thread-safe: ask :meth:`run` to delete our queues, close and return (about 1 s)."""
        self._stopping.set()

    def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            url = self._urls[attempt % len(self._urls)]
            conn = Connection(
                url,
                heartbeat=AMQP_HEARTBEAT,
                connect_timeout=CONNECT_TIMEOUT,
                # kombu's in-process transport polls every second when idle: that alone is a
                # second of lag (the demo, tests); real brokers push
                transport_options={"polling_interval": MEMORY_POLL}
                if url.startswith("memory://")
                else None,
            )
            where = conn.as_uri()  # password masked
            consumed = False
            try:
                conn.connect()
                if not self._declare(conn, where):
                    break  # stopped while waiting for an exchange
                consumers = self._consume(conn)
                consumed = True
                attempt = 0
                self._set_connected(True)
                self._down_reported = False
                logger.info(I_CONNECTED, where, ", ".join(q.name for q in self._queues))
                self._drain(conn)
                self._cleanup(conn, consumers)
            except Exception as exc:  # any failure: drop this connection, back off, retry
                if consumed:
                    self._set_connected(False)
                    logger.warning(W_CONNECTION_LOST, where, describe_error(exc))
                    self._down_reported = True
                    delay = INITIAL_BACKOFF * random.uniform(0.5, 1.0)
                else:
                    delay = self._backoff(attempt)
                    if not self._down_reported:
                        self._down_reported = True
                        logger.warning(W_CANNOT_CONNECT, where, describe_error(exc), delay)
                    else:  # already said so: a reminder a minute, details at DEBUG
                        logger.debug(W_CANNOT_CONNECT, where, describe_error(exc), delay)
                        self._remind(logging.INFO, "down", S_STILL_DOWN, where, describe_error(exc))
                attempt += 1
                self._stopping.wait(delay)
            finally:
                if self._connected:
                    self._set_connected(False)
                _release(conn)
        logger.debug("AMQP consumer stopped")

    # -- one connection ----------------------------------------------------------------------

    def _declare(self, conn: Any, where: str) -> bool:
        """Wait until every exchange exists, then declare and bind our queues.
        Returns False if stopped while waiting."""
        exchanges = sorted({b.exchange for q in self._queues for b in q.bindings})
        while not self._stopping.is_set():
            missing = self._first_missing(conn, exchanges)
            if missing is None:
                break
            self._exchange_tries += 1
            now = time.monotonic()
            if (
                self._exchange_logged_at is None
                or now - self._exchange_logged_at >= EXCHANGE_LOG_EVERY
            ):
                self._exchange_logged_at = now
                logger.warning(W_EXCHANGE_MISSING, missing, where, self._exchange_tries)
            self._stopping.wait(EXCHANGE_RETRY)
        else:
            return False
        if self._exchange_tries:
            logger.info("exchange(s) %s now exist on %s", ", ".join(exchanges), where)
            self._exchange_tries = 0
            self._exchange_logged_at = None
        channel = conn.default_channel
        for spec in self._queues:
            if spec.exclusive:
                channel.queue_declare(
                    queue=spec.name, durable=False, exclusive=True, auto_delete=False
                )
            else:
                channel.queue_declare(
                    queue=spec.name,
                    durable=True,
                    exclusive=False,
                    auto_delete=False,
                    arguments={"x-expires": max(int(spec.expires * 1000), 1000)},
                )
            for binding in spec.bindings:
                channel.queue_bind(
                    queue=spec.name, exchange=binding.exchange, routing_key=binding.routing_key
                )
        return True

    @staticmethod
    def _first_missing(conn: Any, exchanges: Sequence[str]) -> str | None:
        for name in exchanges:
            if not name:
                continue  # the default exchange always exists
            channel = conn.channel()  # a failed passive declare closes its channel
            try:
                channel.exchange_declare(exchange=name, type="topic", passive=True)
            except conn.channel_errors as exc:
                if getattr(exc, "code", None) == 404 or "NOT_FOUND" in str(exc):
                    return name
                raise
            finally:
                _release(channel)
        return None

    def _consume(self, conn: Any) -> list[Any]:
        channel = conn.default_channel
        consumers = []
        for spec in self._queues:
            consumer: Any = ScreenedConsumer(
                channel,
                queues=[Queue(spec.name, no_declare=True)],
                auto_declare=False,
                on_message=self._on_message_for(spec),
                screen=self._screen_for(spec),
            )
            consumer.qos(prefetch_count=self._prefetch, apply_global=False)  # per consumer
            consumer.consume()
            consumers.append(consumer)
        return consumers

    def _drain(self, conn: Any) -> None:
        self._lag.start(time.monotonic(), self._handled)
        self.acks.reset()  # tags of an earlier connection mean nothing on this one
        while not self._stopping.is_set():
            try:
                conn.drain_events(timeout=self.acks.wait(DRAIN_TIMEOUT, time.monotonic()))
            except TimeoutError:
                self.acks.flush()  # nothing more came: acknowledge what was handled
            if self.acks.due(time.monotonic()):
                self.acks.flush()
            conn.heartbeat_check()  # time-based: cheap to call often, raises if the peer is gone
            self._lag.tick(conn, time.monotonic(), self._handled)

    @property
    def lag(self) -> ConsumerLag:
        """The last lag measurement (0 messages, 0 s before the first)."""
        return self._lag.last

    def _cleanup(self, conn: Any, consumers: Sequence[Any]) -> None:
        """Clean stop: cancel and delete our queues (best effort; x-expires is the net)."""
        try:
            self.acks.flush()
            for consumer in consumers:
                consumer.cancel()
            channel = conn.default_channel
            for spec in self._queues:
                channel.queue_delete(queue=spec.name)
            logger.info("deleted queue(s) %s", ", ".join(q.name for q in self._queues))
        except Exception as exc:  # the broker may be gone: the queue will expire
            logger.warning("could not delete our queue(s) on stop: %s", describe_error(exc))

    # -- messages ----------------------------------------------------------------------------

    def _on_message_for(self, spec: QueueSpec) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            self._handled += 1
            try:
                self._handle(spec, message)
            finally:
                self.acks.handled(message, time.monotonic())

        return on_message

    def _screen_for(self, spec: QueueSpec) -> Callable[[Any], bool]:
        def screen(raw: Any) -> bool:
            """Refuse (count, log, ack) a compressed or oversized raw delivery."""
            try:
                size, headers = raw_parts(raw)
                if "compression" in headers:
                    reason = "compressed"
                    detail = f"a compressed body of {size} bytes: refused unread"
                elif size > self._max_size:
                    reason = "too_large"
                    detail = f"body of {size} bytes exceeds the {self._max_size} byte limit"
                else:
                    return False
                info = getattr(raw, "delivery_info", None) or {}
            except Exception:  # an odd delivery: let kombu and the codec judge it
                return False
            self._handled += 1
            self.stats.record_rejected(reason)
            self._ratelog(
                logging.WARNING,
                f"reject:{reason}",
                "dropped a message from %s (routing key %s): %s: %s",
                spec.name,
                safe_label(info.get("routing_key")),
                reason,
                detail,
            )
            ack_raw(raw)
            return True

        return screen

    def _handle(self, spec: QueueSpec, message: Any) -> None:
        info = message.delivery_info or {}
        decoded = decode(
            message.body,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            exchange=str(info.get("exchange", "")),
            routing_key=str(info.get("routing_key", "")),
            properties=message.properties or {},
            received_at=time.monotonic(),
            max_size=self._max_size,
        )
        if isinstance(decoded, Rejection):
            self.stats.record_rejected(decoded.reason)
            self._ratelog(
                logging.WARNING,
                f"reject:{decoded.reason}",
                "dropped a message from %s (routing key %s): %s: %s",
                spec.name,
                safe_label(info.get("routing_key")),
                decoded.reason,
                decoded.detail,
            )
            return
        self.stats.record_decoded()
        try:
            spec.handler(decoded)
        except Exception:  # isolate the handler: log, count, ack anyway
            self.stats.record_handler_error()
            self._ratelog(
                logging.ERROR,
                f"handler:{spec.name}",
                "handler of %s failed on %s %s",
                spec.name,
                decoded.kind.value,
                safe_label(decoded.method or decoded.event_type),
                exc_info=True,
            )

    # -- helpers -----------------------------------------------------------------------------

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        if self._on_change is not None:
            try:
                self._on_change(value)
            except Exception:
                logger.exception("on_connection_change(%s) failed", value)

    def _backoff(self, attempt: int) -> float:
        return Backoff(INITIAL_BACKOFF, self._max_backoff).delay(attempt, jitter=random.random())


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of a broker error, for a log line (the probe's too)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _release(resource: Any) -> None:
    try:
        resource.close()
    except Exception:
        logger.debug("ignoring an error while closing %r", resource, exc_info=True)


__all__ = ["BusConsumer", "QueueSpec", "private_queue_name"]
