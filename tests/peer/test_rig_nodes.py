"""The rig's whole-node controls against the real neutron-server 29 and RabbitMQ.

Issue 12's fast path tells a dead node (every agent of a host silent at once, its RPC queues
unanswered) from a crashed process or a slow node. These tests prove that the rig really makes
each of those: a frozen node (SIGSTOP: reports stop, the broker keeps its consumers, calls go
unanswered), a crashed one (SIGKILL: the broker drops its consumers) and a slow one (reports
stop, calls answered), while the rest of the cloud goes on.
"""

from __future__ import annotations

import time

import pytest

from tests.peer.rig import AGENT_TYPES, ALL_HOSTS, NETWORK_KINDS, Rig, kinds_of, wait_until

pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.broker, pytest.mark.slow]

PROBE_TIMEOUT = 3.0


def beats(rig: Rig, host: str) -> dict[str, float]:
    return {kind: rig.last_heartbeat(kind, host) for kind in kinds_of(host)}


def test_frozen_node_is_dead_in_neutron_and_deaf_on_the_bus(fresh_peer: Rig) -> None:
    rig = fresh_peer
    victim = "net3"
    killed = rig.kill_node(victim)  # the default: freeze
    assert rig.node_state(victim) == "frozen"
    assert rig.killed_at(victim) == killed
    assert rig.last_host_heartbeat(victim) <= killed
    # the broker still has the frozen consumers: nothing tells it the node is gone
    assert rig.queue_consumers([f"l3_agent.{victim}", f"dhcp_agent.{victim}"]) == {
        f"l3_agent.{victim}": 1,
        f"dhcp_agent.{victim}": 1,
    }
    answers = rig.probe(
        [
            f"l3_agent.{victim}",
            f"q-agent-notifier-tunnel-update.{victim}",
            "l3_agent.net2",
            "q-agent-notifier-tunnel-update.comp1",
        ],
        PROBE_TIMEOUT,
    )
    assert answers[f"l3_agent.{victim}"] == "timeout", answers
    assert answers[f"q-agent-notifier-tunnel-update.{victim}"] == "timeout", answers
    assert answers["l3_agent.net2"].startswith("answered"), answers
    assert answers["q-agent-notifier-tunnel-update.comp1"].startswith("answered"), answers

    rig.wait_host_alive(victim, False, timeout=rig.agent_down_time + 4 * rig.report_interval)
    assert set(rig.host_agents(victim)) == {AGENT_TYPES[k] for k in NETWORK_KINDS}
    others = [a for a in rig.agents() if a["host"] != victim]
    assert {a["host"] for a in others} == set(ALL_HOSTS) - {victim}
    assert all(a["alive"] for a in others), [a for a in others if not a["alive"]]

    rig.revive_node(victim)
    assert rig.node_state(victim) == "alive"
    assert rig.last_host_heartbeat(victim) > killed


def test_slow_node_stops_reporting_and_still_answers(fresh_peer: Rig) -> None:
    rig = fresh_peer
    victim = "net2"
    rig.slow_node(victim)
    # every agent of the host has read its control file: none reported for 1.5 intervals
    wait_until(
        f"{victim}'s agents to stop reporting",
        lambda: time.time() - rig.last_host_heartbeat(victim) > 1.5 * rig.report_interval,
        6 * rig.report_interval,
    )
    before = beats(rig, victim)
    answers = rig.probe([f"l3_agent.{victim}", f"dhcp_agent.{victim}"], PROBE_TIMEOUT)
    assert all(a.startswith("answered") for a in answers.values()), answers
    assert rig.node_state(victim) == "slow"
    assert beats(rig, victim) == before  # two intervals and more without a report
    assert rig.last_host_heartbeat("net1") > max(before.values())  # the others report

    rig.revive_node(victim)
    wait_until(
        f"every agent of {victim} reporting again",
        lambda: all(beats(rig, victim)[k] > before[k] for k in before),
        4 * rig.report_interval,
    )


def test_crashed_node_loses_its_consumers_and_respawns(fresh_peer: Rig) -> None:
    rig = fresh_peer
    victim = "comp2"
    queue = f"q-agent-notifier-tunnel-update.{victim}"
    killed = rig.kill_node(victim, how="crash")
    assert rig.node_state(victim) == "crashed"
    wait_until(
        "the broker to drop the crashed node's consumer",
        lambda: rig.queue_consumers([queue])[queue] == 0,
        10,
    )
    answers = rig.probe([queue, "q-agent-notifier-tunnel-update.comp1"], PROBE_TIMEOUT)
    assert answers[queue] == "timeout", answers
    assert answers["q-agent-notifier-tunnel-update.comp1"].startswith("answered"), answers

    rig.revive_node(victim)  # a new process
    assert rig.node_state(victim) == "alive"
    wait_until(
        "every agent of the respawned node reporting",
        lambda: min(beats(rig, victim).values()) > killed,
        30,
    )
    assert rig.queue_consumers([queue])[queue] == 1


def test_a_per_agent_kill_still_leaves_the_rest_of_the_host_alive(fresh_peer: Rig) -> None:
    rig = fresh_peer
    rig.set_agent("l3", "net1", "hard")
    # read at the agent's next report, then its RPC server stops (oslo cancels the consumer
    # when the server has drained; seconds on a loaded machine)
    wait_until(
        "the broker to drop l3_agent.net1's consumer",
        lambda: rig.queue_consumers(["l3_agent.net1"])["l3_agent.net1"] == 0,
        6 * rig.report_interval,
    )
    before = beats(rig, "net1")  # l3's no longer moves: it read "hard" before it stopped
    answers = rig.probe(["l3_agent.net1", "dhcp_agent.net1"], PROBE_TIMEOUT)
    assert answers["l3_agent.net1"] == "timeout", answers
    assert answers["dhcp_agent.net1"].startswith("answered"), answers
    after = beats(rig, "net1")
    assert after["l3"] == before["l3"]
    assert all(after[k] > before[k] for k in ("dhcp", "ovs", "metadata"))
