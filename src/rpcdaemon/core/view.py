"""ClusterView: one immutable snapshot of what Neutron's API says.

Built by ``rpcdaemon.adapters.neutron`` (or any NeutronPort); read by the planners.
Mappings are plain dicts by construction but must be treated as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpcdaemon.core.ids import AgentId, Host, NetworkId, RouterId


@dataclass(frozen=True)
class AgentInfo:
    id: AgentId
    agent_type: str  # Neutron's agent_type string
    host: Host
    admin_state_up: bool
    alive: bool  # the API's flag (server-side heartbeat_timestamp vs agent_down_time)
    availability_zone: str | None = None
    agent_mode: str | None = None  # L3 only: configurations.agent_mode
    started_at: str | None = None
    heartbeat_timestamp: str | None = None
    configurations: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RouterInfo:
    id: RouterId
    ha: bool = False
    distributed: bool = False
    availability_zone_hints: tuple[str, ...] = ()
    admin_state_up: bool = True
    name: str = ""


@dataclass(frozen=True)
class NetworkInfo:
    id: NetworkId
    dhcp_enabled: bool  # at least one subnet with enable_dhcp
    availability_zone_hints: tuple[str, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class ClusterView:
    """Agents, routers, networks and their bindings, as read at ``taken_at`` (monotonic)."""

    agents: Mapping[AgentId, AgentInfo]
    routers: Mapping[RouterId, RouterInfo] = field(default_factory=dict)
    networks: Mapping[NetworkId, NetworkInfo] = field(default_factory=dict)
    router_bindings: Mapping[RouterId, frozenset[AgentId]] = field(default_factory=dict)
    network_bindings: Mapping[NetworkId, frozenset[AgentId]] = field(default_factory=dict)
    taken_at: float = 0.0

    def agents_of_type(self, agent_type: str) -> tuple[AgentInfo, ...]:
        return tuple(a for a in self.agents.values() if a.agent_type == agent_type)

    def routers_on(self, agent_id: AgentId) -> frozenset[RouterId]:
        return frozenset(r for r, agents in self.router_bindings.items() if agent_id in agents)

    def networks_on(self, agent_id: AgentId) -> frozenset[NetworkId]:
        return frozenset(n for n, agents in self.network_bindings.items() if agent_id in agents)
