"""Draining a live host for maintenance (``rpcdaemon evacuate HOST``): the pure planner.

The plan has three phases, run in order (each phase's tasks may run concurrently):

1. **copy DHCP**: each DHCP network on the host gets added to live DHCP agents elsewhere
   until it has as many live agents *besides the host* as it had in all (at least one;
   at most ``dhcp_agents_per_network`` when set). The host still serves it meanwhile.
2. **disable**: the host's agents are set ``admin_state_up: false``, so that neither
   Neutron's schedulers nor the daemon (which never targets an admin-down agent) put
   anything back.
3. **move**: each router on the host's L3 agents moves with the daemon's placement
   (:mod:`rpcdaemon.core.placement`, least loaded first, AZ and agent-mode rules): a
   legacy or distributed router is removed then added (Neutron allows one binding); an
   HA router is added to a new agent first, then removed (its redundancy is kept).
   Each DHCP network is removed from the host only if it is served by another live
   agent (else it is held: never without a live DHCP agent).

Re-planning from a fresh view after an interruption gives the rest of the work: what is
already copied is not copied again, already-disabled agents are not disabled again. The
host's ``dvr``/``dvr_no_external`` L3 agents (compute nodes) are disabled but their
routers are left alone (Neutron serves those per compute node).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rpcdaemon.core.actions import Task, add_network, add_router, remove_network, remove_router
from rpcdaemon.core.ids import AgentId, AgentType, Liveness, NetworkId, RouterId
from rpcdaemon.core.placement import (
    NEVER_TOUCHED_MODES,
    LoadTracker,
    describe_constraints,
    is_live,
    l3_agent_mode,
    network_targets,
    router_targets,
)
from rpcdaemon.core.view import ClusterView

EVACUATED_TYPES = (AgentType.L3.value, AgentType.DHCP.value)


@dataclass(frozen=True)
class Evacuation:
    host: str
    agents: tuple[AgentId, ...]  # the host's agents of the evacuated types
    copy: tuple[Task, ...] = ()  # phase 1: DHCP adds elsewhere
    disable: tuple[AgentId, ...] = ()  # phase 2: agents still admin up
    move: tuple[Task, ...] = ()  # phase 3: router moves, DHCP removes from the host
    held: tuple[str, ...] = ()  # what cannot move and why

    @property
    def steps(self) -> int:
        return len(self.copy) + len(self.disable) + len(self.move)

    @property
    def done(self) -> bool:
        return self.steps == 0


def plan_evacuation(
    view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    host: str,
    *,
    l3: bool = True,
    dhcp: bool = True,
    dhcp_agents_per_network: int | None = None,
) -> Evacuation:
    """What is left to do to drain ``host`` (raises ValueError if it has no such agent)."""
    types = [t for t, on in ((AgentType.L3.value, l3), (AgentType.DHCP.value, dhcp)) if on]
    mine = sorted(
        (a for a in view.agents.values() if a.host == host and a.agent_type in types),
        key=lambda a: a.id,
    )
    if not mine:
        raise ValueError(f"host {host!r} has no {' or '.join(types)}")
    mine_ids = frozenset(a.id for a in mine)
    reason = f"evacuating host {host} for maintenance"
    held: list[str] = []
    # Targets never include the host's own agents (admin up or not yet).
    targets_view = view.without_agents(mine_ids)
    copy: list[Task] = []
    move: list[Task] = []
    stuck: set[AgentId] = set()
    if dhcp:
        _plan_dhcp(
            view,
            targets_view,
            verdicts,
            mine_ids,
            dhcp_agents_per_network,
            reason,
            copy,
            move,
            held,
            stuck,
        )
    if l3:
        _plan_routers(view, targets_view, verdicts, mine_ids, reason, move, held, stuck)
    # An agent keeping something that cannot move stays enabled: disabling it would stop
    # it serving that network or router (Neutron syncs nothing to an admin-down agent).
    held.extend(f"agent {a} stays enabled: it keeps what could not move" for a in sorted(stuck))
    disable = tuple(a.id for a in mine if a.admin_state_up and a.id not in stuck)
    return Evacuation(
        host, tuple(a.id for a in mine), tuple(copy), disable, tuple(move), tuple(held)
    )


def _plan_dhcp(
    view: ClusterView,
    targets_view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    mine: frozenset[AgentId],
    per_network: int | None,
    reason: str,
    copy: list[Task],
    move: list[Task],
    held: list[str],
    stuck: set[AgentId],
) -> None:
    load = LoadTracker.of_networks(view)
    ours = [a for a in mine if view.agents[a].agent_type == AgentType.DHCP.value]
    for agent_id in ours:
        for network_id in sorted(view.networks_on(agent_id)):
            info = view.networks.get(network_id)
            if info is None:
                continue
            if not info.dhcp_enabled:  # nothing served: just drop the binding
                move.append(
                    Task(
                        (remove_network(NetworkId(network_id), agent_id, reason),),
                        f"{reason}: remove network {network_id} (no DHCP subnet) from {agent_id}",
                    )
                )
                continue
            bound = view.network_bindings.get(network_id, frozenset())
            serving = [a for a in bound if verdicts.get(a) is Liveness.ALIVE]
            wanted = max(1, len(serving))
            if per_network is not None:
                wanted = max(1, min(wanted, per_network))
            elsewhere = {
                a for a in bound - mine if a in view.agents and is_live(view.agents[a], verdicts)
            }
            candidates = network_targets(targets_view, verdicts, info)
            adds: list[AgentId] = []
            while len(elsewhere) + len(adds) < wanted:
                target = load.place(candidates, exclude=elsewhere | set(adds))
                if target is None:
                    break
                adds.append(target.id)
            for target_id in adds:
                copy.append(
                    Task(
                        (add_network(NetworkId(network_id), target_id, reason),),
                        f"{reason}: copy DHCP network {network_id} to agent {target_id}",
                    )
                )
            if elsewhere or adds:
                move.append(
                    Task(
                        (remove_network(NetworkId(network_id), agent_id, reason),),
                        f"{reason}: remove DHCP network {network_id} from agent {agent_id}",
                    )
                )
            else:
                stuck.add(agent_id)
                held.append(
                    f"DHCP network {network_id} stays on {agent_id}: "
                    f"{describe_constraints(kind='network', distributed=False, hints=info.availability_zone_hints)}"
                )


def _plan_routers(
    view: ClusterView,
    targets_view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    mine: frozenset[AgentId],
    reason: str,
    move: list[Task],
    held: list[str],
    stuck: set[AgentId],
) -> None:
    load = LoadTracker.of_routers(view)
    ours = sorted(
        a
        for a in mine
        if view.agents[a].agent_type == AgentType.L3.value
        and l3_agent_mode(view.agents[a]) not in NEVER_TOUCHED_MODES
    )
    for agent_id in ours:
        for router_id in sorted(view.routers_on(agent_id)):
            router = view.routers.get(router_id)
            if router is None:
                continue
            bound = view.router_bindings.get(router_id, frozenset())
            target = load.place(router_targets(targets_view, verdicts, router), exclude=bound)
            if target is None:
                stuck.add(agent_id)
                held.append(
                    f"router {router_id} stays on {agent_id}: "
                    + describe_constraints(
                        kind="router",
                        distributed=router.distributed,
                        hints=router.availability_zone_hints,
                    )
                )
                continue
            load.remove(agent_id)
            rid = RouterId(router_id)
            why = f"{reason}: move router {router_id} from agent {agent_id} to {target.id}"
            if router.ha:
                actions = (add_router(rid, target.id, reason), remove_router(rid, agent_id, reason))
            else:
                actions = (remove_router(rid, agent_id, reason), add_router(rid, target.id, reason))
            move.append(Task(actions, why))
