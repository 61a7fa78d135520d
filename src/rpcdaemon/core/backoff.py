"""Capped exponential backoff: the one rule for every retry delay in the daemon (pure).

Used by the executor (retries of one action), the pass schedule (a pass that failed, tasks
that keep failing), the AMQP consumer and the leader elector (reconnects). The caller
brings the randomness: ``jitter`` is a fraction in [0, 1] (e.g. ``random.random()``) that
scales the delay between half and all of the nominal value, so that many instances
restarted together do not retry in step. Without it the delay is the nominal one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``initial * factor ** failures``, at most ``cap`` seconds."""

    initial: float
    cap: float
    factor: float = 2.0

    def delay(self, failures: int, *, jitter: float | None = None) -> float:
        """The wait after ``failures`` consecutive failures (0: after the first one)."""
        nominal = min(self.cap, self.initial * self.factor ** min(max(failures, 0), 64))
        if jitter is None:
            return nominal
        return nominal * (0.5 + 0.5 * min(1.0, max(0.0, jitter)))
