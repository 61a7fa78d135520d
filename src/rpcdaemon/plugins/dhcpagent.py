"""DHCPAgent: keep every DHCP network on live DHCP agents (pure planner).

A *DHCP network* has at least one subnet with DHCP enabled (``NetworkInfo.dhcp_enabled``).
A network may sit on several DHCP agents, so adds and removes are independent one-action
tasks (Neutron accepts add-then-remove; DHCP needs no ordering).

Rules, per pass:

* **No live DHCP agent at all** (none ALIVE and admin-up): nothing is planned, bindings on
  dead agents are kept (Neutron does the same: bug 1461714, a messaging failure must not
  unschedule every network).
* **Dead agents**: every network is removed from every DEAD DHCP agent (``source_agent`` is
  that agent, re-checked before the removal runs) - except a DHCP network that would be
  left with no live host because no target exists: it keeps its dead bindings and is held.
  UNKNOWN agents are never acted on.
* **Replication** (``policy.dhcp_agents_per_network``): None = host each DHCP network on
  every live, admin-up DHCP agent inside its ``availability_zone_hints`` (the 2014 policy);
  N = add to the least-loaded such agents until N live, admin-up agents host it. Extra
  hosts are never removed (that is an operator's choice, not a failure).
* **No DHCP subnet**: such a network is never added anywhere; existing bindings on live
  agents are kept (Neutron keeps them, and enabling DHCP on a subnet later must not need
  a reschedule); bindings on dead agents are removed like any other.
* **Deleted networks**: a network in ``view.network_bindings`` but absent from
  ``view.networks`` is removed from every agent listing it. Skipped (and held) when
  ``view.networks`` is empty while bindings exist: that view did not load networks.

Task order (the per-pass cap keeps the first ones): adds to networks that have no live
host, then removals from dead agents, then other adds, then deleted-network cleanup; by
network id and agent host within each group. The runtime then applies the one guard.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from rpcdaemon.core.actions import Plan, Task, add_network, remove_network
from rpcdaemon.core.ids import AgentId, AgentType, Liveness, NetworkId
from rpcdaemon.core.placement import LoadTracker, Targets, describe_constraints, is_live
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import AgentInfo, ClusterView, NetworkInfo
from rpcdaemon.plugins.base import AgentPlanner

logger = logging.getLogger(__name__)

_RESTORE, _EVACUATE, _REPLICATE, _CLEANUP = range(4)

DHCP_EVENTS = frozenset(
    {
        "network.create.end",
        "network.delete.end",
        "network.update.end",
        "subnet.create.end",
        "subnet.update.end",
        "subnet.delete.end",
    }
)
"""Notifications that change which networks need DHCP: a pass at once."""


def _where(agent: AgentInfo) -> str:
    return f"DHCP agent {agent.id} on {agent.host}"


class _NetworkPass:
    """One planning pass over the networks of a view (state local to the pass)."""

    def __init__(
        self, view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy
    ) -> None:
        self.view = view
        self.verdicts = verdicts
        self.policy = policy
        self.dhcp = {a.id: a for a in view.agents_of_type(AgentType.DHCP.value)}
        self.load = LoadTracker.of_networks(view)
        self.targets = Targets(view, verdicts)  # once per class of network, not per network
        # each agent's state once per pass; per network, set intersections (no sort, no scan)
        self.dhcp_ids = frozenset(self.dhcp)
        self.dead_ids = frozenset(i for i in self.dhcp if verdicts.get(i) is Liveness.DEAD)
        self.live_ids = frozenset(i for i, a in self.dhcp.items() if is_live(a, verdicts))
        self.tasks: list[tuple[int, str, str, int, Task]] = []  # sort key, then the task
        self.held: list[str] = []

    def hosts(self, network_id: NetworkId) -> list[AgentInfo]:
        bound = self.view.network_bindings.get(network_id, frozenset())
        return sorted((self.dhcp[a] for a in bound if a in self.dhcp), key=lambda a: (a.host, a.id))

    def queue(self, group: int, network_id: NetworkId, agent: AgentInfo, task: Task) -> None:
        self.tasks.append((group, network_id, agent.host, len(self.tasks), task))

    def remove(
        self, group: int, network_id: NetworkId, agent: AgentInfo, reason: str, *, source: bool
    ) -> None:
        self.load.remove(agent.id)
        action = remove_network(network_id, agent.id, reason)
        self.queue(group, network_id, agent, Task((action,), reason, agent.id if source else None))

    def plan_network(self, network: NetworkInfo) -> None:
        bound = self.view.network_bindings.get(network.id, frozenset())
        dead = sorted((self.dhcp[a] for a in bound & self.dead_ids), key=lambda a: (a.host, a.id))
        live = len(bound & self.live_ids)
        adds: Sequence[AgentInfo] = ()
        if network.dhcp_enabled:
            adds = self.choose_adds(network, bound, live)
            if not live and not adds:
                why = describe_constraints(
                    kind="network", distributed=False, hints=network.availability_zone_hints
                )
                if dead:
                    self.held.append(
                        f"network {network.id}: only on dead DHCP agents, but {why}; "
                        "keeping its bindings"
                    )
                elif bound.isdisjoint(self.dhcp_ids):
                    self.held.append(f"network {network.id}: no DHCP agent hosts it, but {why}")
                return
        group = _RESTORE if not live else _REPLICATE
        for agent in adds:
            if dead:
                reason = f"network {network.id}: {_where(dead[0])} is dead; adding {agent.host}"
            elif not live:
                reason = f"network {network.id}: no live DHCP agent hosts it; adding {agent.host}"
            else:
                reason = f"network {network.id}: replicating to {_where(agent)}"
            task = Task((add_network(network.id, agent.id, reason),), reason)
            self.queue(group, network.id, agent, task)
        for agent in dead:
            reason = f"network {network.id}: {_where(agent)} is dead"
            self.remove(_EVACUATE, network.id, agent, reason, source=True)

    def choose_adds(
        self, network: NetworkInfo, bound: frozenset[AgentId], live: int
    ) -> list[AgentInfo]:
        """The agents to add ``network`` to (counted in the load); ``live``: live hosts."""
        targets = self.targets.for_network(network)
        wanted = self.policy.dhcp_agents_per_network
        if wanted is None:  # every live target: nothing to rank
            adds = [a for a in targets if a.id not in bound]
            for agent in adds:
                self.load.add(agent.id)
            return adds
        return self.load.place_many(targets, max(0, wanted - live), exclude=bound)

    def plan_deleted(self) -> None:
        gone = sorted(set(self.view.network_bindings) - set(self.view.networks))
        if not gone:
            return
        if not self.view.networks:
            self.held.append(
                f"{len(gone)} network(s) have DHCP bindings but the view lists no networks; "
                "not treating them as deleted"
            )
            return
        for network_id in gone:
            for agent in self.hosts(network_id):
                reason = f"network {network_id} no longer exists; removing it from {agent.host}"
                self.remove(_CLEANUP, network_id, agent, reason, source=False)

    def ordered_tasks(self) -> tuple[Task, ...]:
        # the queue position breaks ties: tuples compare in C and never reach a Task
        return tuple(item[-1] for item in sorted(self.tasks))


def plan_networks(view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy) -> Plan:
    """The DHCP plan for ``view`` before guards (see the module docstring)."""
    state = _NetworkPass(view, verdicts, policy)
    if not any(is_live(a, verdicts) for a in state.dhcp.values()):
        if any(verdicts.get(a) is Liveness.DEAD for a in state.dhcp):
            state.held.append("no live DHCP agent: keeping every binding on dead agents")
        return Plan(DHCPAgentPlugin.name, (), tuple(state.held))
    for network_id in sorted(view.networks):
        state.plan_network(view.networks[network_id])
    state.plan_deleted()
    return Plan(DHCPAgentPlugin.name, state.ordered_tasks(), tuple(state.held))


class DHCPAgentPlugin(AgentPlanner):
    """Planner for networks on ``DHCP agent`` agents; the runtime owns liveness and the guard."""

    name = "DHCPAgent"
    agent_type = AgentType.DHCP.value
    notifications = DHCP_EVENTS

    def routing_keys(self) -> tuple[str, ...]:
        keys = self.settings.routing_keys
        if self.settings.notifications:
            keys = (*keys, f"{self.settings.notification_topic}.info")
        return keys

    def plan(
        self,
        view: ClusterView,
        verdicts: Mapping[AgentId, Liveness],
        policy: Policy,
        now: float,
    ) -> Plan:
        """Pure: networks off dead DHCP agents and onto every (or N) live one."""
        plan = plan_networks(view, verdicts, policy)
        logger.debug("DHCP plan at %.1f: %d task(s), %d held", now, len(plan.tasks), len(plan.held))
        return plan
