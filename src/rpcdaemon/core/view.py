"""ClusterView: one immutable snapshot of what Neutron's API says.

Built by ``rpcdaemon.adapters.neutron`` (or any NeutronPort); read by the planners.
Mappings are plain dicts by construction but must be treated as read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from rpcdaemon.core.ids import AgentId, Host, NetworkId, RouterId

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class RouterInfo:
    id: RouterId
    ha: bool = False
    distributed: bool = False
    availability_zone_hints: tuple[str, ...] = ()
    admin_state_up: bool = True
    name: str = ""


@dataclass(frozen=True, slots=True)
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

    def without_agents(self, agent_ids: frozenset[AgentId]) -> ClusterView:
        """This view minus ``agent_ids`` (which must host nothing: bindings are kept)."""
        if not agent_ids:
            return self
        return replace(self, agents={i: a for i, a in self.agents.items() if i not in agent_ids})


@dataclass(frozen=True)
class Inventory:
    """What a cheap resync reads: agents, routers and networks, without the bindings."""

    agents: Mapping[AgentId, AgentInfo]
    routers: Mapping[RouterId, RouterInfo] = field(default_factory=dict)
    networks: Mapping[NetworkId, NetworkInfo] = field(default_factory=dict)


def share_bindings(bindings: Mapping[K, Iterable[AgentId]]) -> dict[K, frozenset[AgentId]]:
    """``bindings`` as frozensets, one object per distinct set of agents.

    100,000 routers sit on a few hundred distinct sets of agents: sharing them saves the
    ~220 bytes of a frozenset per router (29 MB of a 100,000-router view). A builder of
    views (the Neutron adapter's ``_invert``) should return this."""
    shared: dict[frozenset[AgentId], frozenset[AgentId]] = {}
    out: dict[K, frozenset[AgentId]] = {}
    for key, agents in bindings.items():
        as_set = agents if isinstance(agents, frozenset) else frozenset(agents)
        out[key] = shared.setdefault(as_set, as_set)
    return out


def _agent_state(a: AgentInfo) -> tuple[str, str, bool, bool]:
    return (a.agent_type, a.host, a.admin_state_up, a.alive)


def what_changed(
    view: ClusterView,
    inventory: Inventory,
    reported: Mapping[AgentId, int],
) -> str | None:
    """Why ``view`` no longer describes the cloud, or None when nothing we can see changed.

    Compared: agents (set, type, host, admin state, API alive flag), routers (set and the
    fields placement reads), networks (set, DHCP enabled, AZ hints), and ``reported``: for
    agents whose heartbeat arrived after ``view`` was taken, the number of routers (L3) or
    networks (DHCP) the agent itself reports hosting, against the bindings in ``view``.
    Bindings moved by someone else change those counts within one report_interval.
    """
    if view.agents.keys() != inventory.agents.keys():
        return "agents added or deleted"
    for agent_id, agent in inventory.agents.items():
        if _agent_state(agent) != _agent_state(view.agents[agent_id]):
            return f"agent {agent_id} changed (admin state or alive flag)"
    if view.routers != inventory.routers:
        return "routers created, deleted or changed"
    if view.networks != inventory.networks:
        return "networks created, deleted or changed"
    routers_per_agent = _tally(view.router_bindings.values())
    dhcp_networks = {n for n, info in view.networks.items() if info.dhcp_enabled}
    networks_per_agent = _tally(
        agents for n, agents in view.network_bindings.items() if n in dhcp_networks
    )
    for agent_id, count in reported.items():
        known = view.agents.get(agent_id)
        if known is None or not known.admin_state_up:
            continue  # an admin-down agent may still report what it had
        if known.agent_type == "L3 agent":
            if known.agent_mode not in (None, "legacy", "dvr_snat"):
                continue  # dvr agents report routers they serve without a binding
            hosted = routers_per_agent.get(agent_id, 0)
        elif known.agent_type == "DHCP agent":
            hosted = networks_per_agent.get(agent_id, 0)  # agents serve DHCP networks only
        else:
            continue
        if hosted != count:
            return f"agent {agent_id} reports {count} hosted, the bindings say {hosted}"
    return None


def _tally(bindings: Iterable[frozenset[AgentId]]) -> dict[AgentId, int]:
    counts: dict[AgentId, int] = {}
    for agents in bindings:
        for agent_id in agents:
            counts[agent_id] = counts.get(agent_id, 0) + 1
    return counts
