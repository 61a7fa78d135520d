"""The disruption brake: when no fast node-death verdict may be drawn.

A node death silences one host while the rest of the cloud reports normally. Many hosts
going quiet together is something else, and a fast verdict would be wrong for most of them:

* our own trouble: the bus connection is down, we reconnected less than ``agent_down_time``
  ago (rhythms are being learned again, backlogs replayed), or our consumer lags;
* the bus's or neutron-server's: a broker restart or failover silences every agent at once;
  agents *call* ``report_state``, so a slow neutron-server makes every report late;
* a partition (a rack's switch, the management network): many hosts silent together, each
  one's probe unanswered while a control host elsewhere answers.

So the brake holds when more than ``max(quiet_hosts, quiet_fraction * hosts)`` hosts went
*quiet* (any agent past its rhythm) within ``agent_down_time``, or more than ``quiet_hosts``
went *silent* (every agent past its rhythm): the second catches a partition of a few hosts
in a large cloud, where the fraction alone would let 50 of 250 through. Deaths then wait for
today's rule (``agent_down_time`` and the API). Pure: ``now`` is an argument.
"""

from __future__ import annotations

from collections import deque

from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.detection import DetectorPolicy
from rpcdaemon.core.ids import Host


class HostWindow:
    """Distinct hosts that had an event within the last ``window`` seconds; O(events)."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, Host]] = deque()
        self._last: dict[Host, float] = {}

    def __len__(self) -> int:
        return len(self._last)

    def note(self, host: Host, at: float) -> None:
        self._events.append((at, host))
        self._last[host] = max(at, self._last.get(host, at))

    def expire(self, now: float, window: float) -> None:
        events = self._events
        while events and now - events[0][0] > window:
            at, host = events.popleft()
            if self._last.get(host) == at:  # no later event for this host
                del self._last[host]

    def clear(self) -> None:
        self._events.clear()
        self._last.clear()


class DisruptionBrake:
    """Counts hosts going quiet and silent; says whether (and why) the brake holds."""

    def __init__(self, policy: DetectorPolicy) -> None:
        self.policy = policy
        self.quiet = HostWindow()
        self.silent = HostWindow()

    def check(self, now: float, bus: BusState, hosts: int) -> tuple[str, str] | None:
        """(kind, reason) of the brake holding now, or None. Kinds: ``bus-down``, ``lag``,
        ``listening``, ``disruption``."""
        p = self.policy
        self.quiet.expire(now, p.agent_down_time)
        self.silent.expire(now, p.agent_down_time)
        if not bus.connected:
            return "bus-down", "our bus connection is down"
        if bus.lagging or (bus.lag is not None and bus.lag.seconds > p.lag_limit):
            behind = 0.0 if bus.lag is None else bus.lag.seconds
            return "lag", f"our consumer lags {behind:.1f}s behind"
        listened = bus.listened_for(now)
        if listened < p.agent_down_time:
            return "listening", (
                f"listening for {listened:.0f}s of {p.agent_down_time:.0f}s since (re)connect"
            )
        limit = max(p.quiet_hosts, int(p.quiet_fraction * hosts))
        if len(self.quiet) > limit:
            return "disruption", (
                f"{len(self.quiet)} of {hosts} hosts went quiet within "
                f"{p.agent_down_time:.0f}s (limit {limit}): a disruption, not a node death"
            )
        if len(self.silent) > p.quiet_hosts:
            return "disruption", (
                f"{len(self.silent)} hosts fell silent within {p.agent_down_time:.0f}s "
                f"(limit {p.quiet_hosts}): a partition or an outage, not node deaths"
            )
        return None
