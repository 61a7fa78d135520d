"""The reactor, step by step on a hand-driven clock, against the simulated Neutron's HTTP API.

Heartbeats are real oslo.messaging-shaped bodies run through the real codec; the API is the
simulator's real HTTP server through the real openstacksdk adapter; the executor is real.
Only time is ours to move, so every rule about *when* can be checked exactly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rpcdaemon.adapters.codec import decode
from rpcdaemon.adapters.neutron import connect
from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.events import BusMessage
from rpcdaemon.core.ids import AgentId, RouterId
from rpcdaemon.core.policy import Policy
from rpcdaemon.plugins.dhcpagent import DHCPAgentPlugin
from rpcdaemon.plugins.l3agent import L3AgentPlugin
from rpcdaemon.runtime.executor import Executor
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, NeutronApiSettings, Settings
from rpcdaemon.sim import wire
from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT

ADT = 10.0
HOSTS = ("net1", "net2", "net3")


class Clocks:
    """Our monotonic clock and the cloud's wall clock, moved together by hand."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class World:
    def __init__(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        *,
        wrap: Callable[[NeutronPort], NeutronPort] | None = None,
        **reactor_kw: object,
    ):
        self.clocks = Clocks()
        self.cloud = SimCloud(agent_down_time=ADT, clock=lambda: self.clocks.wall)
        for host in HOSTS:
            self.cloud.add_agent(L3_AGENT, host)
            self.cloud.add_agent(DHCP_AGENT, host)
        self.l3 = {a["host"]: a["id"] for a in self.cloud.agents() if a["agent_type"] == L3_AGENT}
        self.routers = [self.cloud.add_router(f"r{i}")["id"] for i in range(4)]
        for router in self.routers:
            self.cloud.add_router_to_agent(self.l3["net1"], router)
        self.server = SimNeutronServer(self.cloud)
        self.server.start()
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(
            "clouds:\n  sim:\n    auth_type: none\n    auth:\n"
            f"      endpoint: {self.server.network_url}\n"
            f"    network_endpoint_override: {self.server.network_url}\n"
        )
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        section = AgentPluginSettings(name="L3Agent", agent_down_time=ADT)
        settings = Settings(
            path="t",
            daemon=DaemonSettings(cloud="sim"),
            l3=section,
            dhcp=AgentPluginSettings(name="DHCPAgent", agent_down_time=ADT),
        )
        neutron = connect(NeutronApiSettings(cloud="sim", auth=None, source="test"))
        self.stop = threading.Event()
        self.reports: list[PassReport] = []
        policy = Policy(agent_down_time=ADT)
        self.reactor = Reactor(
            planners=[L3AgentPlugin(settings), DHCPAgentPlugin(settings)],
            policies={L3_AGENT: policy, DHCP_AGENT: policy},
            neutron=neutron,
            executor=Executor(
                wrap(neutron) if wrap is not None else neutron,
                backoff=Backoff(0.01, 0.01),
                attempts=2,
                stop=self.stop,
            ),
            stop=self.stop,
            clock=lambda: self.clocks.mono,
            wall=lambda: self.clocks.wall,
            resync_interval=60.0,
            on_pass=self.reports.append,
            inline_reads=True,  # stepped by hand: the reads run in the tick
            **reactor_kw,  # type: ignore[arg-type]
        )
        self.silent: set[str] = set()
        self.silent_agents: set[tuple[str, str]] = set()  # (host, agent_type): one process

    def close(self) -> None:
        self.stop.set()
        self.server.stop()
        self.cloud.close()

    def beat(self) -> None:
        """Every agent not silenced reports: to the sim's server and, as a bus copy, to us."""
        for agent in self.cloud.agents():
            if agent["host"] in self.silent:
                continue
            if (agent["host"], agent["agent_type"]) in self.silent_agents:
                continue
            self.cloud.heartbeat(agent["host"], agent["agent_type"])
            body = wire.envelope(
                wire.report_state(
                    wire.agent_state_of(agent), now=self.clocks.wall, reply_q="reply_x"
                )
            )
            message = decode(
                body,
                content_type="application/json",
                content_encoding="utf-8",
                exchange="neutron",
                routing_key="q-reports-plugin",
                properties={},
                received_at=self.clocks.mono,
            )
            assert isinstance(message, BusMessage)
            self.reactor.submit(message)

    def run_for(self, seconds: float, *, step: float = 1.0) -> list[PassReport]:
        """Heartbeats every ``step`` seconds (like report_interval), a tick after each."""
        first = len(self.reports)
        elapsed = 0.0
        while elapsed < seconds:
            self.clocks.advance(step)
            elapsed += step
            self.beat()
            self.reactor.pump()
            self.reactor.tick(self.clocks.mono)
            self.settle()
        return self.reports[first:]

    def settle(self) -> None:
        """Tasks run beside the reactor: let those handed over finish before time moves."""
        assert self.reactor.executor.wait_idle(30), "tasks still in flight after 30 s"

    def connect(self) -> None:
        self.reactor.connection_changed(True)
        self.reactor.pump()

    def on(self, host: str) -> set[str]:
        return {r for r in self.routers if self.l3[host] in self.cloud.router_agents(r)}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, monkeypatch)
    yield w
    w.close()


