"""bench.detector_traces at toy size: the synthetic day still runs end to end through the real
detector, counts what it should, and its report renders. No timing is asserted."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bench import detector_traces as traces

TOY = traces.Params(hours=0.75, network_hosts=4, compute_hosts=6, crashes=2)


def test_quiet_network_node_deaths_are_caught_fast_and_nothing_else_is_declared() -> None:
    p = replace(TOY, broker_restarts=0, slow_hour=False, deaths=4)
    world = traces.build(p)
    assert len(world.keys) == 4 * 4 + 6 * 2
    assert len(world.deaths) == 4
    out = traces.replay(world)
    assert not [v for v in out.verdicts if v[2]]  # no false node death
    assert {h for h, _, _ in out.verdicts} <= set(world.deaths)
    network = [d for d in traces.deaths_of(world, out) if d.kind == "network"]
    assert len(network) == 2 and out.probes >= 2  # each confirmed by a probe
    for death in network:
        assert death.fast and death.verdict_after is not None
        assert 0 < death.verdict_after < p.agent_down_time  # before today's rule could act
        assert death.verdict_after < death.todays_rule_after


def test_a_disturbed_toy_day_reports_every_section(tmp_path: Path) -> None:
    p = replace(TOY, broker_restarts=1, deaths=4)
    result = traces.run(p)
    assert result["false_node_deaths"] == 0, result["false_verdicts"]
    assert len(result["deaths"]) == 4
    assert result["brake_seconds"].get("bus-down", 0) > 0  # the broker restart was seen
    assert result["brake_seconds"].get("listening", 0) > 0
    assert result["arrivals"] > 0 and result["cpu_s"]["baseline_loop"] >= 0
    text = traces.report([result])
    assert "false node deaths" in text and "brake held" in text
    out = tmp_path / "traces.json"
    assert traces.main(["--hours", "0.5", "--fast-hours", "0", "--network-hosts", "2",
                        "--compute-hosts", "2", "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text(encoding="utf-8"))[0]["agents"] == 2 * 4 + 2 * 2
