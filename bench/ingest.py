"""Ingest: report_state heartbeats through the daemon's own path, on a real RabbitMQ (issue 11).

The daemon (``rpcdaemon.runtime.app.run``: consumer, codec, intake, reactor, liveness model)
runs in-process against a fake Neutron port holding ``--agents`` agents (half L3, half
DHCP; no routers or networks, so passes cost nothing). Messages are the captured
``report_state`` call (``/work/shared/wire``; tests/fixtures/wire), one host per agent.

* **backlog**: the daemon connects and binds its queue, its consumer is held back, ``--backlog``
  messages are published, then it is let go: rate = messages applied to the model / seconds
  from release to the last one applied. Baseline in the same run: a bare kombu consumer
  (``Consumer`` + ``message.ack()``, prefetch 100, as ours) draining the same number of the
  same messages from a queue bound the same way.
* **live**: ``--rate`` messages/s for ``--seconds`` s with the capture's ``expiration`` (3 s):
  applied vs published, and the daemon's CPU (process CPU minus the publisher thread's).

Nothing here asserts: numbers are printed (Markdown) and ``--write`` puts them in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.common import quiet_logs, section_text, table, update_results
from rpcdaemon.adapters import amqp
from rpcdaemon.core.ids import AgentId, AgentType, NetworkId, RouterId
from rpcdaemon.core.view import AgentInfo, ClusterView, Inventory
from rpcdaemon.runtime import app
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.testing import make_agent, make_dhcp_agent

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
WIRE = Path("/work/shared/wire/report_state_call__L3_or_DHCP_agent.json")
FALLBACK_WIRE = Path(__file__).parents[1] / "tests/fixtures/wire" / WIRE.name
ROUTING_KEY = "q-reports-plugin"


def host_of(i: int) -> str:
    return f"node-{i:05d}.example.org"


class FakeNeutron:
    """A NeutronPort holding agents only; writes succeed and change nothing."""

    def __init__(self, agents: int) -> None:
        infos: list[AgentInfo] = []
        for i in range(agents):
            make = make_agent if i % 2 == 0 else make_dhcp_agent
            infos.append(make(f"agent-{i:05d}", host=host_of(i)))
        self.view = ClusterView(agents={a.id: a for a in infos})

    def snapshot(self, *, routers: bool = True, networks: bool = True) -> ClusterView:
        return self.view

    def inventory(self, *, routers: bool = True, networks: bool = True) -> Inventory:
        return Inventory(agents=self.view.agents)

    def get_agent(self, agent_id: AgentId) -> AgentInfo | None:
        return self.view.agents.get(agent_id)

    def router_agents(self, router_id: RouterId) -> frozenset[AgentId]:
        return frozenset()

    def network_agents(self, network_id: NetworkId) -> frozenset[AgentId]:
        return frozenset()

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None: ...
    def remove_router(self, agent_id: AgentId, router_id: RouterId) -> None: ...
    def add_network(self, agent_id: AgentId, network_id: NetworkId) -> None: ...
    def remove_network(self, agent_id: AgentId, network_id: NetworkId) -> None: ...


def bodies(agents: int) -> tuple[list[str], dict[str, Any]]:
    """One captured report_state per agent (its host and type), and the capture's properties."""
    capture = json.loads((WIRE if WIRE.exists() else FALLBACK_WIRE).read_text())
    inner = json.loads(capture["body_json"]["oslo.message"])
    out = []
    for i in range(agents):
        state = inner["args"]["agent_state"]["agent_state"]
        state["host"] = host_of(i)
        state["agent_type"] = AgentType.L3.value if i % 2 == 0 else AgentType.DHCP.value
        envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(inner)}
        out.append(json.dumps(envelope))
    return out, capture["properties"]


def publish(exchange: str, messages: list[str], count: int, *, expiration: str | None) -> float:
    """Publish ``count`` messages round-robin; returns the seconds it took."""
    start = time.monotonic()
    with Connection(AMQP_URL) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(exchange, "topic", durable=False))
        for n in range(count):
            producer.publish(
                messages[n % len(messages)],
                routing_key=ROUTING_KEY,
                content_type="application/json",
                content_encoding="utf-8",
                serializer=None,
                expiration=None if expiration is None else float(expiration) / 1000,
            )
    return time.monotonic() - start


def declare_exchange(name: str) -> None:
    with Connection(AMQP_URL) as conn:
        Exchange(name, "topic", durable=False)(conn.channel()).declare()


