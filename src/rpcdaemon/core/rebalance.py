"""``rpcdaemon rebalance``: even out routers across live L3 agents (pure planner).

Only live (ALIVE, admin up), router-carrying L3 agents (``legacy``/``dvr_snat``) count.
While the most loaded agent holds at least two routers more than the least loaded agent
that may take one of them (placement rules: mode, AZ hints, not already bound), one router
moves, up to ``max_moves``. Least disruptive first: an admin-down router (carries no
traffic), then an HA router (VRRP keeps a replica: add first, then remove), then a
legacy/distributed router (remove, then add: a short outage). Ties by router id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rpcdaemon.core.actions import Task, move_router
from rpcdaemon.core.ids import AgentId, AgentType, Liveness, RouterId
from rpcdaemon.core.placement import (
    LEGACY_ROUTER_MODES,
    LoadTracker,
    can_host_router,
    is_live,
    l3_agent_mode,
)
from rpcdaemon.core.view import AgentInfo, ClusterView, RouterInfo

REASON = "rebalancing routers across live L3 agents"


@dataclass(frozen=True)
class Rebalance:
    tasks: tuple[Task, ...]
    loads_before: Mapping[AgentId, int]
    loads_after: Mapping[AgentId, int]

    @property
    def spread_before(self) -> int:
        return _spread(self.loads_before)

    @property
    def spread_after(self) -> int:
        return _spread(self.loads_after)


def _spread(loads: Mapping[AgentId, int]) -> int:
    return max(loads.values()) - min(loads.values()) if loads else 0


def _disruption(router: RouterInfo) -> tuple[int, str]:
    if not router.admin_state_up:
        return (0, router.id)
    if router.ha:
        return (1, router.id)
    return (2, router.id)


def plan_rebalance(
    view: ClusterView, verdicts: Mapping[AgentId, Liveness], *, max_moves: int = 10
) -> Rebalance:
    agents = sorted(
        (
            a
            for a in view.agents.values()
            if a.agent_type == AgentType.L3.value
            and l3_agent_mode(a) in LEGACY_ROUTER_MODES
            and is_live(a, verdicts)
        ),
        key=lambda a: (a.host, a.id),
    )
    tracker = LoadTracker({a.id: len(view.routers_on(a.id)) for a in agents})
    before = dict(tracker.counts)
    bindings: dict[str, set[AgentId]] = {r: set(b) for r, b in view.router_bindings.items()}
    tasks: list[Task] = []
    moved: set[str] = set()
    while len(tasks) < max_moves:
        step = _one_move(view, agents, tracker, bindings, moved)
        if step is None:
            break
        router, source, target = step
        rid = RouterId(router.id)
        why = f"{REASON}: move router {router.id} from agent {source.id} ({source.host}) to {target.id} ({target.host})"
        actions = move_router(rid, source.id, target.id, REASON, ha=router.ha)
        tasks.append(Task(actions, why))
        tracker.remove(source.id)
        tracker.add(target.id)
        bindings[router.id] = (bindings.get(router.id, set()) - {source.id}) | {target.id}
        moved.add(router.id)
    return Rebalance(tuple(tasks), before, dict(tracker.counts))


def _one_move(
    view: ClusterView,
    agents: list[AgentInfo],
    tracker: LoadTracker,
    bindings: Mapping[str, set[AgentId]],
    moved: set[str],
) -> tuple[RouterInfo, AgentInfo, AgentInfo] | None:
    """The least disruptive router off the most loaded agent that can improve the spread."""
    for source in sorted(agents, key=lambda a: (-tracker.load(a.id), a.host, a.id)):
        hosted = [
            view.routers[RouterId(r)]
            for r, b in bindings.items()
            if source.id in b and RouterId(r) in view.routers and r not in moved
        ]
        for router in sorted(hosted, key=_disruption):
            candidates = [
                a
                for a in agents
                if a.id not in bindings.get(router.id, set())
                and can_host_router(a, router)
                and tracker.load(a.id) + 2 <= tracker.load(source.id)
            ]
            ranked = tracker.ranked(candidates)
            if ranked:
                return router, source, ranked[0]
    return None
