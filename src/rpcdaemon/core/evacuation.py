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
already copied is not copied again, already-disabled agents are not disabled again.

A legacy router whose remove succeeded but whose add did not land is on *no* agent: the
fresh view no longer shows it on the host. So the verb snapshots what the host hosted at
the start (:func:`hosted_on`) and passes it back (``started``): a router or DHCP network
of that snapshot now on no agent is re-placed (``replace``, run with phase 1), and
:func:`unplaced` names what is still on no live agent at the end. The
host's ``dvr``/``dvr_no_external`` L3 agents (compute nodes) are disabled but their
routers are left alone (Neutron serves those per compute node).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rpcdaemon.core.actions import (
    Task,
    add_network,
    add_router,
    move_router,
    remove_network,
)
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
class Hosted:
    """What the host's evacuated agents hosted when the evacuation started."""

    routers: frozenset[RouterId] = frozenset()
    networks: frozenset[NetworkId] = frozenset()


@dataclass(frozen=True)
class Evacuation:
    host: str
    agents: tuple[AgentId, ...]  # the host's agents of the evacuated types
    copy: tuple[Task, ...] = ()  # phase 1: DHCP adds elsewhere
    disable: tuple[AgentId, ...] = ()  # phase 2: agents still admin up
    move: tuple[Task, ...] = ()  # phase 3: router moves, DHCP removes from the host
    held: tuple[str, ...] = ()  # what cannot move and why
    replace: tuple[Task, ...] = ()  # with phase 1: what was on the host, now on no agent

    @property
    def steps(self) -> int:
        return len(self.replace) + len(self.copy) + len(self.disable) + len(self.move)

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
    started: Hosted | None = None,
) -> Evacuation:
    """What is left to do to drain ``host`` (raises ValueError if it has no such agent).
    ``started``: :func:`hosted_on` at the start of the run (what to re-place if lost)."""
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
    router_load = LoadTracker.of_routers(view)
    replace: list[Task] = []
    if started is not None:
        _plan_replace(view, targets_view, verdicts, started, router_load, reason, replace, held)
    if l3:
        _plan_routers(
            view, targets_view, verdicts, mine_ids, router_load, reason, move, held, stuck
        )
    # An agent keeping something that cannot move stays enabled: disabling it would stop
    # it serving that network or router (Neutron syncs nothing to an admin-down agent).
    held.extend(f"agent {a} stays enabled: it keeps what could not move" for a in sorted(stuck))
    disable = tuple(a.id for a in mine if a.admin_state_up and a.id not in stuck)
    return Evacuation(
        host,
        tuple(a.id for a in mine),
        tuple(copy),
        disable,
        tuple(move),
        tuple(held),
        tuple(replace),
    )


def hosted_on(view: ClusterView, host: str, *, l3: bool = True, dhcp: bool = True) -> Hosted:
    """The routers (of the L3 agents the evacuation moves) and DHCP networks (with a
    DHCP subnet) on ``host`` now: :func:`plan_evacuation`'s ``started``."""
    routers: set[RouterId] = set()
    networks: set[NetworkId] = set()
    for agent in view.agents.values():
        if agent.host != host:
            continue
        if (
            l3
            and agent.agent_type == AgentType.L3.value
            and l3_agent_mode(agent) not in NEVER_TOUCHED_MODES
        ):
            routers |= view.routers_on(agent.id)
        if dhcp and agent.agent_type == AgentType.DHCP.value:
            networks |= {
                n
                for n in view.networks_on(agent.id)
                if (info := view.networks.get(n)) is not None and info.dhcp_enabled
            }
    return Hosted(frozenset(routers), frozenset(networks))


def unplaced(
    view: ClusterView, verdicts: Mapping[AgentId, Liveness], started: Hosted
) -> tuple[str, ...]:
    """Each router / DHCP network of ``started`` (still existing) that no live agent
    (alive, admin up) hosts now, as ``"router ID"`` / ``"network ID"``."""

    def on_live(agents: frozenset[AgentId]) -> bool:
        return any(a in view.agents and is_live(view.agents[a], verdicts) for a in agents)

    lost = [
        f"router {r}"
        for r in sorted(started.routers)
        if r in view.routers and not on_live(view.router_bindings.get(r, frozenset()))
    ]
    lost += [
        f"network {n}"
        for n in sorted(started.networks)
        if (info := view.networks.get(n)) is not None
        and info.dhcp_enabled
        and not on_live(view.network_bindings.get(n, frozenset()))
    ]
    return tuple(lost)


def _plan_replace(
    view: ClusterView,
    targets_view: ClusterView,
    verdicts: Mapping[AgentId, Liveness],
    started: Hosted,
    router_load: LoadTracker,
    reason: str,
    replace: list[Task],
    held: list[str],
) -> None:
    """What was on the host at the start and is now on no agent at all (a remove that
    landed, its add that did not): add it to a live agent elsewhere."""
    for router_id in sorted(started.routers):
        router = view.routers.get(router_id)
        if router is None or view.router_bindings.get(router_id):
            continue
        target = router_load.place(router_targets(targets_view, verdicts, router))
        if target is None:
            held.append(
                f"router {router_id} is on no agent and has no target: "
                + describe_constraints(
                    kind="router",
                    distributed=router.distributed,
                    hints=router.availability_zone_hints,
                )
            )
            continue
        replace.append(
            Task(
                (add_router(router_id, target.id, reason),),
                f"{reason}: re-place router {router_id} (left on no agent) on {target.id}",
            )
        )
    network_load = LoadTracker.of_networks(view)
    for network_id in sorted(started.networks):
        info = view.networks.get(network_id)
        if info is None or not info.dhcp_enabled or view.network_bindings.get(network_id):
            continue
        target = network_load.place(network_targets(targets_view, verdicts, info))
        if target is None:
            held.append(f"DHCP network {network_id} is on no agent and has no target")
            continue
        replace.append(
            Task(
                (add_network(network_id, target.id, reason),),
                f"{reason}: re-place DHCP network {network_id} (left on no agent) on {target.id}",
            )
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
    load: LoadTracker,
    reason: str,
    move: list[Task],
    held: list[str],
    stuck: set[AgentId],
) -> None:
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
            actions = move_router(rid, agent_id, target.id, reason, ha=router.ha)
            move.append(Task(actions, why))
