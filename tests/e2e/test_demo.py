"""``rpcdaemon demo``: the simulated cloud and the daemon in one process, a network node
killed, convergence reported; on the in-process broker and on the real RabbitMQ."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e]

FAST = ["--agent-down-time", "3", "--report-interval", "0.5", "--timeout", "60"]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "demo", *FAST, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_json_timeline_has_the_kill_and_the_convergence() -> None:
    result = demo("--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["converged"] is True
    kinds = [event["kind"] for event in report["timeline"]]
    assert "kill" in kinds and "converged" in kinds
    assert kinds.index("kill") < kinds.index("dead") < kinds.index("converged")
    (converged,) = [e for e in report["timeline"] if e["kind"] == "converged"]
    assert 0 < converged["seconds"] < 60
    assert any(e["kind"] == "action" for e in report["timeline"])


@pytest.mark.broker
def test_demo_on_the_real_broker_converges(amqp_url: str) -> None:
    result = demo("--amqp", amqp_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converged" in result.stdout
    assert "DEAD" in result.stdout  # the final table shows the killed node
