"""What ``rpcdaemon demo`` shows: convergence, the table, readable names, the daemon's
detector records as timeline events, and the broker it picks."""

from __future__ import annotations

import logging

import pytest

from rpcdaemon.sim.demoview import (
    DaemonTap,
    Names,
    Timeline,
    converged,
    masked_url,
    pick_amqp,
    table,
)
from rpcdaemon.sim.resources import L3_AGENT
from rpcdaemon.sim.scenario import build_cloud


def test_converged_follows_the_dead_agents_and_the_table_marks_them() -> None:
    cloud = build_cloud(
        l3_agents=2,
        dhcp_agents=2,
        routers=2,
        networks=1,
        node_agents=True,
        compute_hosts=1,
        seed=1,
    )
    assert converged(cloud, ())[0] is False  # one network on one of two DHCP agents
    for agent in cloud.agents():
        if agent["agent_type"] == "DHCP agent":
            for net in cloud.networks():
                if agent["id"] not in cloud.network_agents(net["id"]):
                    cloud.add_network_to_agent(agent["id"], net["id"])
    assert converged(cloud, ()) == (True, [])
    l3 = {a["host"]: a["id"] for a in cloud.agents() if a["agent_type"] == L3_AGENT}
    loaded = max(l3.values(), key=lambda a: len(cloud.routers_on(a)))
    ok, problems = converged(cloud, {loaded})
    assert not ok and all("no live L3 agent" in p for p in problems)
    rows = table(cloud, {loaded})
    assert any("L3 agent" in r and "DEAD" in r for r in rows)
    assert any(r.strip().startswith("compute1") and "OVS" in r for r in rows)
    names = Names(cloud)
    assert names.of(f"agent {loaded} here").startswith("agent L3@net")
    cloud.close()


def test_the_tap_turns_detector_records_into_timeline_events() -> None:
    cloud = build_cloud(l3_agents=1, dhcp_agents=0, routers=0, networks=0)
    timeline = Timeline(None)
    tap = DaemonTap(timeline, Names(cloud))
    tap.attach()
    log = logging.getLogger("rpcdaemon.runtime.nodes")
    try:
        log.warning("fast failover held: %s", "listening")  # not armed yet: ignored
        log.info("node %s: every agent silent past its rhythm; probing %s", "net1", "l3_agent.net1")
        tap.armed = True
        log.warning("fast failover held: %s", "a disruption")
        log.warning("NODE DOWN: %s", "node net1 dead")
        log.warning("node %s is back (%s)", "net1", "L3 agent reported")
        log.info("unrelated")
    finally:
        tap.detach()
    log.warning("NODE DOWN: %s", "after detach")  # no longer tapped
    assert [e["kind"] for e in timeline.events] == ["probe", "brake", "node-dead", "node-back"]
    assert timeline.first("node-dead") is not None
    cloud.close()


def test_the_broker_given_is_used_and_passwords_are_masked() -> None:
    assert pick_amqp("memory://") == ("memory://", None)
    assert masked_url("amqp://guest:secret@host:5672//") == "amqp://guest:**@host:5672//"
    assert masked_url("memory://") == "memory://"


def test_no_broker_falls_back_to_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPCDAEMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:1//")
    url, why = pick_amqp(None, timeout=0.5)
    assert url == "memory://" and why is not None and "127.0.0.1:1" in why
