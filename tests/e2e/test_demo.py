"""``rpcdaemon demo``: the simulated cloud and the daemon in one process, a network node
killed, convergence reported: on the real RabbitMQ (the node-death verdict, in seconds), on
the in-process broker (today's rule: agent_down_time), and a lone crashed agent."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e]

ADT = 3.0
FAST = ["--agent-down-time", f"{ADT:g}", "--report-interval", "0.5", "--timeout", "60"]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "demo", *FAST, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["converged"] is True
    return report


def kinds(report: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in report["timeline"]]


def test_demo_on_memory_waits_for_agent_down_time() -> None:
    # the daemon's consumer polls the in-process transport once a second when it is idle:
    # a backlog of ~1 s, over the lag brake of a 3 s agent_down_time; 6 s tolerates it
    report = report_of(
        demo("--json", "--amqp", "memory://", "--agent-down-time", "6", "--report-interval", "1")
    )
    assert report["fast_path"] is False and report["scenario"] == "node"
    seen = kinds(report)
    assert "kill" in seen and "converged" in seen
    assert "node-dead" not in seen and "probe" not in seen  # nothing to probe with
    assert seen.index("kill") < seen.index("dead") < seen.index("converged")
    assert report["seconds"] > 6 - 1.5  # today's rule: the last report came up to 1 s before
    assert any(e["kind"] == "action" for e in report["timeline"])


@pytest.mark.broker
def test_demo_node_death_is_moved_before_agent_down_time(amqp_url: str) -> None:
    report = report_of(demo("--json", "--amqp", amqp_url))
    assert report["fast_path"] is True
    seen = kinds(report)
    assert seen.index("kill") < seen.index("probe") < seen.index("node-dead")
    assert seen.index("node-dead") < seen.index("converged")
    (verdict,) = [e for e in report["timeline"] if e["kind"] == "node-dead"]
    assert "NODE DOWN" in verdict["text"]
    assert report["seconds"] < ADT, report["timeline"]
    print(f"\nE2E-MEASURE demo-node-death {report['seconds']:.2f}s agent_down_time={ADT:g}")


@pytest.mark.broker
def test_demo_text_on_the_real_broker_by_default(amqp_url: str) -> None:
    # the default broker is the local RabbitMQ when it answers
    result = demo("--kill", "agent")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fast failover on" in result.stdout
    assert "converged" in result.stdout and "today's rule" in result.stdout
    assert "NODE DOWN" not in result.stdout  # a lone crashed agent is not a node death
    assert "DEAD" in result.stdout  # the final table shows the killed agent
