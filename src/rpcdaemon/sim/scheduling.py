"""The agent-scheduler extensions: which agent hosts which router or network, by Neutron's rules.

Sources (docs/simulator.md has the full table): neutron/db/l3_agentschedulers_db.py
(``validate_agent_router_combination``, ``check_agent_router_scheduling_needed``,
``add_router_to_l3_agent``, ``remove_router_from_l3_agent``), neutron/db/agentschedulers_db.py
(``add_network_to_dhcp_agent``, ``remove_network_from_dhcp_agent``), and what a real neutron 29
answered (/work/shared/neutron-rig/REPORT.md section 3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from rpcdaemon.sim import resources as res
from rpcdaemon.sim.state import INTERNAL_ERROR, CloudState, SimEvent, SimNeutronError

logger = logging.getLogger(__name__)


def _invalid_l3(agent_id: str) -> SimNeutronError:
    # InvalidL3Agent subclasses AgentNotFound, hence 404
    return SimNeutronError(
        404, "InvalidL3Agent", f"Agent {agent_id} is not a L3 Agent or has been disabled"
    )


def _invalid_dhcp(agent_id: str) -> SimNeutronError:
    return SimNeutronError(
        404, "InvalidDHCPAgent", f"Agent {agent_id} is not a valid DHCP Agent or has been disabled."
    )


def _notification(event_type: str, agent_id: str, key: str, value: str) -> SimEvent:
    publisher = "router" if event_type.startswith("l3_agent") else "network"
    return SimEvent(
        "notification",
        "",
        event_type=event_type,
        payload={"agent": {"id": agent_id, key: value}},
        publisher=publisher,
    )


class SchedulingMixin(CloudState):
    """L3 and DHCP agent-scheduler operations."""

    def hang_next_add(self, agent_id: str, seconds: float) -> None:
        """The next router add to ``agent_id`` saves the binding, then answers only after
        ``seconds`` (201): a plan stuck on one slow add. Ends early when the cloud closes."""
        with self._lock:
            self._get_agent(agent_id)
            self._add_hang[agent_id] = seconds

    # -- L3 ------------------------------------------------------------------------------------------

    def add_router_to_agent(self, agent_id: str, router_id: str) -> None:
        """POST /agents/{agent_id}/l3-routers.

        Liveness is not checked (a dead agent is accepted). If the agent's process is gone the
        binding is saved, then the router_added_to_agent RPC call times out twice and the answer
        is 500, after 2 x rpc_response_timeout.
        """
        with self._lock:
            router = self._get_router(router_id)  # RouterNotFound comes first
            agent = self._get_agent(agent_id)
            if agent.agent_type != res.L3_AGENT:
                raise _invalid_l3(agent_id)
            mode = str(agent.configurations.get("agent_mode", "legacy"))
            if mode in res.DVR_MODES:
                raise SimNeutronError(
                    409,
                    "DVRL3CannotAssignToDvrAgent",
                    "Not allowed to manually assign a router to an agent in 'dvr' mode.",
                )
            if mode == "legacy" and router.distributed:
                raise SimNeutronError(
                    409,
                    "RouterL3AgentMismatch",
                    f"Cannot host distributed router {router_id} on legacy L3 agent {agent_id}.",
                )
            if not agent.admin_state_up:
                raise _invalid_l3(agent_id)
            if not agent.configurations.get("handle_internal_only_routers", True):
                # get_l3_agent_candidates: no gateway and the agent refuses internal-only routers
                raise _invalid_l3(agent_id)
            bound = self._l3.setdefault(router_id, [])
            if agent_id in bound:
                # already there: no binding, no RPC, but the API still notifies and answers 201
                self._emit([_notification("l3_agent.router.add", agent_id, "router_id", router_id)])
                return
            if bound and not router.ha:
                raise SimNeutronError(
                    409,
                    "RouterHostedByL3Agent",
                    f"The router {router_id} has been already hosted by the L3 Agent {bound[0]}.",
                )
            bound.append(agent_id)
            self._refresh_counts(agent_id)
            host, topic, running = agent.host, agent.topic, agent.process_running
            hang = self._add_hang.pop(agent_id, 0.0)
        if hang > 0:
            logger.info("sim: router add to %s hangs %.1fs", host, hang)
            self._closing.wait(hang)
        call = SimEvent(
            "call",
            f"{topic}.{host}",
            method="router_added_to_agent",
            args={"payload": [router_id]},
        )
        self._emit([call])
        if not running:
            # oslo.messaging call: two attempts, each timing out, then the API answers 500
            logger.info(
                "sim: router_added_to_agent to %s: no consumer, blocking %.1fs then 500",
                host,
                2 * self.rpc_response_timeout,
            )
            self._closing.wait(self.rpc_response_timeout)
            self._emit([call])
            self._closing.wait(self.rpc_response_timeout)
            raise SimNeutronError(500, "HTTPInternalServerError", INTERNAL_ERROR)
        self._emit([_notification("l3_agent.router.add", agent_id, "router_id", router_id)])

    def remove_router_from_agent(self, agent_id: str, router_id: str) -> None:
        """DELETE /agents/{agent_id}/l3-routers/{router_id}: 204 even when not hosted.

        The agent's type is not checked; the router is looked up after the unbind (a missing
        router is 404 RouterNotFound).
        """
        with self._lock:
            agent = self._get_agent(agent_id)
            mode = str(agent.configurations.get("agent_mode", "legacy"))
            if agent.agent_type == res.L3_AGENT and mode in res.DVR_MODES:
                raise SimNeutronError(
                    409,
                    "DVRL3CannotRemoveFromDvrAgent",
                    "Not allowed to manually remove a router from an agent in 'dvr' mode.",
                )
            bound = self._l3.get(router_id, [])
            if agent_id in bound:
                bound.remove(agent_id)
                self._refresh_counts(agent_id)
            self._get_router(router_id)
            host, topic = agent.host, agent.topic
        self._emit(
            [
                SimEvent(
                    "cast",
                    f"{topic}.{host}",
                    method="router_removed_from_agent",
                    args={"payload": {"router_id": router_id}},
                ),
                _notification("l3_agent.router.remove", agent_id, "router_id", router_id),
            ]
        )

    def routers_on(self, agent_id: str) -> set[str]:
        return self._hosted_by(self._l3, agent_id)

    def router_agents(self, router_id: str) -> set[str]:
        return self._hosts_of(self._l3, router_id)

    def routers_on_agent(self, agent_id: str) -> list[dict[str, Any]]:
        """GET /agents/{id}/l3-routers: 404 AgentNotFound only when nothing is bound."""
        return self._listed_on(self._l3, self._routers, self._router_dict, agent_id)

    def agents_hosting_router(self, router_id: str) -> list[dict[str, Any]]:
        """GET /routers/{id}/l3-agents: an unknown router simply has no agents."""
        extra: dict[str, Any] = {
            "resource_versions": {},
            "ha_chassis_priority": None,
            "ha_state": None,
        }
        return self._agents_listed(self._l3, router_id, extra)

    # -- DHCP ----------------------------------------------------------------------------------------

    def add_network_to_agent(self, agent_id: str, network_id: str) -> None:
        """POST /agents/{agent_id}/dhcp-networks: 409 when already hosted; liveness not checked."""
        with self._lock:
            self._get_network(network_id)  # NetworkNotFound comes first
            agent = self._get_agent(agent_id)
            if agent.agent_type != res.DHCP_AGENT or not agent.admin_state_up:
                raise _invalid_dhcp(agent_id)
            bound = self._dhcp.setdefault(network_id, [])
            if agent_id in bound:
                raise SimNeutronError(
                    409,
                    "NetworkHostedByDHCPAgent",
                    f"The network {network_id} has been already hosted by the DHCP Agent {agent_id}.",
                )
            bound.append(agent_id)
            self._refresh_counts(agent_id)
            host, topic = agent.host, agent.topic
        # network_added_to_agent is a cast of network_create_end: it never blocks
        self._emit(
            [
                SimEvent(
                    "cast",
                    f"{topic}.{host}",
                    method="network_create_end",
                    args={"payload": {"network": {"id": network_id}, "priority": 0}},
                ),
                _notification("dhcp_agent.network.add", agent_id, "network_id", network_id),
            ]
        )

    def remove_network_from_agent(self, agent_id: str, network_id: str) -> None:
        """DELETE /agents/{agent_id}/dhcp-networks/{network_id}: 409 when not hosted."""
        with self._lock:
            agent = self._get_agent(agent_id)
            bound = self._dhcp.get(network_id, [])
            if agent_id not in bound:
                raise SimNeutronError(
                    409,
                    "NetworkNotHostedByDhcpAgent",
                    f"The network {network_id} is not hosted by the DHCP Agent {agent_id}.",
                )
            bound.remove(agent_id)
            self._refresh_counts(agent_id)
            host, topic = agent.host, agent.topic
        self._emit(
            [
                SimEvent(
                    "cast",
                    f"{topic}.{host}",
                    method="network_delete_end",
                    args={"payload": {"network_id": network_id, "priority": 0}},
                ),
                _notification("dhcp_agent.network.remove", agent_id, "network_id", network_id),
            ]
        )

    def networks_on(self, agent_id: str) -> set[str]:
        return self._hosted_by(self._dhcp, agent_id)

    def network_agents(self, network_id: str) -> set[str]:
        return self._hosts_of(self._dhcp, network_id)

    def networks_on_agent(self, agent_id: str) -> list[dict[str, Any]]:
        return self._listed_on(self._dhcp, self._networks, self._network_dict, agent_id)

    def agents_hosting_network(self, network_id: str) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"resource_versions": {}, "ha_chassis_priority": None}
        return self._agents_listed(self._dhcp, network_id, extra)

    # -- queries shared by the L3 and DHCP binding tables ----------------------------------------

    def _hosted_by(self, table: Mapping[str, list[str]], agent_id: str) -> set[str]:
        with self._lock:
            return {r for r, bound in table.items() if agent_id in bound}

    def _hosts_of(self, table: Mapping[str, list[str]], resource_id: str) -> set[str]:
        with self._lock:
            return set(table.get(resource_id, []))

    def _listed_on(
        self,
        table: Mapping[str, list[str]],
        rows: Mapping[str, Any],
        render: Callable[[Any], dict[str, Any]],
        agent_id: str,
    ) -> list[dict[str, Any]]:
        """An agent's hosted resources in API shape; AgentNotFound only when none is bound."""
        with self._lock:
            hosted = [rows[r] for r, b in table.items() if agent_id in b and r in rows]
            if not hosted:
                self._get_agent(agent_id)
            return [render(row) for row in hosted]

    def _agents_listed(
        self, table: Mapping[str, list[str]], resource_id: str, extra: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The agents hosting a resource in API shape (an unknown resource has none)."""
        now = self._clock()
        with self._lock:
            out = []
            for agent_id in table.get(resource_id, []):
                agent = self._agents.get(agent_id)
                if agent is not None:
                    out.append({**self._agent_dict(agent, now), **extra})
            return out
