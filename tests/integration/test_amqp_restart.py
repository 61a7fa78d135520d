"""Broker restart mid-run, on a PRIVATE RabbitMQ node (never the shared one): consumption
resumes on the same queue and no queue of ours is left behind."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Producer
from tests.rabbit_node import RabbitNode, available

from rpcdaemon.adapters.amqp import BusConsumer, QueueSpec, private_queue_name
from rpcdaemon.core.events import BusMessage
from rpcdaemon.plugins.base import Binding

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    why = available()
    if why is not None:
        if os.environ.get("RPCDAEMON_REQUIRE_BROKER") == "1":
            pytest.fail(f"private RabbitMQ node required but unavailable: {why}")
        pytest.skip(f"private RabbitMQ node unavailable: {why}")
    rabbit = RabbitNode()
    try:
        rabbit.start()
        yield rabbit
    finally:
        rabbit.stop()


def declare_neutron_like(url: str, name: str) -> None:
    """What neutron-server does when it (re)connects: topic, durable=False."""
    with Connection(url) as conn:
        Exchange(name, type="topic", durable=False, auto_delete=False)(
            conn.default_channel
        ).declare()


def publish(url: str, exchange: str, method: str) -> None:
    body = json.dumps(
        {"oslo.version": "2.0", "oslo.message": json.dumps({"method": method, "args": {}})}
    )
    with Connection(url) as conn:
        Producer(conn.default_channel).publish(
            body.encode(),
            exchange=exchange,
            routing_key="q-reports-plugin",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
        )


def ours(node: RabbitNode) -> dict[str, tuple[bool, str]]:
    return {k: v for k, v in node.list_queues().items() if k.startswith("rpcdaemon-")}


def test_broker_restart_resumes_on_the_same_queue_without_orphans(node: RabbitNode) -> None:
    exchange = "neutron"  # the private node is ours alone: use Neutron's real name
    declare_neutron_like(node.url, exchange)
    inbox: queue.Queue[BusMessage] = queue.Queue()
    changes: list[bool] = []
    up, down = threading.Event(), threading.Event()

    def changed(value: bool) -> None:
        changes.append(value)
        (up if value else down).set()

    spec = QueueSpec(
        name=private_queue_name("restart"),
        bindings=(Binding(exchange, "q-reports-plugin"),),
        expires=60.0,
        handler=inbox.put,
    )
    consumer = BusConsumer(
        node.url, [spec], reconnect_max_backoff=2.0, on_connection_change=changed
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        assert up.wait(15)
        publish(node.url, exchange, "before")
        assert inbox.get(timeout=10).method == "before"
        queues = ours(node)
        assert list(queues) == [spec.name]
        durable, arguments = queues[spec.name]
        assert durable and "x-expires" in arguments and "60000" in arguments

        up.clear()
        node.stop_app()
        assert down.wait(15), "the consumer did not notice the broker going away"
        assert not consumer.connected
        node.start_app()
        # the exchange was not durable: it is gone until Neutron declares it again, and
        # we wait for it (passively) instead of creating it
        time.sleep(3)
        assert not up.is_set()
        declare_neutron_like(node.url, exchange)
        assert up.wait(30), "consumption did not resume after the restart"
        publish(node.url, exchange, "after")
        assert inbox.get(timeout=10).method == "after"
        assert changes == [True, False, True]
        assert list(ours(node)) == [spec.name]  # the same queue, no orphan
    finally:
        consumer.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert ours(node) == {}  # a clean stop deletes it
