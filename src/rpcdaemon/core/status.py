"""StatusSnapshot: what the daemon looks like right now, and the /healthz and /readyz verdicts.

The runtime builds one (cheaply, from state it already owns) whenever asked; the metrics
server reads it at scrape time. Instants are monotonic seconds (the reactor's clock), so
the snapshot stays pure: ages are computed by the reader with its own ``now``.
:func:`health` and :func:`readiness` are pure verdicts over a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_TICK_FAILURES = 3
"""Consecutive failed reactor ticks after which /healthz fails (one bad tick is noise)."""


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

    tick_failures: int = 0
    """Consecutive reactor ticks that raised; reset to 0 by the next tick that completes."""

    last_tick_error: str | None = None
    """``repr`` of the exception of the latest failed tick (kept after recovery), or None."""

    watched_threads: tuple[str, ...] = ()
    """Names of the threads the daemon needs (reactor, consumer, elector, ...)."""

    dead_threads: tuple[str, ...] = ()
    """Names of needed threads that have exited (a subset of ``watched_threads``)."""

    consumer_lag_messages: int | None = None
    """Messages waiting in our bus queue, not yet delivered to us (None = not measured)."""

    consumer_lag_seconds: float | None = None
    """How far behind the consumer is: receive time minus publish time of the latest
    heartbeat handled, in seconds (None = not measured)."""

    unknown_agents: int = 0
    """Agent records we hold (heard on the bus) that Neutron's agent list does not know."""


def age(instant: float | None, now: float) -> float | None:
    """Seconds since ``instant`` (never negative), or None if it never happened."""
    if instant is None:
        return None
    return max(0.0, now - instant)


def health(
    snap: StatusSnapshot,
    now: float,
    *,
    stale_after: float,
    max_tick_failures: int = MAX_TICK_FAILURES,
) -> tuple[bool, dict[str, Any]]:
    """/healthz: the process is doing its job (consuming, the loop turns and succeeds,
    every needed thread runs). Returns (ok, JSON body)."""
    reasons = []
    if not snap.bus_connected:
        reasons.append("AMQP consumer not connected")
    tick_age = age(snap.last_tick_at, now)
    if tick_age is None:
        reasons.append("reactor has not ticked yet")
    elif tick_age > stale_after:
        reasons.append(f"reactor last ticked {tick_age:.1f}s ago (limit {stale_after:g}s)")
    if snap.tick_failures >= max_tick_failures:
        reasons.append(
            f"reactor ticks failing: {snap.tick_failures} in a row "
            f"(limit {max_tick_failures}), last: {snap.last_tick_error}"
        )
    if snap.dead_threads:
        reasons.append(f"needed threads dead: {', '.join(snap.dead_threads)}")
    body: dict[str, Any] = {
        "status": "fail" if reasons else "ok",
        "bus_connected": snap.bus_connected,
        "last_tick_age": tick_age,
        "tick_failures": snap.tick_failures,
        "last_tick_error": snap.last_tick_error,
        "dead_threads": list(snap.dead_threads),
        "leader": snap.is_leader,
        "dry_run": snap.dry_run,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body


def readiness(
    snap: StatusSnapshot, now: float, *, api_stale_after: float
) -> tuple[bool, dict[str, Any]]:
    """/readyz: leader or healthy standby, and the Neutron API answered recently."""
    reasons = []
    if snap.is_leader:
        role = "leader"
    elif snap.coordination_connected:
        role = "standby"
    else:
        role = "disconnected"
        reasons.append("leader election backend unreachable: cannot act or take over")
    api_age = age(snap.last_api_success_at, now)
    if api_age is None:
        reasons.append("no successful Neutron API call yet")
    elif api_age > api_stale_after:
        reasons.append(f"last Neutron API success {api_age:.1f}s ago (limit {api_stale_after:g}s)")
    body: dict[str, Any] = {
        "status": "fail" if reasons else "ok",
        "role": role,
        "last_api_success_age": api_age,
        "dry_run": snap.dry_run,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body
