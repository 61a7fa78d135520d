"""The executor against the simulated Neutron's real HTTP API, through the real adapter.

What it must get right: remove-before-add moves, retries of temporary errors, Neutron's
"500 but the binding is saved" answer, agents coming back mid-evacuation, and races with a
second actor that end quietly (the next pass re-plans).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcdaemon.adapters.neutron import NeutronAdapter, connect
from rpcdaemon.core.actions import Plan, Task, add_network, add_router, remove_router
from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.ids import AgentId, NetworkId, RouterId
from rpcdaemon.runtime.executor import ActionResult, Executor, Outcome
from rpcdaemon.settings import NeutronApiSettings
from rpcdaemon.sim.api import FaultPlan, SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT

FAST = Backoff(0.01, 0.04)  # 0.01, 0.02, 0.04 s between 4 attempts
FAST_KW: dict[str, object] = {"backoff": FAST, "attempts": 4}


class Clock:
    """The simulated cloud's wall clock, moved by hand (agents' liveness follows it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cloud(clock: Clock) -> Iterator[SimCloud]:
    c = SimCloud(agent_down_time=10.0, rpc_response_timeout=0.2, clock=clock)
    yield c
    c.close()


@pytest.fixture
def server(cloud: SimCloud) -> Iterator[SimNeutronServer]:
    with SimNeutronServer(cloud) as s:
        yield s


@pytest.fixture
def neutron(
    server: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> NeutronAdapter:
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n  sim:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {server.network_url}\n"
        f"    network_endpoint_override: {server.network_url}\n"
    )
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    return connect(NeutronApiSettings(cloud="sim", auth=None, source="test", timeout=5.0))


def move(router: str, source: str, target: str) -> Task:
    r, s, t = RouterId(router), AgentId(source), AgentId(target)
    why = f"router {router}: agent {source} is dead"
    return Task((remove_router(r, s, why), add_router(r, t, why)), why, source_agent=s)


def three_agents_one_router(cloud: SimCloud, clock: Clock) -> tuple[str, str, str, str]:
    a, b, c = (cloud.add_agent(L3_AGENT, h)["id"] for h in ("net1", "net2", "net3"))
    router = cloud.add_router("r1")["id"]
    cloud.add_router_to_agent(a, router)
    clock.now += 60  # nobody reported for 60 s > agent_down_time: all dead per the API
    cloud.heartbeat("net2", L3_AGENT)
    cloud.heartbeat("net3", L3_AGENT)
    return a, b, c, router


def test_a_move_removes_then_adds(cloud: SimCloud, clock: Clock, neutron: NeutronAdapter) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    results = Executor(neutron, backoff=FAST, attempts=4).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    assert [r.outcome for r in results] == [Outcome.OK]
    assert [x.action.verb.value for x in results[0].results] == ["remove_router", "add_router"]
    assert cloud.router_agents(router) == {b}


