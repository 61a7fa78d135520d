"""Classify before acting, through the whole reactor: node death, crashed agent, slow node.

The same hand-driven world as test_reactor.py (the simulator's real HTTP API, the real
openstacksdk adapter, the real executor), with an Open vSwitch and a metadata agent on every
host and two compute hosts. Probes go through the real ProbeRunner; the probe function is a
fake that answers for the hosts whose processes run (the real RabbitMQ prober is covered by
tests/integration/test_probe.py and the peer suite).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from tests.integration.test_reactor import ADT, HOSTS, World

from rpcdaemon.core.detection import DetectorPolicy
from rpcdaemon.sim.resources import METADATA_AGENT, OVS_AGENT

COMPUTE = ("comp1", "comp2")


class Processes:
    """Which hosts' agent processes consume their queues (a fake of the RPC probe)."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[tuple[str, ...]] = []

    def probe(self, queues: Sequence[str], timeout: float) -> Mapping[str, str]:
        """Live hosts answer; dead ones hold their queues without answering (a powered-off
        host's connections live on until the broker's heartbeat timeout)."""
        self.calls.append(tuple(queues))
        return {q: "silent" if q.split(".", 1)[1] in self.down else "answered" for q in queues}


@pytest.fixture
def procs() -> Processes:
    return Processes()


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: Processes, **kw: object) -> World:
    world = World(tmp_path, monkeypatch, probe=procs.probe, **kw)
    for host in HOSTS:
        world.cloud.add_agent(OVS_AGENT, host)
        world.cloud.add_agent(METADATA_AGENT, host)
    for host in COMPUTE:
        world.cloud.add_agent(OVS_AGENT, host)
        world.cloud.add_agent(METADATA_AGENT, host)
    return world


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: Processes) -> Iterator[World]:
    w = make(tmp_path, monkeypatch, procs)
    yield w
    w.close()


def run(world: World, seconds: float) -> None:
    """run_for, one second at a time, letting probes answer before the next tick."""
    for _ in range(int(seconds)):
        world.run_for(1)
        probes = world.reactor.probes
        if probes is not None:
            assert probes.wait_idle(10)


def settle(world: World) -> None:
    world.connect()
    run(world, ADT + 5)  # a full window listened, every rhythm learned
    assert world.on("net1") == set(world.routers)


def test_a_dead_node_is_emptied_in_seconds(
    world: World, procs: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settle(world)
    world.silent.add("net1")
    procs.down.add("net1")
    run(world, 4)  # well inside agent_down_time: the API still says alive
    assert world.on("net1") == set(), "the dead node's routers are still there"
    assert {a["host"] for a in world.cloud.agents() if not a["alive"]} == set()
    assert "NODE DOWN" in caplog.text
    assert any("l3_agent.net1" in call for call in procs.calls)
    status = world.reactor.detection
    assert status.node_deaths == 1 and ("net1", "dead") in [(h, s.value) for h, s in status.hosts]


def test_a_crashed_agent_on_a_live_node_waits_for_agent_down_time(
    world: World, procs: Processes
) -> None:
    settle(world)
    # only the L3 agent of net1 stops (its process crashed); DHCP, OVS, metadata report
    world.silent_agents.add(("net1", "L3 agent"))
    run(world, ADT - 2)
    assert world.on("net1") == set(world.routers), "moved off a live node before agent_down_time"
    assert procs.calls == []  # one silent agent of four: nothing to confirm
    run(world, 6)
    assert world.on("net1") == set()  # today's rule: agent_down_time and the API


def test_a_slow_node_that_answers_is_not_moved_early(world: World, procs: Processes) -> None:
    settle(world)
    world.silent.add("net1")  # no reports...
    run(world, ADT - 3)  # ... but its agents answer the probe
    assert world.on("net1") == set(world.routers)
    assert world.reactor.detection.node_deaths == 0


def test_many_hosts_silent_together_is_a_disruption(world: World, procs: Processes) -> None:
    settle(world)
    world.silent.update({"net1", "net2", "comp1"})
    procs.down.update({"net1", "net2", "comp1"})
    run(world, ADT - 3)
    assert world.on("net1") == set(world.routers)
    assert world.reactor.detection.node_deaths == 0


def test_switched_off_it_is_todays_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: Processes
) -> None:
    world = make(tmp_path, monkeypatch, procs, detection=DetectorPolicy(enabled=False))
    try:
        settle(world)
        world.silent.add("net1")
        procs.down.add("net1")
        run(world, ADT - 3)
        assert world.on("net1") == set(world.routers)
        assert procs.calls == []
        run(world, 8)
        assert world.on("net1") == set()  # agent_down_time and the API: as before
    finally:
        world.close()
