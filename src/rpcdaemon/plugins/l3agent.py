"""L3Agent: keep every router on a live L3 agent (pure planner).

Per router, only the bindings that can carry it are considered: agents of type
``L3 agent`` in the view, minus ``dvr`` / ``dvr_no_external`` agents (compute nodes: never
touched); for a distributed router, only its SNAT bindings on ``dvr_snat`` agents. Those
bindings are split by our verdict into live (ALIVE), unknown (UNKNOWN or no verdict) and
dead (DEAD). Then:

* **legacy / distributed, not HA**
  - a live or unknown binding exists: the router is (or may be) served. Extra bindings on
    dead agents are removed (one ``remove`` task each); nothing is added. UNKNOWN agents
    are never acted on.
  - otherwise, with a target: one task *remove from every dead agent, then add to the
    target* (a legacy router can sit on one agent only, so remove comes first; a crash in
    between leaves it unhosted and the next pass schedules it). ``source_agent`` is the
    dead agent, re-checked by the executor before the task runs.
  - an unhosted legacy router (no binding at all) is scheduled too; an unhosted
    distributed router is not (we cannot tell from the view whether it has an external
    gateway, hence an SNAT part; Neutron schedules that itself).
  - no target: held with a note; the dead binding stays (it is back when the agent is).
* **HA** (``ha: true``): left to VRRP by default; a note is held when every replica is on
  a dead agent (pitfall: "routers can silently stay on dead agents"). With
  ``restore_ha_redundancy``: each dead binding is replaced, *add to a live agent that does
  not host it yet, then remove the dead binding*, so the count of bindings is kept.
* a non-distributed router found on a ``dvr``-mode agent (Neutron refuses that) is left
  alone with a note: adding it elsewhere would put a legacy router on two agents.
* **admin_state_up false routers** are treated like the others: Neutron keeps them
  scheduled, and an operator who enables one expects it to come up on a live agent.
* **admin-down dead agents** are evacuated too (Neutron skips them, which leaves their
  routers unserved); admin-down agents are never targets.

Targets come from :mod:`rpcdaemon.core.placement` (least loaded, updated as the plan is
built); the runtime then applies :func:`rpcdaemon.core.guards.guard`. Tasks are ordered
by router id (deterministic); each carries a reason naming the agent and why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from rpcdaemon.core.actions import Plan, Task, add_router, move_router, remove_router
from rpcdaemon.core.ids import AgentId, AgentMode, AgentType, Liveness
from rpcdaemon.core.placement import (
    NEVER_TOUCHED_MODES,
    LoadTracker,
    Targets,
    describe_constraints,
    l3_agent_mode,
)
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import AgentInfo, ClusterView, RouterInfo
from rpcdaemon.plugins.base import AgentPlanner

logger = logging.getLogger(__name__)


def _where(agent: AgentInfo) -> str:
    return f"L3 agent {agent.id} on {agent.host}"


class _RouterPass:
    """One planning pass over the routers of a view (state local to the pass)."""

    def __init__(
        self, view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy
    ) -> None:
        self.view = view
        self.verdicts = verdicts
        self.policy = policy
        self.load = LoadTracker.of_routers(view)
        self.targets = Targets(view, verdicts)  # once per class of router, not per router
        self.tasks: list[Task] = []
        self.held: list[str] = []

    def carriers(self, router: RouterInfo) -> tuple[list[AgentInfo], bool]:
        """The router's bindings this planner may reason about (sorted by host and id),
        and whether a non-distributed router also sits on a ``dvr``-mode agent (Neutron
        refuses that combination; if it happens anyway, we leave that router alone)."""
        found: list[AgentInfo] = []
        foreign = False
        for agent_id in self.view.router_bindings.get(router.id, frozenset()):
            agent = self.view.agents.get(agent_id)
            if agent is None or agent.agent_type != AgentType.L3.value:
                continue
            mode = l3_agent_mode(agent)
            if mode in NEVER_TOUCHED_MODES:
                foreign = foreign or not router.distributed
                continue
            if router.distributed and mode != AgentMode.DVR_SNAT.value:
                continue
            found.append(agent)
        return sorted(found, key=lambda a: (a.host, a.id)), foreign

    def verdict(self, agent: AgentInfo) -> Liveness:
        return self.verdicts.get(agent.id, Liveness.UNKNOWN)

    def no_target(self, router: RouterInfo, what: str) -> None:
        why = describe_constraints(
            kind="router", distributed=router.distributed, hints=router.availability_zone_hints
        )
        self.held.append(f"router {router.id}: {what}, but {why}")

    def plan_router(self, router: RouterInfo) -> None:
        carriers, foreign = self.carriers(router)
        if foreign:
            self.held.append(
                f"router {router.id}: bound to a dvr-mode agent although not distributed; "
                "leaving it alone"
            )
            return
        dead = [a for a in carriers if self.verdict(a) is Liveness.DEAD]
        served = [a for a in carriers if self.verdict(a) is not Liveness.DEAD]
        if router.ha:
            self.plan_ha(router, carriers, dead, served)
        else:
            self.plan_single(router, dead, served)

    def plan_single(
        self, router: RouterInfo, dead: Sequence[AgentInfo], served: Sequence[AgentInfo]
    ) -> None:
        if served:
            for agent in dead:
                reason = (
                    f"router {router.id}: {_where(agent)} is dead; "
                    f"the router is also on {served[0].host}"
                )
                self.load.remove(agent.id)
                self.tasks.append(
                    Task((remove_router(router.id, agent.id, reason),), reason, agent.id)
                )
            return
        if not dead and router.distributed:
            return  # unhosted DVR: SNAT only exists with a gateway; not ours to decide
        what = f"{_where(dead[0])} is dead" if dead else "no L3 agent hosts it"
        target = self.load.place(self.targets.for_router(router))
        if target is None:
            self.no_target(router, what)
            return
        reason = f"router {router.id}: {what}; moving to {_where(target)}"
        actions = [remove_router(router.id, a.id, reason) for a in dead]
        actions.append(add_router(router.id, target.id, reason))
        for agent in dead:
            self.load.remove(agent.id)
        self.tasks.append(Task(tuple(actions), reason, dead[0].id if dead else None))

    def plan_ha(
        self,
        router: RouterInfo,
        carriers: Sequence[AgentInfo],
        dead: Sequence[AgentInfo],
        served: Sequence[AgentInfo],
    ) -> None:
        if not dead:
            return
        if not self.policy.restore_ha_redundancy:
            if not served:
                self.held.append(
                    f"HA router {router.id}: all {len(dead)} replica(s) on dead agents "
                    "(left to VRRP; restore_ha_redundancy is off)"
                )
            return
        taken = {a.id for a in carriers}
        candidates = self.targets.for_router(router)
        for agent in dead:
            what = f"HA replica on {_where(agent)} is dead"
            target = self.load.place(candidates, exclude=taken)
            if target is None:
                self.no_target(router, what)
                continue
            taken.add(target.id)
            self.load.remove(agent.id)
            reason = f"router {router.id}: {what}; replacing it on {_where(target)}"
            actions = move_router(router.id, agent.id, target.id, reason, ha=True)
            self.tasks.append(Task(actions, reason, agent.id))


def plan_routers(view: ClusterView, verdicts: Mapping[AgentId, Liveness], policy: Policy) -> Plan:
    """The L3 plan for ``view`` before guards (see the module docstring)."""
    state = _RouterPass(view, verdicts, policy)
    for router_id in sorted(view.routers):
        state.plan_router(view.routers[router_id])
    return Plan(L3AgentPlugin.name, tuple(state.tasks), tuple(state.held))


class L3AgentPlugin(AgentPlanner):
    """Planner for routers on ``L3 agent`` agents; the runtime owns liveness and the guard."""

    name = "L3Agent"
    agent_type = AgentType.L3.value

    def plan(
        self,
        view: ClusterView,
        verdicts: Mapping[AgentId, Liveness],
        policy: Policy,
        now: float,
    ) -> Plan:
        """Pure: routers off dead L3 agents and unhosted routers onto live ones."""
        plan = plan_routers(view, verdicts, policy)
        logger.debug("L3 plan at %.1f: %d task(s), %d held", now, len(plan.tasks), len(plan.held))
        return plan
