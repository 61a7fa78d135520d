"""The view a plan would leave behind if every action succeeded (pure).

Used by the convergence properties (planning again on the projected view must find nothing
to do) and by dry-run / demo output to show the expected end state. Only bindings change:
agents, routers, networks and ``taken_at`` are kept. Held notes are not actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TypeVar

from rpcdaemon.core.actions import Plan, Verb
from rpcdaemon.core.ids import AgentId, NetworkId, RouterId
from rpcdaemon.core.view import ClusterView

K = TypeVar("K", RouterId, NetworkId)


def apply_plan(view: ClusterView, plan: Plan) -> ClusterView:
    """``view`` with every action of ``plan`` applied in order. Idempotent per action,
    like Neutron's answers: adding a present binding or removing an absent one is a no-op.
    A resource left with no agent disappears from the bindings mapping."""
    routers: dict[RouterId, set[AgentId]] = _thaw(view.router_bindings)
    networks: dict[NetworkId, set[AgentId]] = _thaw(view.network_bindings)
    for action in plan.actions:
        if action.verb is Verb.ADD_ROUTER:
            routers.setdefault(RouterId(action.resource_id), set()).add(action.agent_id)
        elif action.verb is Verb.REMOVE_ROUTER:
            routers.get(RouterId(action.resource_id), set()).discard(action.agent_id)
        elif action.verb is Verb.ADD_NETWORK:
            networks.setdefault(NetworkId(action.resource_id), set()).add(action.agent_id)
        else:
            networks.get(NetworkId(action.resource_id), set()).discard(action.agent_id)
    return replace(view, router_bindings=_freeze(routers), network_bindings=_freeze(networks))


def _thaw(bindings: Mapping[K, frozenset[AgentId]]) -> dict[K, set[AgentId]]:
    return {key: set(agents) for key, agents in bindings.items()}


def _freeze(bindings: dict[K, set[AgentId]]) -> dict[K, frozenset[AgentId]]:
    return {key: frozenset(agents) for key, agents in bindings.items() if agents}
