"""What a pass reports (for the demo, dry-run output, metrics, benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.guards import BreakerState
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.view import ClusterView
from rpcdaemon.runtime.executor import TaskResult


@dataclass(frozen=True)
class PassReport:
    """What one pass saw and did (for the demo, dry-run output, metrics and tests)."""

    trigger: str
    started: float
    finished: float
    view: ClusterView | None
    plans: tuple[Plan, ...] = ()
    results: tuple[TaskResult, ...] = ()  # empty: tasks run beside the reactor (take_finished)
    verdicts: Mapping[AgentId, Liveness] = field(default_factory=dict)
    breakers: tuple[BreakerState, ...] = ()
    executed: bool = False  # tasks were handed to the executor (False: dry-run, standby, none)
    error: str | None = None
    handed: int = 0  # tasks handed to the executor
