"""The reactor reads Neutron off its thread: a slow API does not stop its ticks.

Also: the last good pass is kept for status, the watchdog stops being fed when every tick
fails, the intake inbox is bounded, and evacuated (admin-down, empty) agents do not count
in the circuit breaker."""

from __future__ import annotations

import threading
import time

from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import AgentId, Host, Liveness, RouterId
from rpcdaemon.core.liveness import AgentKey, LivenessModel, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.core.statusview import status_model
from rpcdaemon.core.view import ClusterView, Inventory
from rpcdaemon.plugins.l3agent import L3AgentPlugin
from rpcdaemon.runtime.executor import Executor
from rpcdaemon.runtime.intake import Intake
from rpcdaemon.runtime.passes import leftovers
from rpcdaemon.runtime.reactor import FEED_INTERVAL, Reactor
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.testing import make_agent, make_heartbeat, make_router, make_view

L3 = "L3 agent"
ADT = 10.0


class SlowNeutron:
    """Snapshots block on ``release`` once ``gate`` is set; ``fail`` makes them raise."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self.gate = threading.Event()
        self.release = threading.Event()
        self.reading = threading.Event()
        self.fail = False
        self.snapshots = 0

    def snapshot(self, *, routers: bool = True, networks: bool = True) -> ClusterView:
        self.snapshots += 1
        if self.gate.is_set():
            self.reading.set()
            assert self.release.wait(30), "never released"
        if self.fail:
            raise RuntimeError("Neutron API down")
        return self.view

    def inventory(self, *, routers: bool = True, networks: bool = True) -> Inventory:
        return Inventory(agents=dict(self.view.agents), routers={}, networks={})


def cloud(*, b_admin_up: bool = True) -> ClusterView:
    """Three L3 agents; b's API flag says dead; c hosts two routers."""
    return make_view(
        agents=[
            make_agent("a", host="na"),
            make_agent("b", host="nb", alive=False, admin_state_up=b_admin_up),
            make_agent("c", host="nc", alive=False),
        ],
        routers=[make_router("r1"), make_router("r2")],
        router_bindings={"r1": ["c"], "r2": ["c"]},
    )


def reactor_for(
    neutron: SlowNeutron, stop: threading.Event, **kw: object
) -> tuple[Reactor, list[PassReport], list[Transition]]:
    settings = Settings(
        path="t",
        daemon=DaemonSettings(),
        l3=AgentPluginSettings(name="L3Agent", agent_down_time=ADT),
    )
    reports: list[PassReport] = []
    changes: list[Transition] = []
    reactor = Reactor(
        planners=[L3AgentPlugin(settings)],  # type: ignore[list-item]
        policies={L3: Policy(agent_down_time=ADT)},
        neutron=neutron,  # type: ignore[arg-type]
        executor=Executor(neutron, stop=stop),  # type: ignore[arg-type]
        stop=stop,
        dry_run=True,
        on_pass=reports.append,
        on_transition=changes.append,
        **kw,  # type: ignore[arg-type]
    )
    return reactor, reports, changes


def beat(reactor: Reactor, now: float, *hosts: str) -> None:
    for host in hosts:
        assert reactor.intake.accept(make_heartbeat(host=host, agent_type=L3, received_at=now))
    reactor.pump()


def status_of(reactor: Reactor) -> StatusSnapshot:
    return reactor.status(is_leader=True, coordination_connected=True, dry_run=False)


def wait_read(reactor: Reactor) -> None:
    deadline = time.monotonic() + 10
    while reactor.reading and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not reactor.reading


def settled(reactor: Reactor, now: float) -> PassReport | None:
    """A tick that starts a (fast) read, then the tick that plans it once it is done."""
    report = reactor.tick(now)
    if report is None:
        wait_read(reactor)
        report = reactor.tick(now)  # the reactor plans from the finished read
    return report


