"""The one status model: what rpcdaemon sees, per host and per agent, and its JSON form.

Built by :func:`build` from a :class:`~rpcdaemon.core.view.ClusterView`, our liveness
verdicts, heartbeat ages and the daemon's flags (breaker, leader, pause, last pass). The
running daemon serves it as JSON on ``/status``; ``rpcdaemon status`` and ``rpcdaemon
check`` read it back with :func:`from_json`, or build it themselves from the Neutron API
alone when no daemon answers (``source`` says which).

Pure: no IO, no clock. Ages are seconds before the moment the model was built; the only
absolute instant is ``pause.until`` (wall-clock epoch seconds, as stored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.placement import l3_agent_mode
from rpcdaemon.core.view import AgentInfo, ClusterView

SOURCE_DAEMON = "daemon"
SOURCE_API = "api"
SOURCE_API_BUS = "api+bus"


@dataclass(frozen=True)
class PauseState:
    """Automatic moves are paused (every instance observes and plans, none acts)."""

    until: float | None  # wall-clock epoch seconds; None = until resumed
    reason: str = ""
    by: str = ""  # who paused (user@host)
    since: float = 0.0  # wall-clock epoch seconds

    def active(self, wall_now: float) -> bool:
        return self.until is None or wall_now < self.until

    @property
    def unreadable(self) -> bool:
        """A stored pause that could not be read: paused by rule (fail safe)."""
        return self.by == PAUSE_UNREADABLE_BY

    def describe(self, wall_now: float) -> str:
        """One line, the one rendering of a pause (logs, ``status``, ``check``), e.g.
        ``paused by op@h until 2026-12-02 09:00:00Z (300s left): RabbitMQ migration``."""
        if self.unreadable:
            return f"paused (fail safe): {self.reason}"
        if not self.active(wall_now):
            assert self.until is not None
            return (
                f"not paused (the pause by {self.by or 'an operator'} expired {_utc(self.until)})"
            )
        left = (
            "until resumed"
            if self.until is None
            else f"until {_utc(self.until)} ({max(0.0, self.until - wall_now):.0f}s left)"
        )
        return f"paused by {self.by or 'an operator'} {left}: {self.reason or 'no reason given'}"


PAUSE_UNREADABLE_BY = "rpcdaemon (fail safe)"


def unreadable_pause(why: str) -> PauseState:
    """A pause that exists but cannot be read or decoded counts as paused (fail safe)."""
    return PauseState(
        until=None,
        reason=f"pause state unreadable: {why}; counted as paused until it is fixed or "
        "'rpcdaemon resume' removes it",
        by=PAUSE_UNREADABLE_BY,
    )


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class AgentStatus:
    id: AgentId
    agent_type: str
    host: str
    availability_zone: str | None
    mode: str | None  # L3 agent_mode; None for other types
    admin_state_up: bool
    alive_api: bool  # Neutron's flag
    liveness: Liveness  # our verdict (UNKNOWN when we have none)
    heartbeat_age: float | None  # seconds since we last heard it (None: never / not known)
    report_interval: float | None  # learned from the bus, when known
    hosted: tuple[str, ...]  # router ids (L3) or DHCP network ids (DHCP), sorted

    @property
    def live(self) -> bool:
        """Alive by our verdict and admin up: a placement target."""
        return self.admin_state_up and self.liveness is Liveness.ALIVE


@dataclass(frozen=True)
class Stranded:
    """A router or DHCP network hosted only by dead agents, or by none."""

    kind: str  # "router" | "network"
    id: str
    agents: tuple[AgentId, ...]  # the agents it is bound to (none of them live)
    age: float | None  # seconds since the latest heartbeat of those agents (None: unbound/never)


@dataclass(frozen=True)
class ShortNetwork:
    """A DHCP network served by fewer live DHCP agents than wanted (but at least one)."""

    id: str
    live_agents: int
    wanted: int


@dataclass(frozen=True)
class PassSummary:
    trigger: str
    age: float | None  # seconds since it finished
    planned: int  # tasks planned
    handed: int  # tasks handed to the executor
    held: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ClusterStatus:
    source: str  # SOURCE_DAEMON, SOURCE_API or SOURCE_API_BUS
    agents: tuple[AgentStatus, ...]
    stranded: tuple[Stranded, ...] = ()
    short_networks: tuple[ShortNetwork, ...] = ()
    breakers: Mapping[str, bool] = field(default_factory=dict)
    leader: bool | None = None  # this instance leads (None: not known, no daemon)
    coordination_connected: bool | None = None
    pause: PauseState | None = None  # stored pause (may have expired: see paused())
    last_pass: PassSummary | None = None
    dry_run: bool = False
    notes: tuple[str, ...] = ()

    def paused(self, wall_now: float) -> bool:
        return self.pause is not None and self.pause.active(wall_now)

    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({a.host for a in self.agents}))

    def on_host(self, host: str) -> tuple[AgentStatus, ...]:
        return tuple(a for a in self.agents if a.host == host)

    @property
    def routers_stranded(self) -> tuple[Stranded, ...]:
        return tuple(s for s in self.stranded if s.kind == "router")

    @property
    def networks_stranded(self) -> tuple[Stranded, ...]:
        return tuple(s for s in self.stranded if s.kind == "network")


def build(
    view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    *,
    source: str,
    heartbeat_ages: Mapping[AgentId, float] | None = None,
    report_intervals: Mapping[AgentId, float] | None = None,
    dhcp_agents_per_network: int | None = None,
    breakers: Mapping[str, bool] | None = None,
    leader: bool | None = None,
    coordination_connected: bool | None = None,
    pause: PauseState | None = None,
    last_pass: PassSummary | None = None,
    dry_run: bool = False,
    notes: Sequence[str] = (),
) -> ClusterStatus:
    """The status of ``view`` judged by ``verdicts`` (missing verdict: UNKNOWN)."""
    ages = heartbeat_ages or {}
    intervals = report_intervals or {}
    dhcp_networks = {n for n, info in view.networks.items() if info.dhcp_enabled}
    # one pass over the bindings (not one per agent: O(agents x bindings) on a big cloud)
    routers_of: dict[AgentId, list[str]] = {}
    for router_id, bound in view.router_bindings.items():
        for agent_id in bound:
            routers_of.setdefault(agent_id, []).append(router_id)
    networks_of: dict[AgentId, list[str]] = {}
    for network_id, bound in view.network_bindings.items():
        if network_id in dhcp_networks:
            for agent_id in bound:
                networks_of.setdefault(agent_id, []).append(network_id)
    agents = []
    for agent in sorted(view.agents.values(), key=lambda a: (a.host, a.agent_type, a.id)):
        hosted: list[str]
        if agent.agent_type == AgentType.L3.value:
            hosted = sorted(routers_of.get(agent.id, ()))
        elif agent.agent_type == AgentType.DHCP.value:
            hosted = sorted(networks_of.get(agent.id, ()))
        else:
            hosted = []
        agents.append(
            AgentStatus(
                id=agent.id,
                agent_type=agent.agent_type,
                host=agent.host,
                availability_zone=agent.availability_zone,
                mode=_mode(agent),
                admin_state_up=agent.admin_state_up,
                alive_api=agent.alive,
                liveness=verdicts.get(agent.id, Liveness.UNKNOWN),
                heartbeat_age=ages.get(agent.id),
                report_interval=intervals.get(agent.id),
                hosted=tuple(hosted),
            )
        )
    by_id = {a.id: a for a in agents}
    # Stranded = hosted only by DEAD agents (or none): an UNKNOWN agent may still serve
    # (the daemon does not act on it either).
    serving = {a.id for a in agents if a.liveness is not Liveness.DEAD}
    stranded: list[Stranded] = []
    for router_id in sorted(view.routers):
        bound = view.router_bindings.get(router_id, frozenset())
        if not bound & serving:
            stranded.append(_stranded("router", router_id, bound, by_id))
    live_dhcp = {a.id for a in agents if a.agent_type == AgentType.DHCP.value and a.live}
    wanted = len(live_dhcp)
    if dhcp_agents_per_network is not None:
        wanted = min(wanted, dhcp_agents_per_network)
    short: list[ShortNetwork] = []
    for network_id in sorted(dhcp_networks):
        bound = view.network_bindings.get(network_id, frozenset())
        if not bound & serving:
            stranded.append(_stranded("network", network_id, bound, by_id))
        elif len(bound & live_dhcp) < wanted:
            short.append(ShortNetwork(network_id, len(bound & live_dhcp), wanted))
    return ClusterStatus(
        source=source,
        agents=tuple(agents),
        stranded=tuple(stranded),
        short_networks=tuple(short),
        breakers=dict(breakers or {}),
        leader=leader,
        coordination_connected=coordination_connected,
        pause=pause,
        last_pass=last_pass,
        dry_run=dry_run,
        notes=tuple(notes),
    )


def _mode(agent: AgentInfo) -> str | None:
    return l3_agent_mode(agent) if agent.agent_type == AgentType.L3.value else None


def _stranded(
    kind: str, resource: str, bound: frozenset[AgentId], by_id: Mapping[AgentId, AgentStatus]
) -> Stranded:
    ages = [by_id[a].heartbeat_age for a in bound if a in by_id]
    known = [x for x in ages if x is not None]
    return Stranded(kind, resource, tuple(sorted(bound)), min(known) if known else None)


# -- JSON ---------------------------------------------------------------------------------


def to_json(status: ClusterStatus) -> dict[str, Any]:
    """A JSON-ready dict (``/status``); :func:`from_json` reads it back."""
    hosts: dict[str, list[str]] = {}
    for agent in status.agents:
        hosts.setdefault(agent.host, []).append(agent.id)
    return {
        "version": 1,
        "source": status.source,
        "agents": [
            {
                "id": a.id,
                "agent_type": a.agent_type,
                "host": a.host,
                "availability_zone": a.availability_zone,
                "mode": a.mode,
                "admin_state_up": a.admin_state_up,
                "alive_api": a.alive_api,
                "liveness": a.liveness.value,
                "heartbeat_age": a.heartbeat_age,
                "report_interval": a.report_interval,
                "hosted": list(a.hosted),
            }
            for a in status.agents
        ],
        "hosts": hosts,
        "stranded": [
            {"kind": s.kind, "id": s.id, "agents": list(s.agents), "age": s.age}
            for s in status.stranded
        ],
        "short_networks": [
            {"id": s.id, "live_agents": s.live_agents, "wanted": s.wanted}
            for s in status.short_networks
        ],
        "breakers": dict(status.breakers),
        "leader": status.leader,
        "coordination_connected": status.coordination_connected,
        "pause": None
        if status.pause is None
        else {
            "until": status.pause.until,
            "reason": status.pause.reason,
            "by": status.pause.by,
            "since": status.pause.since,
        },
        "last_pass": None
        if status.last_pass is None
        else {
            "trigger": status.last_pass.trigger,
            "age": status.last_pass.age,
            "planned": status.last_pass.planned,
            "handed": status.last_pass.handed,
            "held": list(status.last_pass.held),
            "error": status.last_pass.error,
        },
        "dry_run": status.dry_run,
        "notes": list(status.notes),
    }


def from_json(data: Mapping[str, Any]) -> ClusterStatus:
    """The model from :func:`to_json`'s output. Raises ValueError on a malformed body."""
    try:
        agents = tuple(
            AgentStatus(
                id=AgentId(str(a["id"])),
                agent_type=str(a["agent_type"]),
                host=str(a["host"]),
                availability_zone=a.get("availability_zone"),
                mode=a.get("mode"),
                admin_state_up=bool(a["admin_state_up"]),
                alive_api=bool(a["alive_api"]),
                liveness=Liveness(a["liveness"]),
                heartbeat_age=_opt_float(a.get("heartbeat_age")),
                report_interval=_opt_float(a.get("report_interval")),
                hosted=tuple(str(x) for x in a.get("hosted") or ()),
            )
            for a in data["agents"]
        )
        stranded = tuple(
            Stranded(
                str(s["kind"]),
                str(s["id"]),
                tuple(AgentId(str(x)) for x in s.get("agents") or ()),
                _opt_float(s.get("age")),
            )
            for s in data.get("stranded") or ()
        )
        short = tuple(
            ShortNetwork(str(s["id"]), int(s["live_agents"]), int(s["wanted"]))
            for s in data.get("short_networks") or ()
        )
        p = data.get("pause")
        pause = (
            None
            if p is None
            else PauseState(
                until=_opt_float(p.get("until")),
                reason=str(p.get("reason") or ""),
                by=str(p.get("by") or ""),
                since=float(p.get("since") or 0.0),
            )
        )
        lp = data.get("last_pass")
        last = (
            None
            if lp is None
            else PassSummary(
                trigger=str(lp["trigger"]),
                age=_opt_float(lp.get("age")),
                planned=int(lp.get("planned") or 0),
                handed=int(lp.get("handed") or 0),
                held=tuple(str(x) for x in lp.get("held") or ()),
                error=lp.get("error"),
            )
        )
        return ClusterStatus(
            source=str(data["source"]),
            agents=agents,
            stranded=stranded,
            short_networks=short,
            breakers={str(k): bool(v) for k, v in (data.get("breakers") or {}).items()},
            leader=data.get("leader"),
            coordination_connected=data.get("coordination_connected"),
            pause=pause,
            last_pass=last,
            dry_run=bool(data.get("dry_run")),
            notes=tuple(str(x) for x in data.get("notes") or ()),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed status: {exc!r}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
