"""StatusSnapshot: what the daemon looks like right now, for /metrics, /healthz and /readyz.

The reactor builds one (cheaply, from state it already owns) whenever asked; the metrics
server reads it at scrape time. Instants are monotonic seconds (the reactor's clock), so
the snapshot stays pure: ages are computed by the reader with its own ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StatusSnapshot:
    agents: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Agent count by (Neutron agent_type, our Liveness value)."""

    routers_on_dead_agents: int = 0
    """Routers bound to no live L3 agent (on dead agents only, or on none)."""

    networks_missing_agents: int = 0
    """DHCP networks hosted by fewer live DHCP agents than the policy wants."""

    breaker_open: Mapping[str, bool] = field(default_factory=dict)
    """Circuit breaker state per agent_type (true = too many dead at once: acting on none)."""

    is_leader: bool = True
    """This instance may act (leader, or single instance)."""

    coordination_connected: bool = True
    """The leader-election backend answers (true for a single instance). A connected
    non-leader is a healthy standby."""

    bus_connected: bool = False
    """The AMQP consumer is connected and consuming."""

    dry_run: bool = False

    in_grace: bool = False
    """Listening for less than agent_down_time since start/reconnect: no deaths declared."""

    last_tick_at: float | None = None
    """When the reactor loop last ran (monotonic)."""

    last_pass_at: float | None = None
    """When a planning pass last completed (monotonic)."""

    last_api_success_at: float | None = None
    """When a Neutron API call last succeeded (monotonic)."""

    pending_tasks: int = 0
    """Tasks planned but not finished (executor queue)."""


def age(instant: float | None, now: float) -> float | None:
    """Seconds since ``instant`` (never negative), or None if it never happened."""
    if instant is None:
        return None
    return max(0.0, now - instant)