def delete_exchange(name: str) -> None:
    with Connection(AMQP_URL) as conn:
        Exchange(name, "topic")(conn.channel()).delete()


def bare_kombu(exchange: str, messages: list[str], count: int) -> float:
    """Messages/s for a bare kombu consumer acking ``count`` backlogged messages."""
    name = f"bench-ingest-raw-{uuid.uuid4().hex[:8]}"
    with Connection(AMQP_URL) as conn:
        queue = Queue(name, Exchange(exchange, "topic", durable=False), ROUTING_KEY)
        queue(conn.channel()).declare()
        publish(exchange, messages, count, expiration=None)
        got = [0]

        def on_message(_body: Any, message: Any) -> None:
            got[0] += 1
            message.ack()

        channel = conn.channel()
        consumer = Consumer(channel, [queue], callbacks=[on_message], accept=["json"])
        consumer.qos(prefetch_count=100)
        start = time.monotonic()
        with consumer:
            while got[0] < count:
                conn.drain_events(timeout=10)
        seconds = time.monotonic() - start
        queue(conn.channel()).delete()
    return count / seconds


class Rig:
    """The daemon, its consumer held back until :meth:`release`."""

    def __init__(self, exchange: str, agents: int, check_interval: float) -> None:
        self.go = threading.Event()
        self.draining = threading.Event()
        real_drain = amqp.BusConsumer._drain
        go, draining = self.go, self.draining

        def held_drain(consumer: Any, conn: Any) -> None:
            draining.set()
            go.wait()
            real_drain(consumer, conn)

        amqp.BusConsumer._drain = held_drain  # type: ignore[method-assign]
        self.reactors: list[Reactor] = []
        section = AgentPluginSettings(
            name="L3Agent", conffile=None, exchange=exchange, agent_down_time=75.0
        )
        settings = Settings(
            path="<bench>",
            daemon=DaemonSettings(
                plugins=("L3Agent", "DHCPAgent"),
                rpchost=AMQP_URL,
                amqp_url=AMQP_URL,
                cloud="unused",
                foreground=True,
                check_interval=check_interval,
            ),
            l3=section,
            dhcp=AgentPluginSettings(
                name="DHCPAgent", conffile=None, exchange=exchange, agent_down_time=75.0
            ),
        )
        self.stop = threading.Event()
        hooks = app.Hooks(on_reactor=self.reactors.append)
        port = FakeNeutron(agents)
        self.thread = threading.Thread(
            target=lambda: app.run(settings, stop=self.stop, hooks=hooks, neutron=port),
            name="rpcdaemon-ingest",
            daemon=True,
        )
        self.thread.start()
        if not self.draining.wait(60):
            raise RuntimeError("the daemon did not bind its queue within 60 s")

    @property
    def applied(self) -> int:
        return self.reactors[0].intake.heartbeats if self.reactors else 0

    def release(self) -> None:
        self.go.set()

    def close(self) -> None:
        self.go.set()
        self.stop.set()
        self.thread.join(30)


