"""Each benchmark at toy size, so CI proves they still run end to end (real HTTP simulator,
in-memory bus, the real daemon in-process). No timing is asserted: only what each
contender did (convergence, the writes it needed, the calls an idle daemon makes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import dhcp_replace, idle_calls, l3_failover
from bench.common import DaemonTuning, update_results

pytestmark = pytest.mark.slow


def test_l3_failover_toy() -> None:
    p = l3_failover.Params(routers=6, other_agents=2, latency=0.0, agent_down_time=2.0)
    ours = l3_failover.run_ours(p, DaemonTuning())
    legacy = l3_failover.run_legacy(p)
    # Both converged (run_* raise otherwise); each router moved with one remove + one add.
    assert ours.writes == 2 * p.routers
    assert legacy.writes == 2 * p.routers
    assert ours.detected_after is not None  # the daemon itself declared the victim dead
    assert "6 legacy routers" in l3_failover.report(p, [ours, legacy])


def test_dhcp_replace_toy() -> None:
    p = dhcp_replace.Params(networks=5, agents=3, latency=0.0, agent_down_time=2.0)
    ours = dhcp_replace.run_ours(p, DaemonTuning())
    legacy = dhcp_replace.run_legacy(p)
    # Every network removed from the dead agent and added to the new one, nothing more.
    assert ours.writes == 2 * p.networks
    assert legacy.writes == 2 * p.networks
    assert "5 DHCP networks" in dhcp_replace.report(p, [ours, legacy])


def test_idle_calls_toy() -> None:
    p = idle_calls.Params(
        l3_agents=2,
        dhcp_agents=2,
        routers=2,
        networks=2,
        latency=0.0,
        legacy_window=2.0,
        resync_interval=3.0,
    )
    ours = idle_calls.run_ours(p)
    legacy = idle_calls.run_legacy(p)
    # Idle ticks make no API calls: the window (two resync intervals) holds two cheap
    # resyncs of 4 calls each (agents, routers, networks, subnets), no binding listings.
    # (The phase of the window against the resync timer decides whether it holds 1, 2 or 3;
    # the reads run on their own thread, so a window edge may cut one read's 4 calls.)
    assert 3 <= ours.calls <= 12, ours.detail
    assert "l3-routers" not in ours.detail and "dhcp-networks" not in ours.detail
    # One 2014 tick alone: agents + per-agent routers + routers, agents + per-agent networks.
    assert legacy.calls >= (1 + p.l3_agents + 1) + (1 + p.dhcp_agents)
    assert "Ratio OURS / 2014" in idle_calls.report(p, ours, legacy)


def test_results_section_is_replaced_not_duplicated(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n", encoding="utf-8")
    update_results("x", "first", results)
    update_results("y", "other", results)
    update_results("x", "second", results)
    text = results.read_text(encoding="utf-8")
    assert "intro" in text and "other" in text and "second" in text
    assert "first" not in text
    assert text.count("<!-- bench:x:start -->") == 1
