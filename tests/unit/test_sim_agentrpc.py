"""The simulated agents answer RPC like an oslo.messaging server: the pure dispatcher, and
SimBus's agent queues on kombu's in-process transport (a node killed stops answering)."""

from __future__ import annotations

import json
import queue
import time
import uuid
from typing import Any

import kombu
import pytest

from rpcdaemon.adapters.probewire import PROBE_METHOD, build_request, parse_reply
from rpcdaemon.sim import wire
from rpcdaemon.sim.agentrpc import agent_queues, answer
from rpcdaemon.sim.agents import AgentState, SimBus
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT, METADATA_AGENT, OVS_AGENT
from rpcdaemon.sim.scenario import build_cloud

K: Any = kombu  # untyped


def call(method: str, version: str = "1.0") -> dict[str, Any]:
    message = wire.rpc_message(method, {}, now=time.time(), version=version, call=True)
    return message


def failure_class(reply: dict[str, Any]) -> str | None:
    failure = reply["failure"]
    return None if failure is None else str(json.loads(failure)["class"])


def test_each_agent_type_consumes_its_hosts_queues() -> None:
    assert agent_queues(L3_AGENT, "net1") == ("l3_agent.net1",)
    assert agent_queues(DHCP_AGENT, "net1") == ("dhcp_agent.net1",)
    assert "q-agent-notifier-tunnel-update.c1" in agent_queues(OVS_AGENT, "c1")
    assert agent_queues(METADATA_AGENT, "net1") == ()  # no RPC server


def test_the_dispatcher_answers_like_oslo_messaging() -> None:
    # a method the agent has: a result; one it lacks or a private one: NoSuchMethod
    ok = answer(L3_AGENT, call("router_added_to_agent"))
    assert ok is not None and ok["failure"] is None and ok["ending"] is True
    assert failure_class(answer(L3_AGENT, call("no_such_thing")) or {}) == "NoSuchMethod"
    assert failure_class(answer(DHCP_AGENT, call("_private")) or {}) == "NoSuchMethod"
    # a major version no endpoint has, or a newer minor: UnsupportedVersion
    assert failure_class(answer(L3_AGENT, call("routers_updated", "2.0")) or {}) == (
        "UnsupportedVersion"
    )
    assert failure_class(answer(DHCP_AGENT, call("agent_updated", "1.1")) or {}) == (
        "UnsupportedVersion"
    )
    # a cast (no _msg_id / _reply_q) is not answered
    cast = wire.rpc_message("routers_updated", {}, now=time.time())
    assert answer(L3_AGENT, cast) is None


def test_the_daemons_probe_call_gets_a_reply_the_daemon_reads() -> None:
    request = build_request("l3_agent.net1", "reply_x", 1.0)
    inner = wire.decode(request.body)
    assert inner is not None and inner["method"] == PROBE_METHOD
    reply = answer(L3_AGENT, inner)
    assert reply is not None
    parsed = parse_reply(wire.envelope(reply))
    assert parsed is not None
    assert parsed.msg_id == request.msg_id and parsed.failure == "NoSuchMethod"


class Caller:
    """An RPC client on kombu's in-process transport: calls a queue, waits for the reply."""

    def __init__(self, exchange: str) -> None:
        self.conn = K.Connection("memory://", transport_options={"polling_interval": 0.01})
        self.exchange = K.Exchange(exchange, type="topic", durable=False)
        self.reply_q = f"reply_{uuid.uuid4().hex}"
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        channel = self.conn.channel()
        self.consumer = K.Consumer(
            channel,
            queues=[K.Queue(self.reply_q, exchange=K.Exchange("", type="direct"))],
            on_message=self._on_reply,
        )
        self.consumer.consume()
        self.producer = K.Producer(self.conn.channel(), exchange=self.exchange)

    def _on_reply(self, message: Any) -> None:
        message.ack()
        inner = wire.decode(message.body)
        if inner is not None:
            self.replies.put(inner)

    def call(self, routing_key: str, timeout: float = 1.0) -> dict[str, Any] | None:
        request = build_request(routing_key, self.reply_q, timeout)
        self.producer.publish(request.body, routing_key=routing_key, retry=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.conn.drain_events(timeout=0.05)
            except TimeoutError:
                pass
            try:
                reply = self.replies.get_nowait()
            except queue.Empty:
                continue
            if reply.get("_msg_id") == request.msg_id:
                return reply
        return None

    def close(self) -> None:
        self.conn.release()


@pytest.fixture
def bus() -> Any:
    cloud = build_cloud(
        l3_agents=2, dhcp_agents=2, routers=2, networks=0, node_agents=True, compute_hosts=1
    )
    sim = SimBus(cloud, "memory://", report_interval=0.5, exchange=f"sim-{uuid.uuid4().hex[:8]}")
    sim.start()
    yield sim
    sim.stop()
    cloud.close()


def test_simbus_answers_calls_until_the_node_dies(bus: SimBus) -> None:
    caller = Caller(bus.exchange_name)
    try:
        reply = caller.call("l3_agent.net1")
        assert reply is not None and failure_class(reply) == "NoSuchMethod"
        assert caller.call("q-agent-notifier-tunnel-update.compute1") is not None
        ids = bus.freeze_node("net1")  # no heartbeats, the processes still answer
        assert len(ids) == 4
        assert {bus.state(a) for a in ids} == {AgentState.FROZEN}
        assert caller.call("dhcp_agent.net1") is not None
        bus.kill_node("net1")
        time.sleep(0.2)  # the bus thread cancels the consumers
        assert caller.call("l3_agent.net1", timeout=0.5) is None
        assert caller.call("dhcp_agent.net1", timeout=0.5) is None
        assert caller.call("l3_agent.net2") is not None  # the other node is fine
        bus.revive_node("net1")
        assert caller.call("l3_agent.net1") is not None
        assert bus.rpc_answered >= 5
    finally:
        caller.close()


def test_node_commands_need_a_known_host(bus: SimBus) -> None:
    with pytest.raises(KeyError):
        bus.kill_node("nowhere")
    assert len(bus.cut_node("compute1")) == 2  # Open vSwitch and metadata
