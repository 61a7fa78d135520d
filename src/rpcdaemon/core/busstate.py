"""What the liveness model needs to know about our bus consumer: connected, since when, lagging.

Rule: no death is declared while the consumer is disconnected, while it lags, or within
``agent_down_time`` of ``listening_since``. ``listening_since`` is set on every (re)connect
and again when the consumer catches up after lagging: the grace after a lag is a full
listening window, exactly as after a reconnect. Why lag matters: heartbeats that wait in our
queue reach us late (a live agent looks silent), and ``report_state`` calls carry a TTL, so a
backlog older than that TTL drops them unread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rpcdaemon.core.events import ConsumerLag

LAG_LIMIT_FRACTION = 0.25
"""Our consumer lags when its backlog is older than this fraction of ``agent_down_time``
(agents report at least every ``agent_down_time / 2``: a quarter keeps a margin)."""


def lag_limit(agent_down_time: float) -> float:
    """Seconds of consumer lag beyond which no death is declared."""
    return agent_down_time * LAG_LIMIT_FRACTION


@dataclass(frozen=True)
class BusState:
    """Connected, since when (monotonic), and whether our consumer lags (see the module)."""

    connected: bool
    listening_since: float | None = None  # monotonic time of the last (re)connect or catch-up
    lagging: bool = False  # our backlog is older than lag_limit(agent_down_time)
    lag: ConsumerLag | None = None  # the last measurement (for status and metrics)
    rejoining: bool = False  # after our reconnect, waiting for the agents (core.rejoin)

    def listened_for(self, now: float) -> float:
        """Seconds we have been listening without interruption (0 when disconnected,
        lagging, or still waiting for the agents to come back after our reconnect)."""
        if not self.connected or self.lagging or self.rejoining or self.listening_since is None:
            return 0.0
        return max(0.0, now - self.listening_since)

    def with_lag(self, lag: ConsumerLag, now: float, *, limit: float) -> BusState:
        """The state after a lag measurement: lagging once ``lag.seconds > limit``; caught
        up once ``lag.seconds <= limit / 2`` (hysteresis), and then listening again from
        ``now``. While disconnected only the measurement is kept."""
        if not self.connected:
            return replace(self, lag=lag)
        if not self.lagging and lag.seconds > limit:
            return replace(self, lagging=True, lag=lag)
        if self.lagging and lag.seconds <= limit / 2:
            return replace(self, lagging=False, listening_since=now, lag=lag)
        return replace(self, lag=lag)
