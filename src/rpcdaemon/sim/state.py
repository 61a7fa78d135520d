"""The simulated cloud's state, its locking and event plumbing, and the agents table.

``SimCloud`` (cloud.py) adds resources (crud.py) and the agent-scheduler rules (scheduling.py) on
top of :class:`CloudState`. Everything is in memory and guarded by one re-entrant lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rpcdaemon.sim import resources as res
from rpcdaemon.sim.rows import (
    INTERNAL_ERROR,
    AgentRow,
    NetworkRow,
    RouterRow,
    SimEvent,
    SimNeutronError,
    not_found,
)

logger = logging.getLogger(__name__)

# the rows, errors and events of the simulated database, re-exported for its users
__all__ = [
    "INTERNAL_ERROR",
    "AgentRow",
    "CloudState",
    "NetworkRow",
    "RouterRow",
    "SimEvent",
    "SimNeutronError",
    "not_found",
]


class CloudState:
    """Neutron's tables, the agents' rules, and the plumbing shared by the mixins."""

    def __init__(
        self,
        *,
        agent_down_time: float = 75.0,
        rpc_response_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent_down_time = agent_down_time
        self.rpc_response_timeout = rpc_response_timeout
        self._clock = clock
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._agents: dict[str, AgentRow] = {}
        self._routers: dict[str, RouterRow] = {}
        self._networks: dict[str, NetworkRow] = {}
        self._subnets: dict[str, dict[str, Any]] = {}
        self._l3: dict[str, list[str]] = {}  # router id -> agent ids, in binding order
        self._dhcp: dict[str, list[str]] = {}  # network id -> agent ids
        self._listeners: list[Callable[[SimEvent], None]] = []
        self._next_vni = 1000
        # agent id -> seconds its next router add hangs (saved first, then the answer waits:
        # an agent whose RPC consumer is stuck); one add each, see hang_next_add
        self._add_hang: dict[str, float] = {}

    # -- plumbing -------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def subscribe(self, listener: Callable[[SimEvent], None]) -> None:
        """Call ``listener`` (outside the lock, on the caller's thread) for every bus event."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[SimEvent], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        """Wake any request blocked on a dead agent's RPC call (server shutdown)."""
        self._closing.set()

    def _emit(self, events: Sequence[SimEvent]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    logger.exception(
                        "sim event listener failed on %s", event.method or event.event_type
                    )

    # -- agents ---------------------------------------------------------------------------------

    def _alive(self, agent: AgentRow, now: float) -> bool:
        # neutron.agent.common.utils.is_agent_down: older than agent_down_time -> down. The stored
        # heartbeat has whole seconds only, so the fraction is lost before comparing.
        return (now - int(agent.heartbeat_at)) <= self.agent_down_time

    def _agent_dict(self, agent: AgentRow, now: float) -> dict[str, Any]:
        return {
            "id": agent.id,
            "agent_type": agent.agent_type,
            "binary": agent.binary,
            "topic": agent.topic,
            "host": agent.host,
            "admin_state_up": agent.admin_state_up,
            "created_at": res.agent_time(agent.created_at),
            "started_at": res.agent_time(agent.started_at),
            "heartbeat_timestamp": res.agent_time(agent.heartbeat_at),
            "description": agent.description,
            "resources_synced": None,
            "availability_zone": agent.availability_zone,
            "alive": self._alive(agent, now),
            "configurations": dict(agent.configurations),
        }

    def _get_agent(self, agent_id: str) -> AgentRow:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise not_found("Agent", agent_id)
        return agent

    def add_agent(
        self,
        agent_type: str,
        host: str,
        *,
        agent_mode: str = "legacy",
        availability_zone: str = "nova",
        admin_state_up: bool = True,
    ) -> dict[str, Any]:
        """Register an agent as if it had just sent its first report_state (alive now)."""
        binary, topic = res.AGENT_BINARIES.get(agent_type, ("neutron-agent", "N/A"))
        if agent_type == res.L3_AGENT and agent_mode not in res.L3_MODES:
            raise ValueError(f"unknown agent_mode {agent_mode!r}")
        now = self._clock()
        with self._lock:
            for existing in self._agents.values():
                if existing.agent_type == agent_type and existing.host == host:
                    raise ValueError(f"a {agent_type} already exists on host {host}")
            agent = AgentRow(
                id=str(uuid.uuid4()),
                agent_type=agent_type,
                binary=binary,
                topic=topic,
                host=host,
                availability_zone=availability_zone,
                admin_state_up=admin_state_up,
                configurations=res.default_configurations(agent_type, agent_mode),
                created_at=now,
                started_at=now,
                heartbeat_at=now,
            )
            self._agents[agent.id] = agent
            return self._agent_dict(agent, now)

    def heartbeat(
        self, host: str, agent_type: str, *, state: Mapping[str, Any] | None = None
    ) -> str:
        """A report_state arrived (at the server's clock). Returns neutron's answer.

        ``new`` (agent created), ``revived`` (it was down) or ``alive``, like
        ``AgentExtRpcCallback.report_state``. Unknown agents are created, as Neutron does.
        """
        state = dict(state or {})
        now = self._clock()
        with self._lock:
            agent = next(
                (a for a in self._agents.values() if a.host == host and a.agent_type == agent_type),
                None,
            )
            if agent is None:
                conf = state.get("configurations") or {}
                self.add_agent(
                    agent_type,
                    host,
                    agent_mode=str(conf.get("agent_mode", "legacy")),
                    availability_zone=str(state.get("availability_zone") or "nova"),
                )
                agent = next(
                    a
                    for a in self._agents.values()
                    if a.host == host and a.agent_type == agent_type
                )
                status = "new"
            else:
                status = "alive" if self._alive(agent, now) else "revived"
            agent.heartbeat_at = now
            if state.get("start_flag"):
                agent.started_at = now
            if isinstance(state.get("configurations"), Mapping):
                agent.configurations = dict(state["configurations"])
                # the counts follow the bindings: a heartbeat built before a binding changed
                # must not bring back the old count (the next one is built from this copy)
                self._refresh_counts(agent.id)
            if state.get("availability_zone"):
                agent.availability_zone = str(state["availability_zone"])
        return status

    def agents(self) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            return [self._agent_dict(a, now) for a in self._agents.values()]

    def agent(self, agent_id: str) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            return self._agent_dict(self._get_agent(agent_id), now)

    def find_agent(self, host: str, agent_type: str) -> dict[str, Any] | None:
        now = self._clock()
        with self._lock:
            for a in self._agents.values():
                if a.host == host and a.agent_type == agent_type:
                    return self._agent_dict(a, now)
        return None

    def update_agent(
        self,
        agent_id: str,
        *,
        admin_state_up: bool | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """PUT /agents/{id}: only admin_state_up and description are writable."""
        events: list[SimEvent] = []
        now = self._clock()
        with self._lock:
            agent = self._get_agent(agent_id)
            if admin_state_up is not None and admin_state_up != agent.admin_state_up:
                agent.admin_state_up = admin_state_up
                # AgentSchedulerDbMixin.update_agent casts agent_updated to the agent
                events.append(
                    SimEvent(
                        "cast",
                        f"{agent.topic}.{agent.host}",
                        method="agent_updated",
                        args={"payload": {"admin_state_up": admin_state_up}},
                    )
                )
            if description is not None:
                agent.description = description
            body = self._agent_dict(agent, now)
        events.append(
            SimEvent("notification", "", event_type="agent.update.end", payload={"agent": body})
        )
        self._emit(events)
        return body

    def delete_agent(self, agent_id: str) -> None:
        with self._lock:
            self._get_agent(agent_id)
            del self._agents[agent_id]
            for table in (self._l3, self._dhcp):
                for bound in table.values():
                    if agent_id in bound:
                        bound.remove(agent_id)

    def set_agent_process(self, agent_id: str, running: bool) -> None:
        """``False``: nothing consumes the agent's RPC queue any more (crashed process)."""
        with self._lock:
            self._get_agent(agent_id).process_running = running

    def agent_process_running(self, agent_id: str) -> bool:
        with self._lock:
            return self._get_agent(agent_id).process_running

    # -- helpers for the mixins ---------------------------------------------------------------

    def _refresh_counts(self, agent_id: str) -> None:
        """Keep ``configurations.routers`` / ``networks`` in step with the bindings."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        if agent.agent_type == res.L3_AGENT:
            agent.configurations["routers"] = sum(agent_id in b for b in self._l3.values())
        elif agent.agent_type == res.DHCP_AGENT:
            nets = [n for n, b in self._dhcp.items() if agent_id in b]
            agent.configurations["networks"] = len(nets)
            agent.configurations["subnets"] = sum(
                1 for s in self._subnets.values() if s["network_id"] in nets
            )

    def _router_dict(self, router: RouterRow) -> dict[str, Any]:
        azs = sorted(
            {
                self._agents[a].availability_zone
                for a in self._l3.get(router.id, [])
                if a in self._agents
            }
        )
        return res.router_body(
            router_id=router.id,
            name=router.name,
            created=router.created_at,
            admin_state_up=router.admin_state_up,
            ha=router.ha,
            distributed=router.distributed,
            availability_zone_hints=list(router.availability_zone_hints),
            availability_zones=azs,
            revision=router.revision,
        )

    def _network_dict(self, network: NetworkRow) -> dict[str, Any]:
        azs = sorted(
            {
                self._agents[a].availability_zone
                for a in self._dhcp.get(network.id, [])
                if a in self._agents
            }
        )
        subnets = [s["id"] for s in self._subnets.values() if s["network_id"] == network.id]
        return res.network_body(
            network_id=network.id,
            name=network.name,
            created=network.created_at,
            admin_state_up=network.admin_state_up,
            subnets=subnets,
            availability_zone_hints=list(network.availability_zone_hints),
            availability_zones=azs,
            segmentation_id=network.segmentation_id,
            revision=network.revision,
        )

    def _get_router(self, router_id: str) -> RouterRow:
        router = self._routers.get(router_id)
        if router is None:
            raise not_found("Router", router_id)
        return router

    def _get_network(self, network_id: str) -> NetworkRow:
        network = self._networks.get(network_id)
        if network is None:
            raise not_found("Network", network_id)
        return network
