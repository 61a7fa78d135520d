"""Builders for tests, the simulator and demos: small, explicit, no IO.

Every builder takes keyword arguments with sensible defaults, so a test states only what
matters to it::

    l3a = make_agent("l3-a", host="net1")
    l3b = make_agent("l3-b", host="net2", alive=False)
    view = make_view(
        agents=[l3a, l3b],
        routers=[make_router("r1")],
        router_bindings={"r1": ["l3-b"]},
    )
    hb = make_heartbeat(host="net1", received_at=100.0)

Ids are plain strings here; the builders wrap them in the core NewTypes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import AgentId, AgentMode, AgentType, Host, Liveness, NetworkId, RouterId
from rpcdaemon.core.liveness import BusState
from rpcdaemon.core.view import AgentInfo, ClusterView, NetworkInfo, RouterInfo

_BINARIES = {
    AgentType.L3.value: ("neutron-l3-agent", "l3_agent"),
    AgentType.DHCP.value: ("neutron-dhcp-agent", "dhcp_agent"),
}


def make_agent(
    agent_id: str,
    *,
    agent_type: str = AgentType.L3.value,
    host: str | None = None,
    admin_state_up: bool = True,
    alive: bool = True,
    availability_zone: str | None = "nova",
    agent_mode: str | None = None,
    configurations: Mapping[str, Any] | None = None,
) -> AgentInfo:
    """An agent; L3 agents default to ``agent_mode`` legacy, ``host`` defaults to the id."""
    if agent_mode is None and agent_type == AgentType.L3.value:
        agent_mode = AgentMode.LEGACY.value
    config = dict(configurations or {})
    if agent_mode is not None:
        config.setdefault("agent_mode", agent_mode)
    return AgentInfo(
        id=AgentId(agent_id),
        agent_type=agent_type,
        host=Host(host or agent_id),
        admin_state_up=admin_state_up,
        alive=alive,
        availability_zone=availability_zone,
        agent_mode=agent_mode,
        configurations=config,
    )


def make_dhcp_agent(agent_id: str, **kwargs: Any) -> AgentInfo:
    """:func:`make_agent` with ``agent_type="DHCP agent"``."""
    return make_agent(agent_id, agent_type=AgentType.DHCP.value, **kwargs)


def make_router(
    router_id: str,
    *,
    ha: bool = False,
    distributed: bool = False,
    availability_zone_hints: Iterable[str] = (),
    admin_state_up: bool = True,
) -> RouterInfo:
    return RouterInfo(
        id=RouterId(router_id),
        ha=ha,
        distributed=distributed,
        availability_zone_hints=tuple(availability_zone_hints),
        admin_state_up=admin_state_up,
        name=router_id,
    )


def make_network(
    network_id: str, *, dhcp_enabled: bool = True, availability_zone_hints: Iterable[str] = ()
) -> NetworkInfo:
    return NetworkInfo(
        id=NetworkId(network_id),
        dhcp_enabled=dhcp_enabled,
        availability_zone_hints=tuple(availability_zone_hints),
        name=network_id,
    )


def make_view(
    *,
    agents: Iterable[AgentInfo] = (),
    routers: Iterable[RouterInfo] = (),
    networks: Iterable[NetworkInfo] = (),
    router_bindings: Mapping[str, Iterable[str]] | None = None,
    network_bindings: Mapping[str, Iterable[str]] | None = None,
    taken_at: float = 0.0,
) -> ClusterView:
    """A ClusterView; bindings map a resource id to agent ids (empty sets are dropped)."""
    return ClusterView(
        agents={a.id: a for a in agents},
        routers={r.id: r for r in routers},
        networks={n.id: n for n in networks},
        router_bindings={
            RouterId(r): frozenset(AgentId(a) for a in ids)
            for r, ids in (router_bindings or {}).items()
            if ids
        },
        network_bindings={
            NetworkId(n): frozenset(AgentId(a) for a in ids)
            for n, ids in (network_bindings or {}).items()
            if ids
        },
        taken_at=taken_at,
    )


def make_heartbeat(
    *,
    host: str = "net1",
    agent_type: str = AgentType.L3.value,
    received_at: float = 0.0,
    received_wall: float = 1_800_000_000.0,
    agent_time: str | None = None,
    start_flag: bool = False,
    availability_zone: str | None = "nova",
    configurations: Mapping[str, Any] | None = None,
) -> Heartbeat:
    """A decoded ``report_state``. ``agent_time`` None means "in step with our clock"."""
    if agent_time is None:
        agent_time = datetime.fromtimestamp(received_wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    binary, topic = _BINARIES.get(agent_type, ("neutron-agent", "agent"))
    return Heartbeat(
        host=Host(host),
        agent_type=agent_type,
        binary=binary,
        topic=topic,
        availability_zone=availability_zone,
        configurations=dict(configurations or {}),
        start_flag=start_flag,
        agent_time=agent_time,
        received_at=received_at,
        received_wall=received_wall,
    )


def all_alive(view: ClusterView) -> dict[AgentId, Liveness]:
    """Verdicts saying every agent in ``view`` is ALIVE."""
    return {agent_id: Liveness.ALIVE for agent_id in view.agents}


def verdicts_of(by_id: Mapping[str, Liveness]) -> dict[AgentId, Liveness]:
    """Verdicts keyed by plain strings: ``verdicts_of({"l3-a": Liveness.DEAD})``."""
    return {AgentId(k): v for k, v in by_id.items()}


def listening(since: float = 0.0) -> BusState:
    """A connected bus, listening since ``since`` (monotonic)."""
    return BusState(connected=True, listening_since=since)


DISCONNECTED = BusState(connected=False, listening_since=None)
"""The bus is down."""
