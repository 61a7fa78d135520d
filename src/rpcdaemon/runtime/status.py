"""The status snapshot the metrics and health endpoints read, from the runtime's state."""

from __future__ import annotations

from collections.abc import Mapping

from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.liveness import BusState
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.runtime.report import PassReport


def build_status(
    report: PassReport | None,
    *,
    policies: Mapping[str, Policy],
    bus: BusState,
    now: float,
    last_tick: float | None,
    last_api_success: float | None,
    pending: int,
    is_leader: bool,
    coordination_connected: bool,
    dry_run: bool,
    tick_failures: int = 0,
    last_tick_error: str | None = None,
    watched_threads: tuple[str, ...] = (),
    dead_threads: tuple[str, ...] = (),
    unknown_agents: int = 0,
) -> StatusSnapshot:
    """The daemon's state as of ``report`` (the last good pass), the reactor's counters and
    how its loop, its threads and the consumer are doing."""
    agents: dict[tuple[str, str], int] = {}
    routers_on_dead = 0
    networks_missing = 0
    breakers: dict[str, bool] = {}
    if report is not None and report.view is not None:
        view = report.view
        for agent in view.agents.values():
            verdict = report.verdicts.get(agent.id)
            if verdict is None:
                continue
            key = (agent.agent_type, verdict.value)
            agents[key] = agents.get(key, 0) + 1
        live = {a for a, v in report.verdicts.items() if v is Liveness.ALIVE}
        routers_on_dead = sum(
            1 for r in view.routers if not (view.router_bindings.get(r, frozenset()) & live)
        )
        dhcp_live = {a.id for a in view.agents_of_type("DHCP agent") if a.id in live}
        policy = policies.get("DHCP agent")
        wanted = len(dhcp_live)
        if policy is not None and policy.dhcp_agents_per_network is not None:
            wanted = min(wanted, policy.dhcp_agents_per_network)
        networks_missing = sum(
            1
            for n, info in view.networks.items()
            if info.dhcp_enabled
            and len(view.network_bindings.get(n, frozenset()) & dhcp_live) < wanted
        )
        breakers = {b.agent_type: b.open for b in report.breakers}
    grace = bus.connected and any(
        bus.listened_for(now) < p.agent_down_time for p in policies.values()
    )
    return StatusSnapshot(
        agents=agents,
        routers_on_dead_agents=routers_on_dead,
        networks_missing_agents=networks_missing,
        breaker_open=breakers,
        is_leader=is_leader,
        coordination_connected=coordination_connected,
        bus_connected=bus.connected,
        dry_run=dry_run,
        in_grace=grace,
        last_tick_at=last_tick,
        last_pass_at=report.finished if report is not None else None,
        last_api_success_at=last_api_success,
        pending_tasks=pending,
        tick_failures=tick_failures,
        last_tick_error=last_tick_error,
        watched_threads=watched_threads,
        dead_threads=dead_threads,
        consumer_lag_messages=bus.lag.messages if bus.lag is not None else None,
        consumer_lag_seconds=bus.lag.seconds if bus.lag is not None else None,
        unknown_agents=unknown_agents,
    )
