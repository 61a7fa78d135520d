"""Protocols the runtime depends on; adapters implement them (and tests use fakes)."""

from __future__ import annotations

from typing import Protocol

from rpcdaemon.core.ids import AgentId, NetworkId, RouterId
from rpcdaemon.core.view import AgentInfo, ClusterView, Inventory


class NeutronPort(Protocol):
    """The Neutron API as the daemon needs it.

    Raises only ``rpcdaemon.core.errors`` exceptions: TemporaryError (5xx, timeouts,
    connection errors), NotFoundError, ConflictError, PermanentError.
    "Already there" / "not there" answers are success (L3: 201/204; DHCP: 409
    NetworkHostedByDHCPAgent / NetworkNotHostedByDhcpAgent).
    """

    def snapshot(self, *, routers: bool = True, networks: bool = True) -> ClusterView:
        """Agents + routers/networks + bindings in O(agents) calls."""
        ...

    def inventory(self, *, routers: bool = True, networks: bool = True) -> Inventory:
        """Agents, routers, networks without bindings: a constant number of calls."""
        ...

    def get_agent(self, agent_id: AgentId) -> AgentInfo | None: ...

    def router_agents(self, router_id: RouterId) -> frozenset[AgentId]: ...

    def network_agents(self, network_id: NetworkId) -> frozenset[AgentId]: ...

    def add_router(self, agent_id: AgentId, router_id: RouterId) -> None: ...

    def remove_router(self, agent_id: AgentId, router_id: RouterId) -> None: ...

    def add_network(self, agent_id: AgentId, network_id: NetworkId) -> None: ...

    def remove_network(self, agent_id: AgentId, network_id: NetworkId) -> None: ...
