"""The hostile corpus over a real RabbitMQ, into the real BusConsumer, next to the
simulator's agents heartbeating on the same exchange.

The consumer decodes on its own thread and hands heartbeats over, as in the daemon; this
test plays the reactor (model, ticks every 0.25 s, lag fed into the BusState). Thousands of
hostile deliveries (with zip bombs and over-size bodies) arrive on ``q-plugin`` (the
daemon binds it; the simulated neutron-server does not, so it never registers the forged
hosts); the real agents report on ``q-reports-plugin`` every 0.5 s; one is killed during
the flood. Asserted: no handler error, every hostile delivery rejected under the right
reason (forged ones accepted and bounded), no live agent declared dead, the killed one
declared dead, memory and log lines bounded, no planted secret in any log line.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from pathlib import Path

import pytest
from kombu import Connection, Producer

from rpcdaemon.adapters.amqp import BusConsumer, QueueSpec, private_queue_name
from rpcdaemon.adapters.codec import CodecStats, heartbeat_from
from rpcdaemon.core.binding import Binding
from rpcdaemon.core.events import BusMessage, ConsumerLag, Heartbeat
from rpcdaemon.core.ids import Host, Liveness
from rpcdaemon.core.liveness import AgentKey, BusState, LivenessModel, Transition, lag_limit
from rpcdaemon.core.policy import Policy
from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.scenario import build_cloud
from tests.hostile.corpus import ACCEPTED, SECRET, hostile

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

DOWN = 3.0
CASES = 6_000
HUGE = 5
BOMBS = 6


def vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hostile_flood_over_rabbitmq_next_to_real_agents(
    amqp_url: str, exchange_name: str, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rpcdaemon")
    policy = Policy(agent_down_time=DOWN)
    cloud = build_cloud(
        l3_agents=4, dhcp_agents=2, routers=4, networks=2, seed=5, agent_down_time=DOWN
    )
    agents = [dict(a) for a in cloud.agents()]
    keys = {AgentKey(str(a["agent_type"]), Host(str(a["host"]))) for a in agents}
    victim = next(a for a in agents if a["agent_type"] == "L3 agent")
    victim_key = AgentKey(str(victim["agent_type"]), Host(str(victim["host"])))
    cases = list(hostile(seed, CASES, huge=HUGE, compressed=BOMBS))
    by_category = collections.Counter(c.category for c in cases)

    inbox: queue.SimpleQueue[Heartbeat | ConsumerLag | bool] = queue.SimpleQueue()

    def handler(message: BusMessage) -> None:
        heartbeat = heartbeat_from(message, received_wall=time.time())
        if heartbeat is not None:
            inbox.put(heartbeat)

    stats = CodecStats()
    spec = QueueSpec(
        name=private_queue_name("hostile"),
        bindings=(Binding(exchange_name, "q-reports-plugin"), Binding(exchange_name, "q-plugin")),
        expires=60.0,
        handler=handler,
    )
    consumer = BusConsumer(
        amqp_url,
        [spec],
        stats=stats,
        on_connection_change=inbox.put,
        on_lag=inbox.put,
        lag_interval=0.25,
        lag_log_seconds=lag_limit(DOWN),
    )
    sim = SimBus(cloud, amqp_url, report_interval=0.5, exchange=exchange_name, notifications=False)
    consumer_thread = threading.Thread(target=consumer.run, daemon=True)
    sim.start()
    consumer_thread.start()

    model = LivenessModel()
    model.set_known(keys)
    bus = BusState(connected=False)
    transitions: list[tuple[float, Transition]] = []
    killed_at: float | None = None
    published = threading.Event()
    rss_before = vm_rss_kib()
    peak_unknown = 0

    def publish_all() -> None:
        with Connection(amqp_url) as conn:
            producer = Producer(conn.default_channel)
            for i, case in enumerate(cases):
                producer.publish(
                    case.body,
                    exchange=exchange_name,
                    routing_key="q-plugin",
                    content_type=case.content_type,
                    content_encoding=case.content_encoding,
                    headers=dict(case.headers),
                )
                if i % 500 == 0:
                    time.sleep(0.05)  # a flood over several seconds, not one burst
        published.set()

    def pump(until: float) -> None:
        nonlocal bus, peak_unknown
        while True:
            timeout = until - time.monotonic()
            if timeout <= 0:
                return
            try:
                item = inbox.get(timeout=timeout)
            except queue.Empty:
                return
            now = time.monotonic()
            if isinstance(item, Heartbeat):
                model.observe(item, policy=policy)
                peak_unknown = max(peak_unknown, model.unknown_count)
            elif isinstance(item, ConsumerLag):
                bus = bus.with_lag(item, now, limit=lag_limit(DOWN))
            else:
                bus = BusState(connected=True, listening_since=now) if item else BusState(False)

    try:
        started = time.monotonic()
        while not bus.connected:  # wait for the consumer, then a full listening window
            pump(time.monotonic() + 0.25)
            assert time.monotonic() - started < 15, "the consumer did not connect"
        flood = threading.Thread(target=publish_all, daemon=True)
        ready_at = time.monotonic() + DOWN + 0.5
        while time.monotonic() < ready_at:
            pump(time.monotonic() + 0.25)
            transitions.extend(
                (time.monotonic(), t)
                for t in model.evaluate(time.monotonic(), policy, bus, expected=keys)
            )
        flood.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pump(time.monotonic() + 0.25)
            now = time.monotonic()
            transitions.extend((now, t) for t in model.evaluate(now, policy, bus, expected=keys))
            if killed_at is None and now - ready_at > 2.0:
                sim.kill(str(victim["id"]))
                killed_at = now
            handled = sum(v for k, v in stats.snapshot().items() if k in ("decoded", "rejected"))
            victim_dead = any(
                t.key == victim_key and t.new is Liveness.DEAD for _, t in transitions
            )
            if published.is_set() and victim_dead and handled >= len(cases):
                break
    finally:
        consumer.stop()
        consumer_thread.join(timeout=10)
        sim.stop()
    rss_growth = vm_rss_kib() - rss_before

    snapshot = stats.snapshot()
    rejected_cases = sum(n for c, n in by_category.items() if c not in ACCEPTED)
    assert snapshot["handler_errors"] == 0
    assert snapshot["rejected"] == rejected_cases, (seed, snapshot, by_category)
    assert snapshot.get("rejected.compressed", 0) == BOMBS
    assert snapshot.get("rejected.too_large", 0) >= HUGE
    dead = [t.key for _, t in transitions if t.new is Liveness.DEAD]
    assert dead == [victim_key], (seed, dead)
    assert {t.key for _, t in transitions} <= keys
    assert peak_unknown <= model.unknown_limit
    assert rss_growth < 100 * 1024, f"RSS grew by {rss_growth} KiB"
    records = [r for r in caplog.records if r.name.startswith("rpcdaemon.adapters")]
    assert len(records) <= 40, [r.getMessage() for r in records]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text and "hunter2" not in text
    print(
        f"\nHOSTILE-MEASURE bus seed={seed} cases={len(cases)} rejected={snapshot['rejected']} "
        f"by_reason={ {k: v for k, v in snapshot.items() if k.startswith('rejected.')} } "
        f"handler_errors=0 adapter_log_lines={len(records)} rss_growth_KiB={rss_growth} "
        f"peak_unknown={peak_unknown}"
    )
