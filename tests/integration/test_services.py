"""runtime.services.run against the real RabbitMQ, with fake plugins (no patching)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.events import BusMessage
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.base import Binding
from rpcdaemon.runtime import services
from rpcdaemon.settings import DaemonSettings, Settings

pytestmark = [pytest.mark.broker]


class FakePlanner:
    """Observes like a planner; its observe can be told to fail."""

    agent_type = "L3 agent"

    def __init__(self, name: str, exchange: str, *, fail: bool = False) -> None:
        self.name = name
        self._exchange = exchange
        self._fail = fail
        self.seen: list[str | None] = []
        self.closed = False

    def bindings(self) -> Sequence[Binding]:
        return (Binding(self._exchange, f"{self.name}.#"),)

    def observe(self, message: BusMessage) -> None:
        self.seen.append(message.method)
        if self._fail:
            raise RuntimeError("observe failed on purpose")

    def plan(
        self, view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy, now: float
    ) -> Plan:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class FakeObserver:
    """Not a planner: the sink never sees its messages."""

    def __init__(self, exchange: str) -> None:
        self.name = "Watcher"
        self._exchange = exchange
        self.seen: list[str | None] = []

    def bindings(self) -> Sequence[Binding]:
        return (Binding(self._exchange, "#"),)

    def observe(self, message: BusMessage) -> None:
        self.seen.append(message.method)


def publish(amqp_url: str, exchange: str, routing_key: str, method: str) -> None:
    import kombu

    k: Any = kombu
    with k.Connection(amqp_url) as conn:
        producer = k.Producer(
            conn.default_channel, exchange=k.Exchange(exchange, type="topic", durable=False)
        )
        body = json.dumps({"method": method, "args": {}})
        producer.publish(body, routing_key=routing_key, content_type="application/json")


def test_messages_reach_observe_and_the_sink_despite_a_failing_plugin(
    amqp_url: str, exchange_name: str
) -> None:
    good = FakePlanner("Good", exchange_name)
    bad = FakePlanner("Bad", exchange_name, fail=True)
    watcher = FakeObserver(exchange_name)
    sunk: list[tuple[str, str | None]] = []
    connected = threading.Event()
    stop = threading.Event()
    settings = Settings(path="t", daemon=DaemonSettings(plugins=(), amqp_url=amqp_url))
    status: list[int] = []
    runner = threading.Thread(
        target=lambda: status.append(
            services.run(
                settings,
                stop=stop,
                plugins=(good, bad, watcher),
                on_message=lambda name, m: sunk.append((name, m.method)),
                on_connection_change=lambda up: connected.set() if up else None,
            )
        )
    )
    runner.start()
    try:
        assert connected.wait(20), "never consumed"
        tag = uuid.uuid4().hex[:8]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            f"g{tag}" in good.seen and f"b{tag}" in bad.seen
        ):
            publish(amqp_url, exchange_name, "Good.x", f"g{tag}")
            publish(amqp_url, exchange_name, "Bad.x", f"b{tag}")
            time.sleep(0.3)
        assert f"g{tag}" in good.seen and f"b{tag}" in bad.seen
        # The planners share one queue (the union of their bindings): each observes every
        # message of it, and the sink gets them all, also those whose observe raised.
        assert f"b{tag}" in good.seen and f"g{tag}" in bad.seen
        assert ("agents", f"g{tag}") in sunk and ("agents", f"b{tag}") in sunk
        assert all(name == "agents" for name, _ in sunk)
        assert f"g{tag}" in watcher.seen and f"b{tag}" in watcher.seen
    finally:
        stop.set()
        runner.join(6)
    assert not runner.is_alive() and status == [0]
    assert good.closed and bad.closed


def test_queues_are_private_and_expire_as_configured() -> None:
    from rpcdaemon.settings import AgentPluginSettings

    plugin = FakePlanner("L3Agent", "neutron")
    settings = Settings(
        path="t",
        daemon=DaemonSettings(plugins=("L3Agent",)),
        l3=AgentPluginSettings(name="L3Agent", queue_expire=42.0),
    )
    (spec,) = services.build_queues(settings, [plugin])
    assert spec.name.startswith("rpcdaemon-agents-")  # the planners share one queue
    assert spec.expires == 42.0
    assert spec.bindings == (Binding("neutron", "L3Agent.#"),)
