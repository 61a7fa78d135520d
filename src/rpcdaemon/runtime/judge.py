"""The reactor's judging step: the liveness model's changes, logged, as pass triggers.

Runs on the reactor thread (the model's only writer). Each tick, every planner's agent
type is judged with its policy; the agents of the last snapshot are passed as
``expected`` (the same tuple every tick until the next snapshot, so the model skips it in
O(1)), so an agent never heard of is judged too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.liveness import AgentKey, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.runtime.intake import Intake
from rpcdaemon.runtime.nodes import NodeWatch

logger = logging.getLogger(__name__)

NEWCOMERS_LOG_INTERVAL = 60.0
"""Seconds between two log lines about agents heard on the bus that Neutron did not list."""


class Judge:
    def __init__(
        self,
        *,
        intake: Intake,
        policies: Mapping[str, Policy],
        agent_types: Iterable[str],
        on_transition: Callable[[Transition], None] | None = None,
        nodes: NodeWatch | None = None,
    ) -> None:
        self._intake = intake
        self._nodes = nodes
        self._policies = policies
        self._types = sorted(set(agent_types))
        self._on_transition = on_transition
        self.dead_keys: set[AgentKey] = set()  # declared dead by our clock, not back
        self._newcomers = 0  # unknown agents heard since the last newcomers log line
        self._newcomers_logged: float | None = None

    def judge(self, now: float, *, have_view: bool) -> tuple[set[str], bool]:
        """The triggers the changes call for, and whether agents unknown to the last
        snapshot were first heard (an ``agent-new`` pass, rate-limited by the schedule)."""
        self._intake.check_rejoin(now)
        model, bus = self._intake.model, self._intake.bus
        triggers: set[str] = set()
        for agent_type in self._types:
            expected = self._intake.expected(agent_type)
            changes = model.evaluate(
                now, self._policies[agent_type], bus, agent_type=agent_type, expected=expected
            )
            for change in changes:
                self._log_transition(change)
                if change.new is Liveness.DEAD:
                    self.dead_keys.add(change.key)
                    triggers.add("agent-dead")
                else:
                    if change.new is Liveness.ALIVE and change.old is Liveness.DEAD:
                        # a returning agent can close a breaker or take work back
                        triggers.add("agent-back")
                    self.dead_keys.discard(change.key)
        if self._nodes is not None:
            triggers |= self._nodes.tick(now)
        newcomers = model.take_newcomers()
        if not newcomers or not have_view:
            return triggers, False
        # agents Neutron did not list at the last snapshot: a replacement node? (the
        # schedule rate-limits these passes; an open bus may carry noise)
        self._newcomers += newcomers
        last = self._newcomers_logged
        if last is None or now - last >= NEWCOMERS_LOG_INTERVAL:
            # one line per interval, never one per host: a flood of forged hosts must not
            # flood the log (issue 9)
            logger.info(
                "%d agent(s) unknown to the last snapshot heard on the bus%s",
                self._newcomers,
                "" if last is None else f" in the last {now - last:.0f}s",
            )
            self._newcomers = 0
            self._newcomers_logged = now
        return triggers, True

    def _log_transition(self, change: Transition) -> None:
        if change.new is Liveness.DEAD:
            logger.warning("agent %s is DOWN (%s)", change.key, change.reason)
        elif change.new is Liveness.ALIVE and change.old is not Liveness.UNKNOWN:
            logger.warning("agent %s is UP again (%s)", change.key, change.reason)
        elif change.new is Liveness.ALIVE:
            logger.info("agent %s is up (%s)", change.key, change.reason)
        else:
            logger.info("agent %s: %s", change.key, change.describe())
        if self._on_transition is not None:
            try:
                self._on_transition(change)
            except Exception:
                logger.exception("transition observer failed")


class RoleWatch:
    """Leadership and the pause, noted each tick: gaining the lead or a resume calls for
    a pass (act on what waited, now); each change is logged once."""

    def __init__(self, is_leader: Callable[[], bool], paused: Callable[[], str | None]) -> None:
        self._is_leader = is_leader
        self._paused = paused
        self._was_leader: bool | None = None
        self._was_paused: str | None = None

    def note(self) -> set[str]:
        triggers: set[str] = set()
        leader = self._is_leader()
        if leader != self._was_leader:
            if leader:
                logger.info("this instance is the leader: it acts")
                triggers.add("leadership")
            else:
                logger.info("this instance is a standby: it observes and plans, never acts")
            self._was_leader = leader
        paused = self._paused()
        if paused != self._was_paused:
            if paused is not None:
                logger.warning("automatic moves %s: observing and planning only", paused)
            elif self._was_paused is not None:
                logger.warning("automatic moves resumed")
                triggers.add("resumed")
            self._was_paused = paused
        return triggers