def settle(world: World) -> None:
    """Connected, listened a full agent_down_time, start-up passes done."""
    world.connect()
    world.run_for(ADT + 2)


def test_idle_ticks_make_no_api_calls(world: World) -> None:
    settle(world)
    world.server.calls.reset()
    reports = world.run_for(30)
    assert reports == [] and world.server.calls.total == 0
    # ... until the periodic resync: agents, routers, networks, subnets (4 calls), and no
    # per-agent binding listings, because nothing changed.
    world.run_for(40)
    calls = world.server.calls.snapshot()
    assert sum(calls.values()) == 4, calls
    assert {t for (_, t) in calls} == {
        "/v2.0/agents",
        "/v2.0/routers",
        "/v2.0/networks",
        "/v2.0/subnets",
    }


def test_a_resync_reads_the_bindings_when_something_changed(world: World) -> None:
    settle(world)
    world.server.calls.reset()
    world.cloud.add_router("late")  # created without notifications, bound to nobody
    world.run_for(70)
    late = [r["id"] for r in world.cloud.routers() if r["name"] == "late"]
    assert world.cloud.router_agents(late[0]), "the resync scheduled the new router"
    calls = world.server.calls.snapshot()
    assert calls.get(("GET", "/v2.0/agents/{agent_id}/l3-routers"), 0) >= 3


def test_a_binding_moved_behind_our_back_is_seen_through_reported_counts(
    world: World,
) -> None:
    settle(world)
    # Someone unbinds a router from net1 by hand: no listing changes, but net1's own
    # report of how many routers it hosts does.
    world.cloud.remove_router_from_agent(world.l3["net1"], world.routers[0])
    world.run_for(70)
    assert world.cloud.router_agents(world.routers[0]), "rescheduled at the resync"


def test_a_death_starts_a_pass_at_once_and_moves_the_routers(world: World) -> None:
    settle(world)
    world.silent.add("net1")
    reports = world.run_for(ADT + 2)
    triggers = [r.trigger for r in reports]
    assert any("agent-dead" in t for t in triggers), triggers
    assert world.on("net1") == set()
    assert world.on("net2") | world.on("net3") == set(world.routers)
    # spread: 4 routers over 2 live agents
    assert len(world.on("net2")) == len(world.on("net3")) == 2


def test_no_death_while_the_bus_is_down_nor_in_the_window_after(world: World) -> None:
    settle(world)
    world.reactor.connection_changed(False)
    world.reactor.pump()
    world.silent.add("net1")  # net1 really dies while we are deaf
    world.run_for(3 * ADT)
    assert world.on("net1") == set(world.routers)  # nothing moved while disconnected
    world.connect()
    # after a 30 s outage: a grace as long as the outage (at most 2 x agent_down_time) for
    # agents that reconnect late (core.rejoin), then a full agent_down_time of listening
    world.run_for(2 * ADT + ADT - 2)
    assert world.on("net1") == set(world.routers)  # nor while listening < agent_down_time
    world.run_for(4)
    assert world.on("net1") == set()  # then, dead by our clock and by the API's: moved


