"""The daemon side of ``/status``: the status model from the reactor's state (pure).

The runtime calls :func:`status_model` (on an HTTP worker thread, at request time) with
its reactor and its clock's ``now``; a structural :class:`ReactorLike` is enough, so the
core does not import the runtime. Reads are of immutable snapshots: the last pass report
and a copy of the liveness records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.guards import BreakerState
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.liveness import AgentKey, AgentRecord
from rpcdaemon.core.statusmodel import (
    SOURCE_DAEMON,
    ClusterStatus,
    PassSummary,
    PauseState,
    build,
    to_json,
)
from rpcdaemon.core.view import ClusterView


class ReportLike(Protocol):
    @property
    def trigger(self) -> str: ...
    @property
    def finished(self) -> float: ...
    @property
    def view(self) -> ClusterView | None: ...
    @property
    def plans(self) -> tuple[Plan, ...]: ...
    @property
    def verdicts(self) -> Mapping[AgentId, Liveness]: ...
    @property
    def breakers(self) -> tuple[BreakerState, ...]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def handed(self) -> int: ...


class ModelLike(Protocol):
    def snapshot(self) -> dict[AgentKey, AgentRecord]: ...


class ReactorLike(Protocol):
    @property
    def last_pass(self) -> Any: ...  # the last good ReportLike, or None before the first
    @property
    def model(self) -> ModelLike: ...


def status_model(
    reactor: ReactorLike,
    *,
    is_leader: bool,
    coordination_connected: bool,
    dry_run: bool,
    pause: PauseState | None,
    dhcp_agents_per_network: int | None = None,
    report_intervals: Mapping[AgentId, float] | None = None,
    notes: Sequence[str] = (),
    now: float,
) -> ClusterStatus | None:
    """The model as of the last pass (None before the first pass with a view).
    ``now`` is the reactor's clock (monotonic), for heartbeat and pass ages."""
    report = reactor.last_pass
    if report is None or report.view is None:
        return None
    view: ClusterView = report.view
    records = reactor.model.snapshot()
    ages: dict[AgentId, float] = {}
    for agent in view.agents.values():
        record = records.get(AgentKey.of(agent))
        if record is not None:
            ages[agent.id] = max(0.0, now - record.last_seen)
    held = tuple(note for plan in report.plans for note in plan.held)
    # ``last_pass`` is the last good pass (its view); a pass that failed since is
    # reported beside it (``last_failure``), so that one failure does not blank /status
    failure = getattr(reactor, "last_failure", None)
    error = report.error if failure is None else getattr(failure, "error", None)
    summary = PassSummary(
        trigger=report.trigger,
        age=max(0.0, now - report.finished),
        planned=sum(len(plan.tasks) for plan in report.plans),
        handed=report.handed,
        held=held,
        error=error,
    )
    return build(
        view,
        report.verdicts,
        source=SOURCE_DAEMON,
        heartbeat_ages=ages,
        report_intervals=report_intervals,
        dhcp_agents_per_network=dhcp_agents_per_network,
        breakers={b.agent_type: b.open for b in report.breakers},
        leader=is_leader,
        coordination_connected=coordination_connected,
        pause=pause,
        last_pass=summary,
        dry_run=dry_run,
        notes=notes,
    )


def status_document(model: Callable[[], ClusterStatus | None]) -> Callable[[], dict[str, Any]]:
    """A ``/status`` body source for :class:`rpcdaemon.metrics.MetricsServer`."""

    def document() -> dict[str, Any]:
        status = model()
        if status is None:
            raise LookupError("no planning pass yet")
        return to_json(status)

    return document
