"""The node-death detector at run time: its tick, its probes, its log lines, its status.

On the reactor thread, each tick: :meth:`NodeWatch.tick` runs the pure detector
(:mod:`rpcdaemon.core.detector`, owned by the intake with the liveness model), hands the
probes it asks for to the :class:`~rpcdaemon.runtime.probing.ProbeRunner` (never waits for
them: results come back through the intake), logs each host change and each change of the
brake once, and returns the pass triggers: ``node-dead`` (planned at once from the last
snapshot) and ``agent-back`` (a node is back: its moves stop). For other threads it
publishes :attr:`NodeWatch.status` (metrics, ``/status``) and :meth:`NodeWatch.is_dead`
(the executor: a source on a dead node is not re-checked with the API, which cannot know
yet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from rpcdaemon.core.detection import DetectionStatus, DetectorStep, HostChange, HostState
from rpcdaemon.core.ids import AgentId, Host
from rpcdaemon.core.liveness import AgentKey
from rpcdaemon.runtime.intake import Intake
from rpcdaemon.runtime.probing import ProbeFunction, ProbeRunner

logger = logging.getLogger(__name__)


class NodeWatch:
    def __init__(
        self,
        intake: Intake,
        *,
        agent_types: Iterable[str],
        probe: ProbeFunction | None = None,
        on_host_change: Callable[[HostChange], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._intake = intake
        self._types = frozenset(agent_types)
        self._on_host_change = on_host_change
        policy = intake.detector.policy
        self.probes: ProbeRunner | None = None
        if probe is not None and policy.enabled:
            self.probes = ProbeRunner(
                probe, timeout=policy.probe_timeout, on_result=intake.probed, clock=clock
            )
        self._brake_kind: str | None = None
        self._held_logged = False
        self._dead_keys: frozenset[AgentKey] = frozenset()  # planners' agents on dead nodes
        self._dead_since: dict[Host, float] = {}  # replaced whole, never mutated
        self._deaths = 0
        self.status = DetectionStatus(enabled=policy.enabled)
        """Published each tick for other threads (an immutable value: one assignment)."""

    def is_dead(self, agent_id: AgentId) -> bool:
        """Any thread: is this agent on a host the detector holds dead now, and has no agent
        of that host been heard since the verdict (read off the consumer thread's record,
        ahead of the reactor's next tick)?"""
        key = self._intake.key_of(agent_id)
        if key is None or key not in self._dead_keys:
            return False
        since = self._dead_since.get(key.host)
        return since is not None and not self._intake.host_heard_after(key.host, since)

    def stop(self) -> None:
        if self.probes is not None:
            self.probes.stop()

    def tick(self, now: float) -> set[str]:
        """The detector's tick: probes handed over, changes logged; returns pass triggers."""
        detector = self._intake.detector
        step = detector.tick(now, self._intake.bus)
        self._log_brake(step)
        triggers: set[str] = set()
        for change in step.changes:
            self._log_host(change)
            if change.new is HostState.DEAD:
                triggers.add("node-dead")
                self._deaths += 1
            elif change.old is HostState.DEAD:
                triggers.add("agent-back")  # the node is back: stop moving off it
        if step.changes:
            deaths = detector.deaths()
            # the newest heartbeat the verdict saw: anything heard later means "back"
            self._dead_since = {h: d.last_heard for h, d in deaths.items()}
            self._dead_keys = frozenset(  # the planners' agents of dead hosts only
                k for h in deaths for k in detector.members(h) if k.agent_type in self._types
            )
        for request in step.probes:
            if self.probes is None:
                break
            logger.info(
                "node %s: every agent silent past its rhythm; probing %s (control %s)",
                request.host,
                ", ".join(request.queues),
                ", ".join(request.control),
            )
            self.probes.submit(request)
        runner = self.probes
        self.status = DetectionStatus(
            enabled=detector.policy.enabled,
            brake_kind=step.brake_kind,
            brake=step.brake,
            hosts=tuple(sorted(detector.states().items())),
            node_deaths=self._deaths,
            probes_sent=0 if runner is None else runner.sent,
            probes_answered=0 if runner is None else runner.answered,
            probe_failures=0 if runner is None else runner.failed,
        )
        return triggers

    def _log_brake(self, step: DetectorStep) -> None:
        """Each hold logged once (not the listening window after start: the intake says
        that), and its release once, whatever came in between."""
        if step.brake_kind == self._brake_kind:
            return
        if step.brake_kind is not None and step.brake_kind != "listening":
            logger.warning("fast failover held: %s", step.brake)
            self._held_logged = True
        elif step.brake_kind is None and self._held_logged:
            logger.info("fast failover released: node deaths are judged in seconds again")
            self._held_logged = False
        self._brake_kind = step.brake_kind

    def _log_host(self, change: HostChange) -> None:
        if change.new is HostState.DEAD:
            logger.warning("NODE DOWN: %s", change.reason)
        elif change.old is HostState.DEAD:
            logger.warning("node %s is back (%s)", change.host, change.reason)
        elif change.new in (HostState.SILENT, HostState.SLOW):
            logger.warning("%s", change.describe())
        else:
            logger.info("%s", change.describe())
        if self._on_host_change is not None:
            try:
                self._on_host_change(change)
            except Exception:
                logger.exception("host change observer failed")