def test_an_agent_the_api_calls_alive_is_not_moved(world: World) -> None:
    settle(world)
    # Our copy of net1's heartbeats stops (say, a binding problem), but Neutron still hears it.
    world.silent.add("net1")
    for _ in range(int(ADT) + 3):
        world.clocks.advance(1)
        world.cloud.heartbeat("net1", L3_AGENT)
        world.cloud.heartbeat("net1", DHCP_AGENT)
        world.beat()
        world.reactor.pump()
        world.reactor.tick(world.clocks.mono)
    assert world.on("net1") == set(world.routers)


def test_the_breaker_holds_when_most_agents_die(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    settle(world)
    world.silent.update({"net1", "net2"})
    with caplog.at_level(logging.ERROR, logger="rpcdaemon.runtime"):
        world.run_for(ADT + 3)
    assert world.on("net1") == set(world.routers)
    assert any("breaker open" in r.getMessage() for r in caplog.records)
    last = world.reactor.last_pass
    assert last is not None and any(b.open for b in last.breakers)


@pytest.mark.parametrize("mode", ["dry_run", "standby"])
def test_dry_run_and_standby_plan_but_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    kw: dict[str, object] = {"dry_run": True} if mode == "dry_run" else {"is_leader": lambda: False}
    world = World(tmp_path, monkeypatch, **kw)
    try:
        settle(world)
        world.silent.add("net1")
        reports = world.run_for(ADT + 2)
        planned = [t for r in reports for p in r.plans for t in p.tasks]
        assert planned, "a plan was made"
        assert not any(r.executed for r in reports)
        assert world.on("net1") == set(world.routers)
    finally:
        world.close()


def test_leftover_agent_records_do_not_open_the_breaker(world: World) -> None:
    # Three records of removed hosts: never heard on the bus, dead for the API, hosting
    # nothing. Counting them, one real death would make 4 of 6 L3 agents dead.
    for host in ("old1", "old2", "old3"):
        world.cloud.add_agent(L3_AGENT, host)
        world.silent.add(host)
    settle(world)
    world.silent.add("net1")
    world.run_for(ADT + 2)
    assert world.on("net1") == set()
    last = world.reactor.last_pass
    assert last is not None and not any(b.open for b in last.breakers)


def test_a_standby_with_a_capped_plan_does_not_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch, is_leader=lambda: False)
    try:
        for router in [world.cloud.add_router(f"x{i}")["id"] for i in range(150)]:
            world.cloud.add_router_to_agent(world.l3["net1"], router)
        settle(world)
        world.silent.add("net1")
        reports = world.run_for(ADT + 5)
        # 154 routers > max_moves_per_pass (100): a leader would chain passes; a standby
        # that acts on nothing must not re-read Neutron back to back.
        assert 1 <= len(reports) <= 6, [r.trigger for r in reports]
    finally:
        world.close()


def test_a_failure_that_persists_is_retried_with_growing_delays(world: World) -> None:
    from rpcdaemon.sim.api import FaultPlan

    settle(world)
    # Neutron refuses every router add with a 503: each pass fails its tasks.
    world.server.faults = FaultPlan(
        rate_503=1.0, only=lambda m, t: m == "POST" and t.endswith("/l3-routers")
    )
    world.silent.add("net1")
    reports = world.run_for(ADT + 60)
    failing = [r for r in reports if r.executed]
    assert failing, "it tried"
    gaps = [b.started - a.started for a, b in zip(failing, failing[1:], strict=False)]
    assert len(failing) < 15, len(failing)  # not one pass every 0.5 s
    assert gaps == sorted(gaps) or gaps[-1] >= gaps[0], gaps


