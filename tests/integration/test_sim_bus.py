"""Simulated agents over a real RabbitMQ (and kombu memory://): heartbeats, liveness, wire shape."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.cloud import SimCloud, SimNeutronError

WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
if not WIRE.exists():
    WIRE = Path("/work/shared/wire")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Tap:
    """An exclusive queue on the exchange (routing key #) collecting raw kombu messages."""

    def __init__(self, url: str, exchange: str) -> None:
        self.conn = Connection(url)
        self.queue = Queue(
            f"rpcdtest-tap-{uuid.uuid4().hex[:8]}",
            exchange=Exchange(exchange, type="topic", durable=False, auto_delete=False),
            routing_key="#",
            exclusive=True,
            durable=False,
        )
        self.messages: list[Any] = []
        self.consumer = self.conn.Consumer(self.queue, on_message=self._got)
        self.consumer.consume()

    def _got(self, message: Any) -> None:
        self.messages.append(message)
        message.ack()

    def collect(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate(self.messages):
            try:
                self.conn.drain_events(timeout=0.1)
            except TimeoutError:
                pass
        return self.messages

    def close(self) -> None:
        self.consumer.cancel()
        self.conn.release()


def inner(message: Any) -> dict[str, Any]:
    return dict(json.loads(json.loads(message.body)["oslo.message"]))


@pytest.fixture
def cloud() -> SimCloud:
    cloud = SimCloud(agent_down_time=2, rpc_response_timeout=0.2)
    cloud.add_agent("L3 agent", "net1")
    cloud.add_agent("DHCP agent", "net1")
    return cloud


@pytest.fixture
def rabbit_bus(cloud: SimCloud, amqp_url: str, exchange_name: str) -> Iterator[SimBus]:
    bus = SimBus(cloud, amqp_url, report_interval=0.5, exchange=exchange_name)
    bus.start()
    yield bus
    bus.stop()


def test_heartbeats_drive_alive_through_rabbitmq(cloud: SimCloud, rabbit_bus: SimBus) -> None:
    l3 = next(a for a in cloud.agents() if a["agent_type"] == "L3 agent")["id"]
    assert wait_for(lambda: rabbit_bus.received >= 2)
    rabbit_bus.freeze(l3)
    assert wait_for(lambda: cloud.agent(l3)["alive"] is False, timeout=6)
    dhcp = next(a for a in cloud.agents() if a["agent_type"] == "DHCP agent")
    assert dhcp["alive"] is True  # still heartbeating
    rabbit_bus.revive(l3)
    assert wait_for(lambda: cloud.agent(l3)["alive"] is True, timeout=3)


def test_report_state_matches_the_wire_capture(
    cloud: SimCloud, amqp_url: str, exchange_name: str
) -> None:
    tap = Tap(amqp_url, exchange_name)
    bus = SimBus(cloud, amqp_url, report_interval=0.5, exchange=exchange_name)
    bus.start()
    try:
        got = tap.collect(lambda ms: len(ms) >= 4)
    finally:
        bus.stop()
        tap.close()
    capture = json.loads((WIRE / "report_state_call__L3_or_DHCP_agent.json").read_text())
    reports = [m for m in got if m.delivery_info["routing_key"] == "q-reports-plugin"]
    assert reports
    first = reports[0]
    assert set(json.loads(first.body)) == set(capture["body_json"])
    message = inner(first)
    assert set(message) == set(capture["oslo_message_decoded"])
    assert len([k for k in message if k.startswith("_context_")]) == 23
    assert message["method"] == "report_state" and message["version"] == "1.4"
    state = message["args"]["agent_state"]["agent_state"]
    assert state["start_flag"] is True  # the first report of a starting agent
    assert set(state) - {"start_flag"} >= set(
        capture["oslo_message_decoded"]["args"]["agent_state"]["agent_state"]
    ) - {"availability_zone"}
    props = {k: v for k, v in first.properties.items() if k != "application_headers"}
    expected = {k: v for k, v in capture["properties"].items() if k != "application_headers"}
    assert set(props) == set(expected)
    assert props["expiration"] == "500" and props["delivery_mode"] == 2 and props["priority"] == 0
    assert first.content_type == "application/json" and first.content_encoding == "utf-8"
    later = [inner(m)["args"]["agent_state"]["agent_state"] for m in reports[2:]]
    assert all("start_flag" not in s for s in later)


def test_neutron_side_effects_are_published(
    cloud: SimCloud, amqp_url: str, exchange_name: str
) -> None:
    tap = Tap(amqp_url, exchange_name)
    bus = SimBus(cloud, amqp_url, report_interval=30, exchange=exchange_name)
    bus.start()
    try:
        l3 = next(a for a in cloud.agents() if a["agent_type"] == "L3 agent")["id"]
        router = cloud.add_router("r")["id"]
        cloud.add_router_to_agent(l3, router)
        got = tap.collect(
            lambda ms: any(inner(m).get("event_type") == "l3_agent.router.add" for m in ms)
        )
    finally:
        bus.stop()
        tap.close()
    keys = [
        (m.delivery_info["routing_key"], inner(m).get("method") or inner(m).get("event_type"))
        for m in got
    ]
    assert ("l3_agent.net1", "router_added_to_agent") in keys
    assert ("notifications.info", "l3_agent.router.add") in keys
    call = next(inner(m) for m in got if inner(m).get("method") == "router_added_to_agent")
    assert call["args"] == {"payload": [router]} and "_reply_q" in call


def test_killed_agent_router_add_blocks_then_500(cloud: SimCloud, rabbit_bus: SimBus) -> None:
    l3 = next(a for a in cloud.agents() if a["agent_type"] == "L3 agent")["id"]
    router = cloud.add_router("r")["id"]
    rabbit_bus.kill(l3)
    with pytest.raises(SimNeutronError) as info:
        cloud.add_router_to_agent(l3, router)
    assert info.value.status == 500
    assert cloud.router_agents(router) == {l3}
    assert wait_for(lambda: cloud.agent(l3)["alive"] is False, timeout=6)


def test_memory_transport_in_one_process(cloud: SimCloud) -> None:
    url = f"memory://sim-{uuid.uuid4().hex[:6]}"
    bus = SimBus(cloud, url, report_interval=0.3, exchange=f"ex-{uuid.uuid4().hex[:6]}")
    bus.start()
    try:
        assert wait_for(lambda: bus.received >= 4)
        dhcp = next(a for a in cloud.agents() if a["agent_type"] == "DHCP agent")["id"]
        bus.cut(dhcp)
        assert wait_for(lambda: cloud.agent(dhcp)["alive"] is False, timeout=6)
        assert cloud.agent_process_running(dhcp) is False
    finally:
        bus.stop()


def test_the_daemon_codec_decodes_sim_heartbeats(
    cloud: SimCloud, amqp_url: str, exchange_name: str
) -> None:
    codec = pytest.importorskip("rpcdaemon.adapters.codec")
    tap = Tap(amqp_url, exchange_name)
    bus = SimBus(cloud, amqp_url, report_interval=0.5, exchange=exchange_name)
    bus.start()
    try:
        got = tap.collect(lambda ms: len(ms) >= 2)
    finally:
        bus.stop()
        tap.close()
    message = got[0]
    decoded = codec.decode(
        message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        exchange=exchange_name,
        routing_key=message.delivery_info["routing_key"],
        properties=message.properties,
        received_at=time.monotonic(),
    )
    assert not isinstance(decoded, codec.Rejection), decoded
    heartbeat = codec.heartbeat_from(decoded, received_wall=time.time())
    assert heartbeat is not None
    assert str(heartbeat.host) == "net1"
