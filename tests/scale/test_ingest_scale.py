"""Issue 11: the consumer acknowledges in batches (``basic.ack`` with ``multiple``), and
never leaves a handled delivery unacknowledged once its queue is quiet."""

from __future__ import annotations

import json
import queue
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from rpcdaemon.adapters.amqp import QueueSpec, private_queue_name
from rpcdaemon.adapters.busguard import AckBatcher
from rpcdaemon.core.events import BusMessage
from rpcdaemon.plugins.base import Binding
from tests.integration.test_amqp import Running

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"


class FakeDelivery:
    def __init__(self, tag: int, log: list[tuple[int, bool]]) -> None:
        self.tag, self.log = tag, log

    def ack(self, multiple: bool = False) -> None:
        self.log.append((self.tag, multiple))


def test_one_ack_per_batch_for_the_last_delivery_of_it() -> None:
    log: list[tuple[int, bool]] = []
    acks = AckBatcher(prefetch=100, batch=32, delay=0.05)
    for tag in range(1, 101):
        acks.handled(FakeDelivery(tag, log), now=0.0)
    assert log == [(32, True), (64, True), (96, True)]
    assert acks.wait(1.0, now=0.01) == pytest.approx(0.04)  # block no longer than the delay
    assert acks.due(now=0.06) and not acks.due(now=0.04)
    acks.flush()
    assert log[-1] == (100, True) and acks.wait(1.0, now=0.1) == 1.0
    acks.handled(FakeDelivery(101, log), now=0.2)
    acks.reset()  # a new connection: the old tag is never acknowledged on it
    acks.flush()
    assert log[-1] == (100, True)


def test_a_small_prefetch_caps_the_batch() -> None:
    log: list[tuple[int, bool]] = []
    acks = AckBatcher(prefetch=4)
    for tag in range(1, 5):
        acks.handled(FakeDelivery(tag, log), now=0.0)
    assert log == [(2, True), (4, True)]


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_a_backlog_is_acknowledged_in_batches_and_fully(amqp_url: str) -> None:
    exchange = f"scale-ack-{uuid.uuid4().hex[:8]}"
    with Connection(amqp_url) as conn:
        Exchange(exchange, "topic", durable=False)(conn.channel()).declare()
    inbox: queue.Queue[BusMessage] = queue.Queue()
    spec = QueueSpec(
        name=private_queue_name("scale"),
        bindings=(Binding(exchange, "q-reports-plugin"),),
        expires=60.0,
        handler=inbox.put,
    )
    running = Running(amqp_url, [spec], inbox)
    try:
        assert running.up.wait(15)
        capture = json.loads((WIRE / "report_state_cast.json").read_text())
        body = json.dumps(capture["body_json"])
        count = 640
        with Connection(amqp_url) as conn:
            producer = Producer(conn.channel())
            for _ in range(count):
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key="q-reports-plugin",
                    content_type="application/json",
                    content_encoding="utf-8",
                    serializer=None,
                )
        for _ in range(count):
            inbox.get(timeout=10)
        deadline = time.monotonic() + 5
        acks: Any = running.consumer.acks
        while acks.wait(1.0, time.monotonic()) != 1.0 and time.monotonic() < deadline:
            time.sleep(0.01)  # quiet queue: the last batch goes within ACK_DELAY
        assert acks.wait(1.0, time.monotonic()) == 1.0  # nothing left unacknowledged
        assert count // 32 <= acks.acks <= count // 4  # batches, not one ack per message
    finally:
        running.stop()
        with Connection(amqp_url) as conn:
            Exchange(exchange, "topic")(conn.channel()).delete()
