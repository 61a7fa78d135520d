"""Thresholds and caps every plan obeys. Built from the config by ``rpcdaemon.config``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    agent_down_time: float = 75.0
    """Seconds without a heartbeat (our receive clock) before an agent is dead."""

    max_dead_fraction: float = 0.5
    """Circuit breaker: if more than this fraction of the agents of one type look dead at
    once, act on none of them."""

    max_moves_per_pass: int = 100
    """Cap on tasks one pass may execute; the rest wait for the next pass."""

    restore_ha_redundancy: bool = False
    """L3: also re-home HA routers (by default VRRP handles them)."""

    dhcp_agents_per_network: int | None = None
    """DHCP: None = every live agent (the 2014 policy); N = keep N."""

    startup_grace_per_network: float = 2.0
    """DHCP: seconds of grace per hosted network for an agent that just started (Neutron)."""

    confirm_with_api: bool = True
    """Before acting on a dead agent, require the API to say alive=false too."""
