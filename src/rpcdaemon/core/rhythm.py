"""Each agent's reporting rhythm, learned from arrivals on OUR monotonic receive clock.

An agent reports every ``report_interval`` (Neutron's default 30 s); what reaches us is that
interval plus the jitter of the agent's loop, the RPC call to neutron-server (an L3, DHCP or
OVS agent *calls* ``report_state`` and waits for the answer before its next loop) and the
bus. :class:`Rhythm` keeps, per agent, a smoothed interval and a smoothed absolute deviation
(Jacobson's estimator for TCP round-trip times: two numbers, no history), robust to the
outliers a day brings:

* a gap far longer than the estimate (a GC pause, a slow neutron-server, a missed report)
  moves the estimate by at most ``OUTLIER_CLIP`` deviations: one pause never teaches us
  that the agent reports every two intervals;
* a gap far shorter (a burst: the broker redelivers, or an agent reconnects and reports
  at once) is not learned at all;
* after our own reconnect everything is forgotten (:meth:`Rhythm.reset`): arrivals around a
  disconnect say nothing about the agent.

The rhythm is trusted after ``MIN_SAMPLES`` learned gaps. An agent is *suspect* once it has
been silent for longer than :func:`suspect_after`: ``multiple`` intervals plus ``margin``
deviations, never sooner than ``floor`` seconds, and never later than ``agent_down_time``
(suspicion must come before today's rule, never after). Suspicion alone moves nothing: it
calls for an active probe of the host (see :mod:`rpcdaemon.core.detector`).

Pure: times are arguments; no clock, no IO.
"""

from __future__ import annotations

GAIN = 0.125
"""Weight of a new gap in the smoothed interval (1/8, as TCP's SRTT)."""
DEVIATION_GAIN = 0.25
"""Weight of a new gap's distance in the smoothed deviation (1/4, as TCP's RTTVAR)."""
OUTLIER_CLIP = 4.0
"""A gap is learned as at most ``interval + OUTLIER_CLIP * deviation`` (plus 10 %)."""
BURST_FRACTION = 0.5
"""A gap shorter than this fraction of the learned interval is a burst: not learned."""
MIN_SAMPLES = 3
"""Learned gaps before the rhythm is trusted."""
MIN_GAP = 0.2
"""Gaps shorter than this (seconds) are never learned: a backlog delivered at once after a
reconnect, or a duplicate. No agent reports that often."""


class Rhythm:
    """One agent's last arrival and learned interval. Mutable: owned by the detector (one
    thread); ``__slots__`` keeps 10,000 of them small (about 150 bytes each)."""

    __slots__ = ("deviation", "interval", "last", "primed", "samples", "shorts", "warm")

    def __init__(self, last: float) -> None:
        self.last = last
        self.interval = 0.0
        self.deviation = 0.0
        self.samples = 0
        self.shorts = 0  # bursts in a row: the agent may now report faster
        self.warm: list[float] | None = []  # the first gaps, until MIN_SAMPLES of them
        self.primed = True  # ``last`` is a real arrival (not the instant of a reset)

    @property
    def learned(self) -> bool:
        return self.samples >= MIN_SAMPLES

    def arrive(self, at: float) -> float:
        """An arrival at ``at``; returns the gap since the previous one (0 when reordered)."""
        gap = at - self.last
        if gap <= 0:
            return 0.0
        self.last = at
        if not self.primed:  # the first arrival after a reset: a phase, not an interval
            self.primed = True
            return gap
        if gap < MIN_GAP:
            return gap
        warm = self.warm
        if warm is not None:  # warming up: the median of the first gaps resists one outlier
            warm.append(gap)
            self.samples = len(warm)
            if len(warm) >= MIN_SAMPLES:
                ordered = sorted(warm)
                self.interval = ordered[len(ordered) // 2]
                self.deviation = (ordered[-1] - ordered[0]) / 4
                self.warm = None
            return gap
        if gap < self.interval * BURST_FRACTION:
            self.shorts += 1
            if self.shorts >= MIN_SAMPLES:  # not a burst: the agent reports faster now
                self.reset(at)
            return gap
        self.shorts = 0
        ceiling = (self.interval + OUTLIER_CLIP * self.deviation) * 1.1
        learned = min(gap, ceiling)
        error = learned - self.interval
        self.interval += GAIN * error
        self.deviation += DEVIATION_GAIN * (abs(error) - self.deviation)
        self.samples += 1
        return gap

    def reset(self, at: float) -> None:
        """Forget the rhythm (our reconnect): learn again from arrivals after ``at``."""
        self.last = at
        self.interval = self.deviation = 0.0
        self.samples = self.shorts = 0
        self.warm = []
        self.primed = False


def suspect_after(
    rhythm: Rhythm, *, multiple: float, margin: float, floor: float, ceiling: float
) -> float:
    """Seconds of silence after which the agent is suspect: ``multiple`` learned intervals
    plus ``margin`` deviations, at least ``floor``, at most ``ceiling`` (agent_down_time)."""
    wait = rhythm.interval * multiple + margin * rhythm.deviation
    return min(ceiling, max(floor, wait))