def wait_applied(rig: Rig, target: int, timeout: float) -> float | None:
    """Monotonic time at which ``target`` heartbeats were applied (None: timed out)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rig.applied >= target:
            return time.monotonic()
        time.sleep(0.02)
    return None


def run_backlog(
    agents: int, count: int, check_interval: float, *, raw: float | None = None
) -> dict[str, float]:
    messages, _ = bodies(agents)
    exchange = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    declare_exchange(exchange)
    try:
        raw = bare_kombu(exchange, messages, count) if raw is None else raw
        rig = Rig(exchange, agents, check_interval)
        try:
            publish(exchange, messages, count, expiration=None)
            time.sleep(1.0)  # the broker routes the last ones
            cpu0, start = time.process_time(), time.monotonic()
            rig.release()
            done = wait_applied(rig, count, timeout=max(120.0, count / 200))
            cpu = time.process_time() - cpu0
            applied = rig.applied
        finally:
            rig.close()
    finally:
        delete_exchange(exchange)
    seconds = (done if done is not None else time.monotonic()) - start
    return {
        "raw": raw,
        "ours": applied / seconds,
        "applied": applied,
        "seconds": seconds,
        "cores": cpu / seconds,
    }


def run_live(agents: int, rate: float, seconds: float, check_interval: float) -> dict[str, float]:
    messages, properties = bodies(agents)
    expiration = properties.get("expiration")
    exchange = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    declare_exchange(exchange)
    try:
        rig = Rig(exchange, agents, check_interval)
        rig.release()
        time.sleep(2.0)
        published = [0]
        publisher_cpu = [0.0]

        def publisher() -> None:
            with Connection(AMQP_URL) as conn:
                producer = Producer(
                    conn.channel(), exchange=Exchange(exchange, "topic", durable=False)
                )
                start = time.monotonic()
                while time.monotonic() - start < seconds:
                    due = int((time.monotonic() - start) * rate)
                    while published[0] < due:
                        producer.publish(
                            messages[published[0] % len(messages)],
                            routing_key=ROUTING_KEY,
                            content_type="application/json",
                            content_encoding="utf-8",
                            serializer=None,
                            expiration=float(expiration) / 1000 if expiration else None,
                        )
                        published[0] += 1
                    time.sleep(0.005)
            publisher_cpu[0] = time.thread_time()

        before = rig.applied
        cpu0, wall0 = time.process_time(), time.monotonic()
        thread = threading.Thread(target=publisher, name="publisher")
        thread.start()
        thread.join()
        time.sleep(4.0)  # what is still queued arrives (or expires: 3 s)
        cpu = time.process_time() - cpu0 - publisher_cpu[0]
        wall = time.monotonic() - wall0
        applied = rig.applied - before
        rig.close()
    finally:
        delete_exchange(exchange)
    return {
        "published": published[0],
        "applied": applied,
        "rate": applied / seconds,
        "cores": cpu / wall,
        "expiration": float(expiration or 0) / 1000,
    }


def profile_threads(directory: str) -> None:
    """Run the consumer and the reactor threads under cProfile (``<dir>/<name>.prof``)."""
    import cProfile

    def wrap(cls: Any, name: str) -> None:
        real = cls.run

        def run(self: Any) -> None:
            profile = cProfile.Profile()
            try:
                profile.runcall(real, self)
            finally:
                profile.dump_stats(f"{directory}/{name}-{uuid.uuid4().hex[:4]}.prof")

        cls.run = run

    wrap(amqp.BusConsumer, "consumer")
    wrap(Reactor, "reactor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=333.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--check-interval", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="backlog 20,000; live 30 s")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the consumer and reactor")
    parser.add_argument("--only", choices=["backlog", "live"])
    parser.add_argument("--section", default="ingest", help="RESULTS.md section to write")
    parser.add_argument("--title", default="Ingest (real RabbitMQ)")
    args = parser.parse_args()
    quiet_logs(args.verbose)
    if args.profile:
        profile_threads(args.profile)
    if args.quick:
        args.backlog, args.seconds = 20_000, 30.0
    modes = ["the daemon as built (judges at most once per check_interval)"]
    backlog_rows, live_rows = [], []
    raw: float | None = None
    for mode in modes:
        if args.only != "live":
            b = run_backlog(args.agents, args.backlog, args.check_interval, raw=raw)
            raw = b["raw"]
            backlog_rows.append(
                [
                    mode,
                    f"{args.backlog:,}",
                    f"{b['raw']:,.0f}",
                    f"{b['ours']:,.0f}",
                    f"{b['ours'] / b['raw']:.0%}",
                    f"{b['cores']:.2f}",
                ]
            )
        if args.only != "backlog":
            live = run_live(args.agents, args.rate, args.seconds, args.check_interval)
            live_rows.append(
                [
                    mode,
                    f"{args.rate:.0f}/s for {args.seconds:.0f} s",
                    f"{live['published']:,.0f}",
                    f"{live['applied']:,.0f}",
                    f"{live['rate']:,.0f}",
                    f"{live['cores']:.2f}",
                    f"{live['expiration']:g}",
                ]
            )
    parts = [f"{args.agents:,} agents (half L3, half DHCP), reactor as noted."]
    if backlog_rows:
        parts.append(
            table(
                [
                    "backlog drained",
                    "messages",
                    "bare kombu msg/s",
                    "ours msg/s",
                    "ours / kombu",
                    "ours cores",
                ],
                backlog_rows,
            )
        )
    if live_rows:
        parts.append(
            table(
                [
                    "live",
                    "load",
                    "published",
                    "applied",
                    "applied/s",
                    "daemon cores",
                    "expiration s",
                ],
                live_rows,
            )
        )
    body = "\n\n".join(parts)
    print(body)
    if args.write:
        command = ".venv/bin/python -m bench.ingest" + (" --quick" if args.quick else "")
        update_results(args.section, section_text(args.title, command, body))


if __name__ == "__main__":
    main()