def test_ticks_go_on_during_a_slow_snapshot_and_a_death_then_gets_its_passes() -> None:
    neutron, stop = SlowNeutron(cloud()), threading.Event()
    reactor, reports, changes = reactor_for(neutron, stop, clock=lambda: 1000.0)
    try:
        reactor.connection_changed(True)
        beat(reactor, 1000.0, "na", "nb", "nc")
        first = settled(reactor, 1000.0)
        assert first is not None and "startup" in first.trigger and first.view is not None
        # a pass is called for; its snapshot hangs (a slow Neutron)
        neutron.gate.set()
        reactor.schedule = reactor.schedule.call("test")
        assert reactor.tick(1001.0) is None
        assert neutron.reading.wait(5) and reactor.reading
        # ... and the reactor keeps judging: c falls silent and is declared dead meanwhile
        for second in range(2, 13):
            beat(reactor, 1000.0 + second, "na", "nb")
            assert reactor.tick(1000.0 + second) is None, "no pass while the read hangs"
        assert any(c.key == AgentKey(L3, Host("nc")) and c.new is Liveness.DEAD for c in changes)
        assert neutron.snapshots == 2 and len(reports) == 1  # one read in flight, no more
        neutron.gate.clear()
        neutron.release.set()
        wait_read(reactor)
        planned = reactor.tick(1013.0)
        # the pass of that read plans the death (verdicts come from the model at plan time)
        assert planned is not None and planned.trigger == "test"
        assert planned.verdicts[AgentId("c")] is Liveness.DEAD
        moved = {a.resource_id for p in planned.plans for t in p.tasks for a in t.actions}
        assert moved == {RouterId("r1"), RouterId("r2")}
        # the death's own trigger was kept: a pass from a fresh snapshot right after
        fresh = settled(reactor, 1013.5)
        assert fresh is not None and "agent-dead" in fresh.trigger
        assert neutron.snapshots == 3
    finally:
        neutron.release.set()
        stop.set()


def test_the_loop_feeds_the_watchdog_during_a_hung_read_even_with_a_long_check_interval() -> None:
    neutron, stop = SlowNeutron(cloud()), threading.Event()
    neutron.gate.set()  # the very first snapshot hangs
    fed: list[float] = []
    reactor, _, _ = reactor_for(
        neutron, stop, check_interval=60.0, on_tick=lambda: fed.append(time.monotonic())
    )
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        assert neutron.reading.wait(5)
        time.sleep(3 * FEED_INTERVAL + 0.5)
        assert len(fed) >= 3, fed  # at least every FEED_INTERVAL, not every 60 s
        gaps = [b - a for a, b in zip(fed, fed[1:], strict=False)]
        assert max(gaps) < 2 * FEED_INTERVAL, gaps
        snap = reactor.status(is_leader=True, coordination_connected=True, dry_run=False)
        assert snap.last_tick_at is not None and time.monotonic() - snap.last_tick_at < 2.0
        # shutdown does not wait for the hung read
        started = time.monotonic()
        stop.set()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - started < 2.5
    finally:
        neutron.release.set()
        stop.set()


def test_a_backlog_is_applied_with_one_tick_per_check_interval() -> None:
    neutron, stop = SlowNeutron(cloud()), threading.Event()
    ticks: list[float] = []
    reactor, _, _ = reactor_for(
        neutron, stop, check_interval=0.2, on_tick=lambda: ticks.append(time.monotonic())
    )
    original = reactor.tick
    judged: list[float] = []

    def counting(now: float) -> PassReport | None:
        judged.append(now)
        return original(now)

    reactor.tick = counting  # type: ignore[method-assign]
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # startup pass done
        before = len(judged)
        started = time.monotonic()
        for i in range(3000):  # a consumer busy for about 1.5 s, like a backlog
            reactor.intake.accept(
                make_heartbeat(host="na", agent_type=L3, received_at=started + i * 1e-6)
            )
            if i % 10 == 0:
                time.sleep(0.005)
        while reactor.heartbeats < 3000 and time.monotonic() - started < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        assert reactor.heartbeats == 3000
        # at most one tick per check_interval (plus the one a due pass may add)
        assert len(judged) - before <= elapsed / 0.2 + 3, (len(judged) - before, elapsed)
    finally:
        stop.set()
        thread.join(5)


def test_the_watchdog_is_no_longer_fed_once_every_tick_fails() -> None:
    failing = threading.Event()
    failing.set()

    def leader() -> bool:
        if failing.is_set():
            raise RuntimeError("election backend exploded")
        return True

    neutron, stop = SlowNeutron(cloud()), threading.Event()
    fed: list[float] = []
    reactor, _, _ = reactor_for(
        neutron, stop, check_interval=0.01, is_leader=leader, on_tick=lambda: fed.append(1.0)
    )
    thread = threading.Thread(target=reactor.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while status_of(reactor).tick_failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3 + FEED_INTERVAL)
        assert status_of(reactor).tick_failures > 3
        assert len(fed) == 2  # fed after the 1st and 2nd failures, never after the 3rd
        failing.clear()
        while len(fed) == 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fed) > 2 and status_of(reactor).tick_failures == 0
    finally:
        stop.set()
        thread.join(5)