class HeldAdds:
    """The executor's Neutron: router adds wait for ``release`` (a plan stuck in flight);
    every write is logged as (verb, router)."""

    def __init__(self, inner: NeutronPort) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.writes: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def remove_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        with self._lock:
            self.writes.append(("remove", router_id))
        self.inner.remove_router(agent_id, router_id)

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        with self._lock:
            self.writes.append(("add", router_id))
        assert self.release.wait(30), "never released"
        self.inner.add_router(agent_id, router_id)


def test_passes_while_tasks_are_in_flight_give_no_resource_a_second_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[HeldAdds] = []

    def wrap(inner: NeutronPort) -> NeutronPort:
        held.append(HeldAdds(inner))
        return held[0]  # type: ignore[return-value]

    world = World(tmp_path, monkeypatch, wrap=wrap)
    try:
        settle(world)
        gate = held[0]
        world.silent.add("net1")
        passes: list[PassReport] = []
        # net1 dies: its 4 routers are handed over; their adds hang. Time goes on, and
        # more passes run (a resync, a notification-like trigger) while they hang.
        for _ in range(int(ADT) + 2):
            world.clocks.advance(1)
            world.beat()
            world.reactor.pump()
            report = world.reactor.tick(world.clocks.mono)
            if report is not None:
                passes.append(report)
        assert world.reactor.executor.in_flight == 4
        # wait (not sleep) until every worker has done its remove and hangs in its add, so
        # that the next snapshots see the routers unhosted
        deadline = time.monotonic() + 15
        while sum(1 for verb, _ in gate.writes if verb == "add") < 4:
            assert time.monotonic() < deadline, gate.writes
            time.sleep(0.01)
        for _ in range(2):
            world.reactor.schedule = world.reactor.schedule.call("test")
            report = world.reactor.tick(world.clocks.mono)
            assert report is not None and report.view is not None
            passes.append(report)
            # the snapshot shows the routers unhosted (removed, add pending): the planner
            # would add them again; the guard leaves them to the tasks in flight
            assert all(not report.view.router_bindings.get(RouterId(r)) for r in world.routers)
            assert report.handed == 0 and not any(p.tasks for p in report.plans)
        assert len([p for p in passes if p.view is not None]) >= 3
        gate.release.set()
        world.settle()
        world.run_for(5)  # the follow-up verifies from fresh state
        for router in world.routers:
            assert gate.writes.count(("remove", router)) == 1, gate.writes
            assert gate.writes.count(("add", router)) == 1, gate.writes
        assert world.on("net1") == set()
        assert world.on("net2") | world.on("net3") == set(world.routers)
    finally:
        world.close()


def test_after_a_failed_snapshot_no_pass_runs_before_the_announced_backoff(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from rpcdaemon.sim.api import FaultPlan

    settle(world)
    # net1 dies, and Neutron's agent list answers 503: every snapshot fails.
    world.silent.add("net1")
    world.server.faults = FaultPlan(
        rate_503=1.0, only=lambda m, t: m == "GET" and t == "/v2.0/agents"
    )
    world.reactor.schedule = world.reactor.schedule.call("test")
    with caplog.at_level(logging.INFO, logger="rpcdaemon.runtime"):
        # failures at +1, +2, +4, +8 (then 8 s of backoff); net1 is declared dead at +11
        reports = world.run_for(12)
        world.server.faults = None
        reports += world.run_for(8)
    failed = [r for r in reports if r.error]
    starts = [r.started for r in failed]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [1.0, 2.0, 4.0]
    announced = [r.getMessage() for r in caplog.records if "not sooner" in r.getMessage()]
    assert [m.split("the next pass in ")[1] for m in announced] == [
        "1s, not sooner",
        "2s, not sooner",
        "4s, not sooner",
        "8s, not sooner",
    ]
    assert any("is DOWN" in r.getMessage() for r in caplog.records)
    dead_pass = next(r for r in reports if "agent-dead" in r.trigger)
    assert dead_pass.error is None
    assert dead_pass.started == starts[-1] + 8.0  # when the backoff ended, not sooner
    assert reports.index(dead_pass) == len(failed)  # no pass in between
    assert any("a death waits for it too" in r.getMessage() for r in caplog.records)
    assert world.on("net1") == set()
