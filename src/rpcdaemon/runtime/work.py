"""The work the reactor's passes handed to the executor, until it is all done.

Reactor thread only. When nothing is in flight any more, :meth:`Work.collect` logs what
was run and tells the schedule: a follow-up pass verifies it from fresh state (or takes
the rest of a capped plan), backing off while tasks keep failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rpcdaemon.core.schedule import PassSchedule
from rpcdaemon.runtime.executor import Executor, Outcome, TaskResult

logger = logging.getLogger(__name__)


class Work:
    def __init__(self, executor: Executor, clock: Callable[[], float]) -> None:
        self._executor = executor
        self._clock = clock
        self._done: list[TaskResult] = []  # finished since the executor was last idle
        self._deferred = False  # a pass's cap left work behind
        self._triggers: set[str] = set()  # triggers of the passes that handed it over
        self._since = 0.0  # when the first of those passes began

    def handed(self, trigger: str, started: float, *, handed: int, deferred: bool) -> None:
        """A pass that began at ``started`` handed ``handed`` tasks over."""
        self._deferred = self._deferred or deferred
        if handed:
            if not self._triggers and not self._done:
                self._since = started
            self._triggers.update(trigger.split(","))

    def collect(self, now: float, schedule: PassSchedule) -> PassSchedule:
        """Finished tasks; once nothing is in flight, the pass that verifies them."""
        self._done.extend(self._executor.take_finished())
        if not self._done or self._executor.in_flight:
            return schedule
        work, self._done = self._done, []
        triggers, self._triggers = ",".join(sorted(self._triggers)) or "?", set()
        failed = sum(1 for r in work if r.outcome is Outcome.FAILED)
        schedule, delay = schedule.work_done(now, failed=failed > 0, deferred=self._deferred)
        self._deferred = False
        logger.info(
            "pass (%s): %d task(s) run, %d ok, %d failed, %d skipped in %.2fs; the next pass %s",
            triggers,
            len(work),
            sum(1 for r in work if r.outcome in (Outcome.OK, Outcome.ALREADY)),
            failed,
            sum(1 for r in work if r.outcome is Outcome.SKIPPED),
            self._clock() - self._since,
            f"re-plans in {delay:.1f}s (sooner if something else calls for one)"
            if failed
            else f"verifies in {delay:.1f}s",
        )
        return schedule
