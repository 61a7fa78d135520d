"""The runtime tells the truth about its health: failing ticks are counted in the status,
and a needed thread that dies stops the process with a non-zero exit."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from rpcdaemon.core.actions import Plan, Task, add_router
from rpcdaemon.core.ids import AgentId, Liveness, RouterId
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView, Inventory
from rpcdaemon.runtime import services
from rpcdaemon.runtime.executor import Executor
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.runtime.watch import ThreadWatch
from rpcdaemon.settings import DaemonSettings, Settings
from rpcdaemon.testing import make_agent, make_view


class StaticNeutron:
    """A NeutronPort fake: one live L3 agent, nothing to do."""

    def __init__(self) -> None:
        self.view = make_view(agents=[make_agent("a")])

    def snapshot(self, *, routers: bool = True, networks: bool = True) -> ClusterView:
        return self.view

    def inventory(self, *, routers: bool = True, networks: bool = True) -> Inventory:
        return Inventory(agents=dict(self.view.agents), routers={}, networks={})


class NoPlanner:
    name = "L3Agent"
    agent_type = "L3 agent"

    def bindings(self) -> tuple[()]:
        return ()

    def observe(self, message: object) -> None:
        return None

    def plan(
        self, view: ClusterView, verdicts: dict[AgentId, Liveness], policy: Policy, now: float
    ) -> Plan:
        return Plan(self.name)


def test_failing_ticks_are_counted_then_cleared_and_hooks_fire() -> None:
    failing = threading.Event()
    failing.set()

    def leader() -> bool:
        if failing.is_set():
            raise RuntimeError("election backend exploded")
        return True

    stop = threading.Event()
    ticks: list[float] = []
    ready: list[bool] = []
    neutron = StaticNeutron()
    reactor = Reactor(
        planners=[NoPlanner()],  # type: ignore[list-item]
        policies={},
        neutron=neutron,  # type: ignore[arg-type]
        executor=Executor(neutron, stop=stop),  # type: ignore[arg-type]
        stop=stop,
        is_leader=leader,
        check_interval=0.01,
        on_tick=lambda: ticks.append(time.monotonic()),
        on_ready=lambda: ready.append(True),
    )
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while reactor.status(**_flags()).tick_failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = reactor.status(**_flags())
        assert snap.tick_failures >= 3
        assert snap.last_tick_error is not None and "exploded" in snap.last_tick_error
        assert ticks, "on_tick fires after the first failing ticks (below MAX_TICK_FAILURES)"
        assert ready == []  # no snapshot read yet
        failing.clear()
        while reactor.status(**_flags()).tick_failures and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = reactor.status(**_flags())
        assert snap.tick_failures == 0 and "exploded" in (snap.last_tick_error or "")
        while not ready and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready == [True]  # once, after the first snapshot
    finally:
        stop.set()
        thread.join(5)


def _flags() -> dict[str, bool]:
    return {"is_leader": True, "coordination_connected": True, "dry_run": False}


def test_thread_watch_reports_a_thread_that_ended() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="needed", daemon=True)
    watch = ThreadWatch()
    watch.add_named("needed")
    watch.add_named("not-started-yet")
    watch.add_pool(lambda: ("rpcd-exec-3",))
    assert watch.dead() == ("rpcd-exec-3",)  # unseen threads are not dead
    worker.start()
    assert watch.dead() == ("rpcd-exec-3",)
    release.set()
    worker.join(5)
    assert watch.dead() == ("needed", "rpcd-exec-3")
    assert watch.names() == ("needed", "not-started-yet")


@pytest.mark.broker
def test_a_dead_needed_thread_stops_the_daemon_with_exit_status_1(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(path="t", daemon=DaemonSettings(plugins=(), amqp_url=amqp_url))
    dead: list[tuple[str, ...]] = [()]
    threading.Timer(1.0, lambda: dead.__setitem__(0, ("reactor",))).start()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="rpcdaemon.runtime"):
        status = services.run(
            settings, stop=threading.Event(), plugins=(), dead_threads=lambda: dead[0]
        )
    assert status == 1
    assert time.monotonic() - started < 10
    assert any(
        "reactor" in r.getMessage() and "exit status 1" in r.getMessage() for r in caplog.records
    )


class RecordingNeutron(StaticNeutron):
    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, str]] = []

    def add_router(self, agent_id: AgentId, router_id: str) -> None:
        self.added.append((agent_id, router_id))


class BrokenPlanner(NoPlanner):
    name = "Broken"
    agent_type = "DHCP agent"

    def plan(
        self, view: ClusterView, verdicts: dict[AgentId, Liveness], policy: Policy, now: float
    ) -> Plan:
        raise KeyError("a planner bug")


class OneAdd(NoPlanner):
    def plan(
        self, view: ClusterView, verdicts: dict[AgentId, Liveness], policy: Policy, now: float
    ) -> Plan:
        action = add_router(RouterId("r1"), AgentId("a"), "test: host r1")
        return Plan(self.name, (Task((action,), "test: host r1"),))


def test_a_planner_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    neutron = RecordingNeutron()
    reactor = Reactor(
        planners=[BrokenPlanner(), OneAdd()],  # type: ignore[list-item]
        policies={},
        neutron=neutron,  # type: ignore[arg-type]
        executor=Executor(neutron, stop=stop),  # type: ignore[arg-type]
        stop=stop,
        inline_reads=True,
    )
    with caplog.at_level(logging.ERROR, logger="rpcdaemon.runtime"):
        report = reactor.tick(1.0)
    assert report is not None and report.error is None
    assert reactor.executor.wait_idle(10)
    assert neutron.added == [("a", "r1")]
    broken, planned = report.plans
    assert broken.plugin == "Broken" and broken.held == ("planning failed: 'a planner bug'",)
    assert planned.plugin == "L3Agent" and report.handed == 1
    assert any("[Broken] planning failed" in r.getMessage() for r in caplog.records)
    stop.set()