def test_temporary_errors_are_retried_with_backoff(
    cloud: SimCloud, clock: Clock, server: SimNeutronServer, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    failures = [2]  # the first two POSTs to l3-routers answer 503

    def only(method: str, template: str) -> bool:
        if method == "POST" and template.endswith("/l3-routers") and failures[0] > 0:
            failures[0] -= 1
            return True
        return False

    server.faults = FaultPlan(rate_503=1.0, only=only)
    results = Executor(neutron, backoff=FAST, attempts=4).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    add = results[0].results[1]
    assert add.outcome is Outcome.OK and add.attempts == 3
    assert cloud.router_agents(router) == {b}


def test_retries_are_bounded_and_the_failure_reported(
    cloud: SimCloud, clock: Clock, server: SimNeutronServer, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    server.faults = FaultPlan(
        rate_503=1.0, only=lambda m, t: m == "POST" and t.endswith("/l3-routers")
    )
    results = Executor(neutron, backoff=FAST, attempts=4).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    assert results[0].outcome is Outcome.FAILED
    add = results[0].results[1]
    assert add.outcome is Outcome.FAILED and add.attempts == 4
    # Removed but not added: an unhosted router, which the next pass schedules.
    assert cloud.router_agents(router) == set()


def test_a_500_after_the_binding_was_saved_counts_as_done(
    cloud: SimCloud, clock: Clock, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    # b's process is gone: router_added_to_agent (an RPC call) times out twice, Neutron
    # answers 500 -- but it committed the binding first.
    cloud.set_agent_process(b, False)
    results = Executor(neutron, backoff=FAST, attempts=4).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    add = results[0].results[1]
    assert add.outcome is Outcome.OK and add.attempts == 1
    assert "saved" in add.detail
    assert cloud.router_agents(router) == {b}


def test_a_source_agent_alive_again_stops_its_moves(
    cloud: SimCloud, clock: Clock, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    cloud.heartbeat("net1", L3_AGENT)  # it came back before we got to it
    results = Executor(neutron, backoff=FAST, attempts=4).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    assert results[0].outcome is Outcome.SKIPPED
    assert "alive again" in results[0].detail
    assert cloud.router_agents(router) == {a}


def test_a_heartbeat_seen_on_the_bus_stops_moves_without_an_api_read(
    cloud: SimCloud, clock: Clock, server: SimNeutronServer, neutron: NeutronAdapter
) -> None:
    a, b, c, router = three_agents_one_router(cloud, clock)
    second = cloud.add_router("r2")["id"]
    cloud.add_router_to_agent(a, second)
    server.calls.reset()
    executor = Executor(neutron, backoff=FAST, attempts=4, max_concurrency=1)
    executor.set_agent_is_back(lambda agent, since: agent == a)
    plan = Plan("L3Agent", (move(router, a, b), move(second, a, c)))
    results = executor.run(plan)
    assert [r.outcome for r in results] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert server.calls.total == 0
    assert cloud.router_agents(router) == {a} and cloud.router_agents(second) == {a}
    # a later pass (a later ``since``) re-checks afresh: the agent is dead again by then
    executor.set_agent_is_back(lambda agent, since: False)
    again = executor.run(Plan("L3Agent", (move(router, a, b),)))
    assert [r.outcome for r in again] == [Outcome.OK]
    assert cloud.router_agents(router) == {b}


def test_a_router_moved_by_someone_else_ends_quietly(
    cloud: SimCloud, clock: Clock, neutron: NeutronAdapter
) -> None:
    a, b, c, router = three_agents_one_router(cloud, clock)
    # Another actor moved it to c between our snapshot and our move.
    cloud.remove_router_from_agent(a, router)
    cloud.add_router_to_agent(c, router)
    seen: list[ActionResult] = []
    results = Executor(neutron, backoff=FAST, attempts=4, on_action=seen.append).run(
        Plan("L3Agent", (move(router, a, b),))
    )
    remove, add = results[0].results
    assert remove.outcome is Outcome.OK  # L3 remove of an unhosted router: 204
    assert add.outcome is Outcome.SKIPPED and "RouterHostedByL3Agent" in add.detail
    assert add.attempts == 1  # a conflict is not retried
    assert cloud.router_agents(router) == {c}
    assert [r.outcome for r in seen] == [Outcome.OK, Outcome.SKIPPED]


def test_dhcp_already_hosted_is_success(cloud: SimCloud, neutron: NeutronAdapter) -> None:
    agent = cloud.add_agent(DHCP_AGENT, "net1")["id"]
    network = cloud.add_network("n1")["id"]
    cloud.add_network_to_agent(agent, network)
    task = Task((add_network(NetworkId(network), AgentId(agent), "replicate"),), "replicate")
    results = Executor(neutron, backoff=FAST, attempts=4).run(Plan("DHCPAgent", (task,)))
    assert results[0].outcome is Outcome.OK
    assert cloud.network_agents(network) == {agent}


def test_concurrency_is_bounded(
    cloud: SimCloud, clock: Clock, server: SimNeutronServer, neutron: NeutronAdapter
) -> None:
    a, b, _, _ = three_agents_one_router(cloud, clock)
    routers = [cloud.add_router(f"x{i}")["id"] for i in range(12)]
    for r in routers:
        cloud.add_router_to_agent(a, r)
    server.latency = 0.05
    lock = threading.Lock()
    in_flight = [0, 0]  # current, peak

    class Counting:
        def __init__(self, inner: NeutronAdapter) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def _wrap(self, fn: str, *args: object) -> None:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                getattr(self.inner, fn)(*args)
            finally:
                with lock:
                    in_flight[0] -= 1

        def add_router(self, agent_id: AgentId, router_id: RouterId) -> None:
            self._wrap("add_router", agent_id, router_id)

        def remove_router(self, agent_id: AgentId, router_id: RouterId) -> None:
            self._wrap("remove_router", agent_id, router_id)

    executor = Executor(Counting(neutron), backoff=FAST, attempts=4, max_concurrency=3)  # type: ignore[arg-type]
    results = executor.run(Plan("L3Agent", tuple(move(r, a, b) for r in routers)))
    assert all(r.outcome is Outcome.OK for r in results)
    assert 1 < in_flight[1] <= 3
    assert cloud.routers_on(b) == set(routers)


def test_a_leader_that_steps_down_mid_plan_stops_acting(
    cloud: SimCloud, clock: Clock, server: SimNeutronServer, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    second = cloud.add_router("r2")["id"]
    cloud.add_router_to_agent(a, second)
    leader = [True]
    seen: list[ActionResult] = []

    def observe(result: ActionResult) -> None:
        seen.append(result)
        leader[0] = False  # the election backend is lost after the first action

    executor = Executor(neutron, backoff=FAST, attempts=4, max_concurrency=1, on_action=observe)
    executor.set_is_leader(lambda: leader[0])
    server.calls.reset()
    results = executor.run(Plan("L3Agent", (move(router, a, b), move(second, a, b))))
    assert results[1].outcome is Outcome.SKIPPED and "leader" in results[1].detail
    assert cloud.router_agents(second) == {a}  # the second move never started
    writes = sum(n for (m, _), n in server.calls.snapshot().items() if m != "GET")
    assert writes == 2  # the first task's remove + add only


class _RetryAfterOnce:
    """A NeutronPort whose first add answers 'temporarily unavailable, retry after 0.3 s'."""

    def __init__(self) -> None:
        self.adds = 0

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        from rpcdaemon.core.errors import TemporaryError

        self.adds += 1
        if self.adds == 1:
            raise TemporaryError("503 Service Unavailable", delay=0.3)

    def router_agents(self, router_id: RouterId) -> frozenset[AgentId]:
        return frozenset()


def test_retry_after_is_honoured() -> None:
    waits: list[float] = []
    port = _RetryAfterOnce()
    executor = Executor(
        port,  # type: ignore[arg-type]
        backoff=FAST,
        attempts=4,
        sleep=lambda s: waits.append(s) or False,
    )
    task = Task((add_router(RouterId("r"), AgentId("b"), "test"),), "test")
    results = executor.run(Plan("L3Agent", (task,)))
    assert results[0].outcome is Outcome.OK and port.adds == 2
    assert waits == [0.3]  # the server's Retry-After, not our first backoff (0.01 s)


class SlowAdds:
    """Router adds take ``delay`` seconds (an agent that is slow to answer its RPC)."""

    def __init__(self, inner: NeutronAdapter, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.adding = threading.Event()  # set when an add has started

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None:
        self.adding.set()
        time.sleep(self.delay)
        self.inner.add_router(agent_id, router_id)


def test_submit_returns_at_once_and_refuses_a_resource_in_flight(
    cloud: SimCloud, clock: Clock, neutron: NeutronAdapter
) -> None:
    a, b, c, router = three_agents_one_router(cloud, clock)
    executor = Executor(SlowAdds(neutron, 0.5), **FAST_KW)  # type: ignore[arg-type]
    t0 = time.monotonic()
    accepted = executor.submit("L3Agent", (move(router, a, b),), since=1.0)
    assert len(accepted) == 1 and time.monotonic() - t0 < 0.3  # handed over, not run
    assert executor.busy() == {router} and executor.in_flight == 1
    assert executor.submit("L3Agent", (move(router, a, c),), since=2.0) == []
    assert executor.wait_idle(10)
    (result,) = executor.take_finished()
    assert result.outcome is Outcome.OK and result.plugin == "L3Agent"
    assert cloud.router_agents(router) == {b}
    assert executor.busy() == frozenset() and executor.take_finished() == []
    assert executor.dead_threads() == ()


def test_shutdown_finishes_the_move_in_flight_and_starts_no_other(
    cloud: SimCloud, clock: Clock, neutron: NeutronAdapter
) -> None:
    a, b, _, router = three_agents_one_router(cloud, clock)
    second = cloud.add_router("r2")["id"]
    cloud.add_router_to_agent(a, second)
    stop = threading.Event()
    slow = SlowAdds(neutron, 0.5)
    executor = Executor(slow, max_concurrency=1, stop=stop, **FAST_KW)  # type: ignore[arg-type]
    executor.submit("L3Agent", (move(router, a, b), move(second, a, b)), since=1.0)
    assert slow.adding.wait(10)  # the first task removed the router and is adding it
    stop.set()
    assert executor.shutdown(10)
    outcomes = {r.task.resources: r.outcome for r in executor.take_finished()}
    assert outcomes == {frozenset({router}): Outcome.OK, frozenset({second}): Outcome.SKIPPED}
    assert cloud.router_agents(router) == {b}  # never left unhosted
    assert cloud.router_agents(second) == {a}  # never started
