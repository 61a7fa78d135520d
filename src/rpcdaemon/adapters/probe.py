"""Active confirmation: is anything consuming an agent's own RPC queue? (issue 12)

An agent process consumes ``<topic>.<host>`` on the ``neutron`` exchange. We send it an
oslo.messaging RPC *call* of a method that cannot exist (:mod:`probewire` says what and why);
a live process answers at once (``NoSuchMethod`` is an answer), a dead host cannot.

Which queue to probe for which agent: :func:`rpcdaemon.core.detection.probe_queue`.

The wire, as oslo.messaging's rabbit driver does it (impl_rabbit.py, amqpdriver.py):

* requests go to the control exchange, which we never declare: a passive declare checks it
  before every probe (it is also our liveness check of an idle connection); missing = error;
* each request carries ``expiration`` = the probe timeout (ms, as oslo's ``topic_send`` sets
  its call timeout), so a request left in a dead host's queue is dropped, never delivered
  to the host when it comes back; ``delivery_mode`` 1: a probe must not survive a restart;
* ``mandatory`` + publisher confirms: a request no queue is bound for comes back
  (``basic.return`` precedes the confirm), so "nothing consumes: no queue" is told apart
  from "a queue, nobody answering"; a nack (e.g. a full queue rejecting publishes) counts
  as unanswered too; no confirm in time is OUR trouble;
* the agent replies with ``direct_send``: to the default exchange (passively, ``mandatory``)
  with our reply queue's name as the routing key. If that queue is missing, the agent's RPC
  worker retries for ``kombu_missing_consumer_retry_timeout`` (60 s) and then logs an ERROR,
  so our reply queue outlives our connection: durable, ``x-expires``, one name per prober
  reused on every reconnect (``reply_`` + ours: operator policies that exclude ``^reply_``
  from mirroring match it), deleted by :meth:`RpcProber.close`.

Connections: one, opened on the first probe and again after a loss (never in the background,
no thread of ours). AMQP heartbeats are off (nothing would send them between probes); TCP
keepalive reaps a dead peer and the passive declare finds a stale connection before a
probe, which then reconnects once. Every wait is bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
import amqp.exceptions
import kombu.connection

from rpcdaemon.adapters.amqp import describe_error
from rpcdaemon.adapters.probewire import (
    PendingCalls,
    ProbeOutcome,
    ProbeRequest,
    ProbeResult,
    build_request,
    check_queue_names,
    check_timeout,
    parse_reply,
    reply_queue_name,
)

logger = logging.getLogger(__name__)

# kombu's and py-amqp's annotations are partial: at this edge their objects are Any.
Connection: Any = kombu.connection.Connection

CONNECT_TIMEOUT = 5.0  # seconds per broker: TCP + AMQP handshake, and any one broker round trip
MAX_QUEUES = 64  # per probe: a host runs a handful of agents; a probe covers a few hosts
MAX_TIMEOUT = 300.0
REPLY_QUEUE_EXPIRES = 300.0  # seconds an unused reply queue of ours lingers (x-expires)


class ProbeError(Exception):
    """OUR trouble: we could not connect, declare our reply queue, find the exchange, or
    publish. Never means "unanswered"."""


class RpcProber:
    """Probe agent queues on ``url`` (several brokers may be listed, separated by ``;``).

    Meant for ONE caller thread (the runtime runs it on a worker thread); a lock makes a
    concurrent :meth:`close` wait for the probe in progress. A probe waits ``timeout``
    seconds for answers after its requests are published; connecting (``connect_timeout``
    per broker tried), checking the exchange and publishing are bounded by
    ``connect_timeout`` each and, when they fail, raise ProbeError.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "neutron",
        connect_timeout: float = CONNECT_TIMEOUT,
        max_queues: int = MAX_QUEUES,
        reply_queue_expires: float = REPLY_QUEUE_EXPIRES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not exchange:
            raise ValueError("the probe needs a named exchange (neutron's control exchange)")
        if not 0 < connect_timeout <= MAX_TIMEOUT or max_queues < 1:
            raise ValueError("connect_timeout must be in (0, 300] s and max_queues >= 1")
        self._urls = [u.strip() for u in url.split(";") if u.strip()] or [url]
        self._exchange = exchange
        self._connect_timeout = connect_timeout
        self._max_queues = max_queues
        self._expires_ms = max(int(reply_queue_expires * 1000), 1000)
        self._clock = clock
        self._reply_queue = reply_queue_name()
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Any = None
        self._channel: Any = None
        self._where = ""
        self._pending = PendingCalls()
        self._answered_at: dict[str, float] = {}
        self._returned: set[str] = set()
        self.ignored_replies = 0  # late, duplicate, foreign or unreadable replies (a counter)

    @property
    def reply_queue(self) -> str:
        return self._reply_queue

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def __enter__(self) -> RpcProber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self, queues: Sequence[str], timeout: float) -> dict[str, bool]:
        """Send one call to every queue at once, wait up to ``timeout`` in all; True =
        answered. Raises ProbeError when we could not even send (never reported as
        unanswered), ValueError for bad arguments."""
        return {q: r.answered for q, r in self.probe_detailed(queues, timeout).items()}

    def probe_outcomes(self, queues: Sequence[str], timeout: float) -> dict[str, str]:
        """:meth:`probe_detailed` as plain outcome names (``answered``, ``silent``,
        ``no_consumer``, ``unroutable``, ``refused``): what the runtime hands the detector."""
        return {q: r.outcome.value for q, r in self.probe_detailed(queues, timeout).items()}

    def probe_detailed(self, queues: Sequence[str], timeout: float) -> dict[str, ProbeResult]:
        """Like :meth:`probe`, with each queue's :class:`ProbeOutcome`. The wait ends early
        once every request is answered, returned or refused."""
        names = check_queue_names(queues, limit=self._max_queues)
        check_timeout(timeout, MAX_TIMEOUT)
        if not names:
            return {}
        with self._lock:
            if self._closed:
                raise ProbeError("the prober is closed")
            self._ready()
            try:
                return self._call(names, timeout)
            except ProbeError:
                self._drop()
                raise
            except Exception as exc:  # the connection or channel broke mid-probe
                where = self._where
                self._drop()
                raise ProbeError(f"probe via {where} failed: {describe_error(exc)}") from exc
            finally:
                self._pending.clear()
                self._answered_at.clear()
                self._returned.clear()

    def close(self) -> None:
        """Delete our reply queue (best effort; ``x-expires`` is the net) and disconnect."""
        with self._lock:
            self._closed = True
            if self._conn is None:
                return
            try:
                raw = self._conn.connection
                raw.transport.sock.settimeout(self._connect_timeout)  # we are closing anyway
                self._channel.queue_delete(queue=self._reply_queue)
                raw.close()
            except Exception as exc:  # the broker may be gone: the queue will expire
                logger.debug("could not delete reply queue %s: %s", self._reply_queue, exc)
            self._drop()

    # -- connection --------------------------------------------------------------------------

    def _ready(self) -> None:
        """A connection whose exchange check just passed, or ProbeError."""
        if self._conn is not None:
            try:
                self._check_exchange()
                return
            except ProbeError:
                self._drop()
                raise
            except Exception as exc:  # lost while idle: once more, on a fresh connection
                logger.info("probe connection to %s lost (%s); reconnecting", self._where, exc)
                self._drop()
        self._connect()
        try:
            self._check_exchange()
        except Exception as exc:
            where = self._where
            self._drop()
            if isinstance(exc, ProbeError):
                raise
            raise ProbeError(f"cannot check exchange {self._exchange!r} on {where}") from exc

    def _check_exchange(self) -> None:
        try:
            with self._conn.connection.transport.having_timeout(self._connect_timeout):
                self._channel.exchange_declare(exchange=self._exchange, type="topic", passive=True)
        except amqp.exceptions.NotFound as exc:  # 404: the channel is closed now
            raise ProbeError(
                f"exchange {self._exchange!r} does not exist on {self._where}"
            ) from exc

    def _connect(self) -> None:
        errors = []
        for url in self._urls:
            conn = Connection(url, heartbeat=0, connect_timeout=self._connect_timeout)
            where = conn.as_uri()  # password masked
            try:
                conn.ensure_connection(max_retries=0)  # no kombu retry loop: one try each
                if conn.transport.driver_type != "amqp":
                    raise ProbeError(f"{where}: an RPC probe needs an AMQP broker")
                channel = self._open(conn)
            except ProbeError:
                _release(conn)
                raise
            except Exception as exc:  # this broker failed: try the next one
                _release(conn)
                errors.append(f"{where}: {describe_error(exc)}")
                continue
            self._conn, self._channel, self._where = conn, channel, where
            self._urls = [url, *(u for u in self._urls if u != url)]  # sticky: first next time
            logger.info("probing via %s, replies to %s", where, self._reply_queue)
            return
        raise ProbeError("cannot connect to an AMQP broker: " + "; ".join(errors))

    def _open(self, conn: Any) -> Any:
        """A confirming channel that consumes our reply queue (a fresh name if the old one
        cannot be declared: its home node is down, or someone made it different)."""
        try:
            return self._open_channel(conn)
        except amqp.exceptions.ChannelError as exc:
            old, self._reply_queue = self._reply_queue, reply_queue_name()
            logger.warning(
                "cannot declare reply queue %s (%s); using %s", old, exc, self._reply_queue
            )
            return self._open_channel(conn)

    def _open_channel(self, conn: Any) -> Any:
        raw = conn.connection
        with raw.transport.having_timeout(self._connect_timeout):
            channel = raw.channel()
            channel.confirm_select()
            channel.events["basic_return"].add(self._on_return)
            channel.queue_declare(
                queue=self._reply_queue,
                durable=True,
                exclusive=False,
                auto_delete=False,
                arguments={"x-expires": self._expires_ms},
            )
            channel.basic_consume(queue=self._reply_queue, no_ack=True, callback=self._on_reply)
        return channel

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            _release(conn)

    # -- one probe ---------------------------------------------------------------------------

    def _call(self, names: tuple[str, ...], timeout: float) -> dict[str, ProbeResult]:
        """Publish every request (confirmed within ``connect_timeout`` in all, or ProbeError:
        a slow broker must never look like a silent agent), then give each one ``timeout``,
        its lifetime in the queue, to be answered."""
        started = self._clock()
        sent_by = started + self._connect_timeout
        refused: set[str] = set()
        for name in names:
            request = build_request(name, self._reply_queue, timeout)
            self._pending.expect(request)
            if not self._publish(request, sent_by - self._clock()):
                refused.add(name)
            if name in refused or name in self._returned:
                self._pending.forget(name)
        deadline = self._clock() + timeout
        raw = self._conn.connection
        while self._pending.waiting:
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            try:
                raw.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        ended = self._clock()
        answered = self._pending.answered()
        results = {}
        for name in names:
            if name in answered:
                outcome, seconds = ProbeOutcome.ANSWERED, self._answered_at[name] - started
            elif name in refused:
                outcome, seconds = ProbeOutcome.REFUSED, ended - started
            elif name in self._returned:
                outcome, seconds = ProbeOutcome.UNROUTABLE, ended - started
            elif self._consumers(name) == 0:
                outcome, seconds = ProbeOutcome.NO_CONSUMER, ended - started
            else:
                outcome, seconds = ProbeOutcome.SILENT, ended - started
            failure = answered[name].failure if name in answered else None
            results[name] = ProbeResult(name, outcome, max(seconds, 0.0), failure)
        logger.debug(
            "probe of %d queue(s) in %.3f s: %s",
            len(names),
            ended - started,
            ", ".join(f"{r.queue}={r.outcome.value}" for r in results.values()),
        )
        return results

    def _consumers(self, name: str) -> int | None:
        """Consumers the broker counts on queue ``name`` now (a passive declare), None if
        unknown. Why it matters: a process that exits (a crash, a restart of every agent of a
        host by systemd or an upgrade) has its sockets closed by a live kernel, and the broker
        drops its consumers at once; a powered-off, frozen or cut-off host keeps them until
        the broker's heartbeat timeout (about 60 s). Silent with 0 consumers is a host that is
        up: never a node death."""
        try:
            with self._conn.connection.transport.having_timeout(self._connect_timeout):
                declared = self._channel.queue_declare(queue=name, passive=True)
        except amqp.exceptions.NotFound:  # deleted meanwhile: the channel is closed now
            self._channel = self._open_channel(self._conn)
            return 0
        return int(declared.consumer_count)

    def _publish(self, request: ProbeRequest, budget: float) -> bool:
        """Publish and wait for the broker's confirm; False if it nacked the request."""
        if budget <= 0:
            raise ProbeError(f"publishing the probe took over {self._connect_timeout:g} s")
        message = amqp.Message(
            request.body,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=1,
            priority=0,
            expiration=str(request.expiration_ms),
            application_headers={},
        )
        try:
            self._channel.basic_publish_confirm(
                message,
                exchange=self._exchange,
                routing_key=request.queue,
                mandatory=True,
                timeout=budget,
                confirm_timeout=budget,
            )
        except amqp.exceptions.MessageNacked:
            return False
        except TimeoutError as exc:
            raise ProbeError(
                f"the broker did not confirm a probe request in time ({self._where})"
            ) from exc
        return True

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        """``basic.return`` of a mandatory request: no queue is bound for its routing key."""
        self._returned.add(routing_key)

    def _on_reply(self, message: Any) -> None:
        props = message.properties if isinstance(message.properties, dict) else {}
        headers = props.get("application_headers")
        compression = headers.get("compression") if isinstance(headers, dict) else None
        reply = parse_reply(
            message.body,
            content_encoding=props.get("content_encoding"),
            compression=compression if isinstance(compression, str) else None,
        )
        queue = self._pending.match(reply) if reply is not None else None
        if queue is None:
            self.ignored_replies += 1
            logger.debug("ignored a message on %s (late, foreign or unreadable)", self._reply_queue)
            return
        self._answered_at[queue] = self._clock()


def _release(conn: Any) -> None:
    """Free a connection without the close handshake (a dead peer would never answer it)."""
    try:
        conn.collect()
    except Exception:
        logger.debug("ignoring an error while dropping %r", conn, exc_info=True)


__all__ = ["ProbeError", "ProbeOutcome", "ProbeResult", "RpcProber", "reply_queue_name"]
