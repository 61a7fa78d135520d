"""Where a router or network may go, and which eligible agent is least loaded.

A target is: judged ALIVE by us, ``admin_state_up``, of the right ``agent_type``, of a
compatible ``agent_mode`` (L3), and inside the resource's ``availability_zone_hints`` when
any are set (an agent without an AZ is then not eligible, as with Neutron's AZ schedulers).

L3 agent modes (Neutron's ``validate_agent_router_combination``):

* legacy routers go to ``legacy`` or ``dvr_snat`` agents;
* distributed routers (their central SNAT part) go to ``dvr_snat`` agents only;
* ``dvr`` and ``dvr_no_external`` agents (compute nodes) are never targets.

An L3 agent that reports no ``agent_mode`` is ``legacy`` (Neutron's default).

Load is the number of routers (or networks) bound to an agent in the view. The
:class:`LoadTracker` is updated while a plan is built, so one pass spreads its moves
instead of piling them on the agent that was least loaded when the pass began. Ties break
by host, then agent id, so the same inputs always give the same plan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from rpcdaemon.core.ids import AgentId, AgentMode, AgentType, Liveness
from rpcdaemon.core.view import AgentInfo, ClusterView, NetworkInfo, RouterInfo

LEGACY_ROUTER_MODES = frozenset({AgentMode.LEGACY.value, AgentMode.DVR_SNAT.value})
DISTRIBUTED_ROUTER_MODES = frozenset({AgentMode.DVR_SNAT.value})
NEVER_TOUCHED_MODES = frozenset({AgentMode.DVR.value, AgentMode.DVR_NO_EXTERNAL.value})


def l3_agent_mode(agent: AgentInfo) -> str:
    """The agent's ``agent_mode`` (field, else ``configurations``, else ``legacy``)."""
    mode = agent.agent_mode or agent.configurations.get("agent_mode")
    return mode if isinstance(mode, str) and mode else AgentMode.LEGACY.value


def in_zones(agent: AgentInfo, hints: Collection[str]) -> bool:
    """True when ``hints`` is empty or the agent's AZ is one of them."""
    return not hints or agent.availability_zone in hints


def is_live(agent: AgentInfo, verdicts: Mapping[AgentId, Liveness]) -> bool:
    """Alive by our verdict (a missing verdict is UNKNOWN) and administratively up."""
    return agent.admin_state_up and verdicts.get(agent.id, Liveness.UNKNOWN) is Liveness.ALIVE


def can_host_router(agent: AgentInfo, router: RouterInfo) -> bool:
    """Type, mode and AZ allow ``agent`` to host ``router`` (liveness not considered)."""
    if agent.agent_type != AgentType.L3.value:
        return False
    modes = DISTRIBUTED_ROUTER_MODES if router.distributed else LEGACY_ROUTER_MODES
    return l3_agent_mode(agent) in modes and in_zones(agent, router.availability_zone_hints)


def can_host_network(agent: AgentInfo, network: NetworkInfo) -> bool:
    """Type and AZ allow ``agent`` to serve DHCP for ``network`` (liveness not considered)."""
    return agent.agent_type == AgentType.DHCP.value and in_zones(
        agent, network.availability_zone_hints
    )


def router_targets(
    view: ClusterView, verdicts: Mapping[AgentId, Liveness], router: RouterInfo
) -> tuple[AgentInfo, ...]:
    """Every agent that may receive ``router`` now, in tie-break order."""
    return _ordered(
        a for a in view.agents.values() if can_host_router(a, router) and is_live(a, verdicts)
    )


def network_targets(
    view: ClusterView, verdicts: Mapping[AgentId, Liveness], network: NetworkInfo
) -> tuple[AgentInfo, ...]:
    """Every agent that may receive ``network`` now, in tie-break order."""
    return _ordered(
        a for a in view.agents.values() if can_host_network(a, network) and is_live(a, verdicts)
    )


def describe_constraints(*, kind: str, distributed: bool, hints: Collection[str]) -> str:
    """Why nothing qualified, for a held note: "live, admin-up dvr_snat L3 agent in AZ a"."""
    if kind == "router":
        what = "dvr_snat L3 agent" if distributed else "legacy or dvr_snat L3 agent"
    else:
        what = "DHCP agent"
    where = f" in AZ {', '.join(sorted(hints))}" if hints else ""
    return f"no live, admin-up {what}{where}"


def _ordered(agents: Iterable[AgentInfo]) -> tuple[AgentInfo, ...]:
    return tuple(sorted(agents, key=lambda a: (a.host, a.id)))


@dataclass
class LoadTracker:
    """Resources per agent, updated as a plan is built. Local to one planning pass."""

    counts: dict[AgentId, int]

    @classmethod
    def of_routers(cls, view: ClusterView) -> LoadTracker:
        return cls(_tally(view.router_bindings.values()))

    @classmethod
    def of_networks(cls, view: ClusterView) -> LoadTracker:
        return cls(_tally(view.network_bindings.values()))

    def load(self, agent_id: AgentId) -> int:
        return self.counts.get(agent_id, 0)

    def add(self, agent_id: AgentId) -> None:
        self.counts[agent_id] = self.load(agent_id) + 1

    def remove(self, agent_id: AgentId) -> None:
        self.counts[agent_id] = max(0, self.load(agent_id) - 1)

    def ranked(
        self, candidates: Iterable[AgentInfo], *, exclude: Collection[AgentId] = ()
    ) -> list[AgentInfo]:
        """``candidates`` minus ``exclude``, least loaded first, then by host and id."""
        return sorted(
            (a for a in candidates if a.id not in exclude),
            key=lambda a: (self.load(a.id), a.host, a.id),
        )

    def place(
        self, candidates: Iterable[AgentInfo], *, exclude: Collection[AgentId] = ()
    ) -> AgentInfo | None:
        """Pick the least loaded candidate not in ``exclude`` and count the new resource."""
        ranked = self.ranked(candidates, exclude=exclude)
        if not ranked:
            return None
        self.add(ranked[0].id)
        return ranked[0]


def _tally(bindings: Iterable[frozenset[AgentId]]) -> dict[AgentId, int]:
    counts: dict[AgentId, int] = {}
    for agents in bindings:
        for agent_id in agents:
            counts[agent_id] = counts.get(agent_id, 0) + 1
    return counts