def test_a_failed_pass_does_not_blank_the_status() -> None:
    neutron, stop = SlowNeutron(cloud()), threading.Event()
    reactor, reports, _ = reactor_for(neutron, stop, inline_reads=True)
    good = reactor.tick(1.0)
    assert good is not None and good.view is not None
    neutron.fail = True
    reactor.schedule = reactor.schedule.call("test")
    failed = reactor.tick(2.0)
    assert failed is not None and failed.error is not None and reports[-1] is failed
    assert reactor.last_pass is good and reactor.last_failure is failed
    # c hosts r1 and r2 and the API calls it dead: the gauge stays, not 0
    assert status_of(reactor).routers_on_dead_agents == 2
    status = status_model(
        reactor, is_leader=True, coordination_connected=True, dry_run=False, pause=None, now=3.0
    )
    assert status is not None and status.last_pass is not None
    assert "Neutron API down" in (status.last_pass.error or "")
    neutron.fail = False
    reactor.tick(5.0)  # the backoff (1 s) has passed: a retry
    assert reactor.last_failure is None and reactor.last_pass is reports[-1]
    stop.set()


def test_the_inbox_drops_unknown_heartbeats_only_when_over_its_cap() -> None:
    intake = Intake(policies={L3: Policy()}, inbox_cap=10)
    intake.know(make_view(agents=[make_agent("a", host="na")]))
    kept = [intake.accept(make_heartbeat(host=f"forged{i}", agent_type=L3)) for i in range(30)]
    assert sum(1 for h in kept if h is not None) == 11 and intake.dropped == 19
    known: Heartbeat | None = intake.accept(make_heartbeat(host="na", agent_type=L3))
    assert known is not None  # a known agent is never dropped
    intake.connection_changed(True)
    assert intake.pump() == 13 and intake.bus.connected
    assert intake.accept(make_heartbeat(host="forged99", agent_type=L3)) is not None


def test_evacuated_disabled_agents_are_left_out_of_the_breaker() -> None:
    view = cloud(b_admin_up=False)  # b: disabled, dead, hosting nothing
    model = LivenessModel()
    model.observe(make_heartbeat(host="nb", agent_type=L3), policy=Policy())  # heard once
    assert leftovers(view, model, L3) == frozenset({AgentId("b")})
    assert leftovers(cloud(), model, L3) == frozenset()  # enabled: counted
    # 3 nodes: b evacuated and off, c fails: the plan runs, the breaker stays closed
    neutron, stop = SlowNeutron(view), threading.Event()
    reactor, reports, _ = reactor_for(neutron, stop, inline_reads=True, clock=lambda: 1000.0)
    reactor.connection_changed(True)
    beat(reactor, 1000.0, "na", "nb", "nc")
    reactor.tick(1000.0)
    for second in range(1, 13):
        beat(reactor, 1000.0 + second, "na")
        reactor.tick(1000.0 + second)
    last = next(r for r in reports if "agent-dead" in r.trigger)
    assert [(b.dead, b.total) for b in last.breakers] == [(1, 2)]
    assert not any(b.open for b in last.breakers)
    assert sum(len(p.tasks) for p in last.plans) == 2
    stop.set()


def test_the_model_gets_the_same_expected_tuple_every_tick_until_the_next_snapshot() -> None:
    neutron, stop = SlowNeutron(cloud()), threading.Event()
    reactor, _, _ = reactor_for(neutron, stop, inline_reads=True)
    seen: list[object] = []
    evaluate = reactor.model.evaluate

    def spy(*args: object, **kw: object) -> list[Transition]:
        seen.append(kw["expected"])
        return evaluate(*args, **kw)  # type: ignore[arg-type]

    reactor.model.evaluate = spy  # type: ignore[method-assign]
    reactor.tick(1.0)  # the startup pass reads the snapshot
    reactor.tick(2.0)
    reactor.tick(3.0)
    assert seen[1] is seen[2]  # the same object: the model skips it in O(1)
    assert seen[1] == tuple(AgentKey(L3, Host(h)) for h in ("na", "nb", "nc"))
    stop.set()
