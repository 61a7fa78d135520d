"""After OUR reconnect: wait for the agents to come back before silence means death.

A broker restart or failover drops every connection at once: ours and every agent's. We
reconnect, listen for a full ``agent_down_time`` (:mod:`rpcdaemon.core.busstate`), and then
judge silence again. But agents reconnect on their own schedule: oslo.messaging backs off
between attempts (up to ``rabbit_interval_max``, 30 s by default), so after a 25 s outage
many agents come back *after* our window closed. Each of them is silent by our clock, dead by
Neutron's too (it heard nothing either): the false deaths of neutron bug 1461714, now caused
by the bus, not by the agents.

So after a reconnect (not the first connect), the agents heard in the ``agent_down_time``
before the outage are expected back. No agent is judged dead (verdicts stay UNKNOWN, the
API's ``alive`` is the source) until at least half of them have been heard again *and* a
grace as long as the outage (at most ``GRACE_LIMIT`` agent_down_times) has passed: agents
that retry on a backoff as long as the outage get the time to come back. Then the usual
listening window of one ``agent_down_time`` starts. The wait is bounded (``REJOIN_LIMIT``
agent_down_times): agents that really died during the outage are judged after it. Pure:
times are arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

from rpcdaemon.core.records import AgentKey

REJOIN_QUORUM = 0.5
"""Fraction of the agents heard before the outage that must be heard again."""
REJOIN_LIMIT = 3.0
"""The wait ends after this many agent_down_times whatever came back."""
GRACE_LIMIT = 2.0
"""The grace for late reconnects lasts as long as the outage, at most this many
agent_down_times."""


class Rejoin:
    """The agents expected back after our reconnect. One owner thread (the intake's)."""

    def __init__(
        self,
        expected: Iterable[AgentKey],
        *,
        since: float,
        outage: float,
        agent_down_time: float,
    ) -> None:
        self._missing = set(expected)
        self.expected = len(self._missing)
        self.grace_until = since + min(max(outage, 0.0), GRACE_LIMIT * agent_down_time)
        self.until = since + REJOIN_LIMIT * agent_down_time
        self.waiting = self.expected > 0 or self.grace_until > since
        self.quorum = self.expected == 0

    @property
    def back(self) -> int:
        return self.expected - len(self._missing)

    def heard(self, key: AgentKey, at: float) -> bool:
        """An agent reported at ``at``. True when the wait ends now (quorum and grace)."""
        if not self.waiting:
            return False
        self._missing.discard(key)
        if not self.quorum and self.back >= REJOIN_QUORUM * self.expected:
            self.quorum = True
        return self.expire(at)

    def expire(self, now: float) -> bool:
        """True when the wait ends now: the quorum is back and the grace passed, or the
        bound is reached (then ``quorum`` says whether they came back)."""
        if self.waiting and ((self.quorum and now >= self.grace_until) or now >= self.until):
            self.waiting = False
            return True
        return False

    def describe(self) -> str:
        return f"{self.back} of {self.expected} agents heard before the outage are back"
