"""RpcProber against the real RabbitMQ, answered by a responder that consumes and replies the
way an oslo.messaging RPC server does (impl_rabbit.py / amqpdriver.py / rpc/server.py).

oslo.messaging is not installed in this venv: the peer suite (tests/peer) probes the real
neutron venv's agents. Fresh exchanges and queues per test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import ChannelError
from tests.tcpproxy import TcpProxy

from rpcdaemon.adapters.probe import ProbeError, ProbeOutcome, RpcProber
from rpcdaemon.adapters.probewire import PROBE_METHOD

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

TIMEOUT = 1.0


class Responder:
    """An oslo-style RPC server for ``topic`` with ``server``: it declares ``topic`` and
    ``topic.server`` on the exchange (and the fanout exchange and queue, as
    ``AMQPDriverBase.listen`` does), acks each request on receipt, dispatches it to an endpoint
    with no such method and replies ``NoSuchMethod`` the way ``_send_reply`` / ``direct_send``
    do: to the default exchange, routing key = ``_reply_q``, ``mandatory``, no declare."""

    def __init__(
        self,
        url: str,
        exchange: str,
        topic: str,
        server: str,
        *,
        delay: float = 0.0,
        compression: str | None = None,
    ) -> None:
        self.url, self.exchange, self.topic, self.server = url, exchange, topic, server
        self.delay, self.compression = delay, compression
        self.received: list[dict[str, Any]] = []  # {"properties": ..., "message": inner dict}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Responder:
        self._thread.start()
        assert self.ready.wait(10), "responder did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with Connection(self.url) as conn:
                channel = conn.channel()
                ex = Exchange(self.exchange, type="topic", durable=False, auto_delete=False)
                fanout = Exchange(f"{self.topic}_fanout", type="fanout", auto_delete=True)
                queues = [
                    Queue(self.topic, ex, routing_key=self.topic, durable=False),
                    Queue(
                        f"{self.topic}.{self.server}",
                        ex,
                        routing_key=f"{self.topic}.{self.server}",
                        durable=False,
                    ),
                    Queue(f"{self.topic}_fanout_{uuid.uuid4().hex}", fanout, durable=False),
                ]
                producer = Producer(conn.channel())
                with conn.Consumer(queues, channel=channel, callbacks=[self._on_request(producer)]):
                    self.ready.set()
                    while not self._stop.is_set():
                        try:
                            conn.drain_events(timeout=0.1)
                        except TimeoutError:
                            pass
                for q in queues:
                    q(conn.channel()).delete()
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self.ready.set()

    def _on_request(self, producer: Any) -> Any:
        def handle(body: Any, message: Any) -> None:
            message.ack()  # oslo acks before dispatching
            inner = json.loads(body["oslo.message"]) if "oslo.message" in body else body
            self.received.append({"properties": dict(message.properties), "message": inner})
            if self.delay:
                time.sleep(self.delay)
            try:
                raise AttributeError(f"Endpoint does not support RPC method {inner['method']}")
            except AttributeError as exc:
                failure = {
                    "class": "NoSuchMethod",
                    "module": "oslo_messaging.rpc.dispatcher",
                    "message": str(exc),
                    "tb": traceback.format_exception(exc),
                    "args": [str(exc)],
                    "kwargs": {},
                }
            reply = {
                "result": None,
                "failure": json.dumps(failure),
                "ending": True,
                "_msg_id": inner["_msg_id"],
                "_unique_id": uuid.uuid4().hex,
            }
            envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(reply)}
            producer.publish(
                envelope,
                exchange=Exchange("", type="direct", passive=True),
                routing_key=inner["_reply_q"],
                mandatory=True,
                declare=[],
                compression=self.compression,
            )

        return handle


def declare_queue(url: str, exchange: str, name: str) -> None:
    """A queue bound to ``exchange`` that nobody consumes (an agent host that is gone)."""
    with Connection(url) as conn:
        Queue(name, Exchange(exchange, type="topic", durable=False), routing_key=name)(
            conn.channel()
        ).declare()


def get_one(url: str, name: str) -> Any:
    with Connection(url) as conn:
        return Queue(name)(conn.channel()).get(no_ack=True)


def message_count(url: str, name: str) -> int:
    with Connection(url) as conn:
        return int(conn.channel().queue_declare(queue=name, passive=True).message_count)


def delete_queue(url: str, name: str) -> None:
    with Connection(url) as conn:
        conn.channel().queue_delete(queue=name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prober(amqp_url: str, exchange_name: str) -> Iterator[RpcProber]:
    p = RpcProber(amqp_url, exchange=exchange_name, connect_timeout=3.0)
    yield p
    p.close()


@pytest.fixture
def silent_queue(amqp_url: str, exchange_name: str) -> Iterator[str]:
    name = f"l3_agent.gone-{uuid.uuid4().hex[:6]}"
    declare_queue(amqp_url, exchange_name, name)
    yield name
    delete_queue(amqp_url, name)


def test_a_live_agent_answers_at_once(amqp_url: str, exchange_name: str, prober: RpcProber) -> None:
    with Responder(amqp_url, exchange_name, "l3_agent", "hostA") as agent:
        started = time.monotonic()
        assert prober.probe(["l3_agent.hostA"], TIMEOUT) == {"l3_agent.hostA": True}
        assert time.monotonic() - started < TIMEOUT / 2
        detail = prober.probe_detailed(["l3_agent.hostA"], TIMEOUT)["l3_agent.hostA"]
    assert agent.error is None
    assert detail.outcome is ProbeOutcome.ANSWERED and detail.failure == "NoSuchMethod"
    request = agent.received[-1]
    inner, props = request["message"], request["properties"]
    assert inner["method"] == PROBE_METHOD and inner["version"] == "1.0"
    assert inner["args"] == {} and "namespace" not in inner and inner["_timeout"] is None
    assert inner["_reply_q"] == prober.reply_queue and inner["_reply_q"].startswith("reply_")
    assert props["expiration"] == str(int(TIMEOUT * 1000))
    assert props["content_type"] == "application/json"


def test_a_queue_nobody_consumes_is_unanswered_for_the_whole_timeout(
    amqp_url: str, prober: RpcProber, silent_queue: str
) -> None:
    started = time.monotonic()
    result = prober.probe_detailed([silent_queue], TIMEOUT)[silent_queue]
    took = time.monotonic() - started
    # no consumer: the process is gone and a live kernel closed its connection
    assert result.outcome is ProbeOutcome.NO_CONSUMER and not result.answered
    assert TIMEOUT * 0.9 <= took < TIMEOUT + 2
    # the request expired in the queue: a host coming back later never sees it
    deadline = time.monotonic() + 5
    while message_count(amqp_url, silent_queue) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert message_count(amqp_url, silent_queue) == 0


def test_the_request_left_in_a_dead_hosts_queue_carries_its_expiration(
    amqp_url: str, prober: RpcProber, silent_queue: str
) -> None:
    timeout = 3.0
    out: dict[str, bool] = {}
    worker = threading.Thread(target=lambda: out.update(prober.probe([silent_queue], timeout)))
    worker.start()
    message = None
    deadline = time.monotonic() + timeout
    while message is None and time.monotonic() < deadline:
        message = get_one(amqp_url, silent_queue)
        time.sleep(0.05)
    worker.join(timeout + 5)
    assert message is not None, "the probe request never reached the queue"
    assert message.properties["expiration"] == "3000"
    assert message.properties["delivery_mode"] == 1
    envelope = json.loads(message.body)
    assert envelope["oslo.version"] == "2.0"
    assert json.loads(envelope["oslo.message"])["method"] == PROBE_METHOD
    assert out == {silent_queue: False}


def test_a_queue_that_does_not_exist_is_unanswered_and_known_at_once(
    prober: RpcProber,
) -> None:
    started = time.monotonic()
    result = prober.probe_detailed(["l3_agent.nowhere"], TIMEOUT)["l3_agent.nowhere"]
    assert result.outcome is ProbeOutcome.UNROUTABLE and not result.answered
    assert time.monotonic() - started < TIMEOUT / 2  # nothing can answer a dropped request
    assert prober.probe(["l3_agent.nowhere"], TIMEOUT) == {"l3_agent.nowhere": False}


def test_a_mixed_batch(
    amqp_url: str, exchange_name: str, prober: RpcProber, silent_queue: str
) -> None:
    queues = ["l3_agent.hostA", silent_queue, "dhcp_agent.nowhere", "dhcp_agent.hostA"]
    with (
        Responder(amqp_url, exchange_name, "l3_agent", "hostA"),
        Responder(amqp_url, exchange_name, "dhcp_agent", "hostA", compression="zlib"),
    ):
        started = time.monotonic()
        result = prober.probe_detailed(queues, TIMEOUT)
        took = time.monotonic() - started
    assert {q: r.outcome for q, r in result.items()} == {
        "l3_agent.hostA": ProbeOutcome.ANSWERED,
        silent_queue: ProbeOutcome.NO_CONSUMER,
        "dhcp_agent.nowhere": ProbeOutcome.UNROUTABLE,
        "dhcp_agent.hostA": ProbeOutcome.ANSWERED,  # a zlib-compressed reply
    }
    assert TIMEOUT * 0.9 <= took < TIMEOUT + 2
    assert result["l3_agent.hostA"].seconds < TIMEOUT / 2


def test_late_and_foreign_replies_are_ignored(
    amqp_url: str, exchange_name: str, prober: RpcProber
) -> None:
    with Responder(amqp_url, exchange_name, "l3_agent", "slow", delay=1.0):
        assert prober.probe(["l3_agent.slow"], 0.3) == {"l3_agent.slow": False}
        time.sleep(1.0)  # its reply arrives after the probe gave up
        with Connection(amqp_url) as conn:
            producer = Producer(conn.channel())
            for body in (b"not json", {"oslo.version": "2.0", "oslo.message": '{"_msg_id": "x"}'}):
                producer.publish(body, exchange="", routing_key=prober.reply_queue)
        with Responder(amqp_url, exchange_name, "l3_agent", "hostA"):
            assert prober.probe(["l3_agent.hostA"], TIMEOUT) == {"l3_agent.hostA": True}
    assert prober.ignored_replies >= 3  # the late reply, the garbage, the foreign msg id


def test_wrong_broker_address_is_our_error(exchange_name: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    with RpcProber(url, exchange=exchange_name, connect_timeout=2.0) as p:
        started = time.monotonic()
        with pytest.raises(ProbeError, match="cannot connect"):
            p.probe(["l3_agent.hostA"], TIMEOUT)
        assert time.monotonic() - started < 3.0
        assert not p.connected


def test_a_missing_exchange_is_our_error_and_is_never_declared(amqp_url: str) -> None:
    missing = f"rpcdtest-missing-{uuid.uuid4().hex[:8]}"
    with RpcProber(amqp_url, exchange=missing) as p:
        with pytest.raises(ProbeError, match="does not exist"):
            p.probe(["l3_agent.hostA"], TIMEOUT)
    with Connection(amqp_url) as conn, pytest.raises(ChannelError):
        conn.channel().exchange_declare(exchange=missing, type="topic", passive=True)


def test_failover_list_uses_the_broker_that_answers(
    amqp_url: str, exchange_name: str, silent_queue: str
) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    with RpcProber(f"{dead};{amqp_url}", exchange=exchange_name, connect_timeout=2.0) as p:
        assert p.probe([silent_queue], 0.2) == {silent_queue: False}
        assert p.connected


def test_reconnects_lazily_and_a_cut_mid_probe_is_our_error(
    amqp_url: str, exchange_name: str, silent_queue: str
) -> None:
    host, port = amqp_url.split("@", 1)[1].split("/", 1)[0].split(":")
    with (
        TcpProxy((host, int(port))) as proxy,
        RpcProber(proxy.url(), exchange=exchange_name, connect_timeout=2.0) as p,
        Responder(amqp_url, exchange_name, "l3_agent", "hostA"),
    ):
        assert p.probe(["l3_agent.hostA"], TIMEOUT) == {"l3_agent.hostA": True}
        reply_queue = p.reply_queue
        proxy.cut()
        proxy.restore()  # the connection died while idle: the next probe reconnects
        assert p.probe(["l3_agent.hostA"], TIMEOUT) == {"l3_agent.hostA": True}
        assert p.reply_queue == reply_queue  # the same reply queue, redeclared
        threading.Timer(0.3, proxy.cut).start()
        with pytest.raises(ProbeError):
            p.probe([silent_queue], 2.0)  # never "unanswered" because of our trouble
        assert not p.connected
        proxy.restore()
        assert p.probe(["l3_agent.hostA"], TIMEOUT) == {"l3_agent.hostA": True}


def test_close_deletes_the_reply_queue(amqp_url: str, exchange_name: str) -> None:
    p = RpcProber(amqp_url, exchange=exchange_name)
    assert p.probe(["l3_agent.nowhere"], 0.2) == {"l3_agent.nowhere": False}
    assert message_count(amqp_url, p.reply_queue) == 0  # it exists while we are connected
    p.close()
    with pytest.raises(ChannelError):
        message_count(amqp_url, p.reply_queue)
    with pytest.raises(ProbeError, match="closed"):
        p.probe(["l3_agent.nowhere"], 0.2)


def test_arguments_are_bounded(prober: RpcProber) -> None:
    with pytest.raises(ValueError, match="at most"):
        prober.probe([f"l3_agent.h{i}" for i in range(65)], TIMEOUT)
    for bad in (0, -1, float("nan"), 301):
        with pytest.raises(ValueError):
            prober.probe(["l3_agent.hostA"], bad)
    with pytest.raises(TypeError):
        prober.probe("l3_agent.hostA", TIMEOUT)
    assert prober.probe([], TIMEOUT) == {}
    assert not prober.connected  # argument errors never touch the broker


class Frozen:
    """A consumer that takes requests and never answers nor acks: a frozen or powered-off
    host whose connection the broker has not timed out yet."""

    def __init__(self, url: str, queue: str) -> None:
        self.conn = Connection(url)
        self.channel = self.conn.channel()
        self.channel.basic_qos(0, 1, False)
        self.channel.basic_consume(queue=queue, callback=lambda message: None, no_ack=False)

    def close(self) -> None:
        self.conn.release()


def test_a_queue_held_by_a_frozen_consumer_is_silent(
    amqp_url: str, prober: RpcProber, silent_queue: str
) -> None:
    frozen = Frozen(amqp_url, silent_queue)
    try:
        result = prober.probe_detailed([silent_queue], TIMEOUT)[silent_queue]
        assert result.outcome is ProbeOutcome.SILENT and not result.answered
        assert prober.probe_outcomes([silent_queue], TIMEOUT) == {silent_queue: "silent"}
    finally:
        frozen.close()
    # the consumer gone (its kernel closed the socket): no longer "silent"
    assert prober.probe_outcomes([silent_queue], TIMEOUT) == {silent_queue: "no_consumer"}
