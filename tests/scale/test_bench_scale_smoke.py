"""The scale benchmarks still run (toy sizes; numbers are not asserted, their shape is)."""

from __future__ import annotations

import pytest
from bench import scale_core


@pytest.mark.parametrize("part", scale_core.PARTS)
def test_scale_core_part_runs_at_toy_size(part: str) -> None:
    got = scale_core.measure(part, 100, 2)
    assert got, part
    if part == "evaluate":
        assert got["judged"] == got["heartbeats"]  # a tick judges what was heard, no more
    elif part in ("l3", "dhcp"):
        assert all(tasks > 0 for _seconds, tasks in got.values())
    else:
        assert got["traced"] > 0
