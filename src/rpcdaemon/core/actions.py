"""What planners return: frozen actions grouped into tasks, and the plan.

A *task* is a short sequence of actions that must run in order (for a legacy router:
remove from the dead agent, then add to the target). Tasks are independent of each
other and may run concurrently. Every action carries the reason it exists.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpcdaemon.core.ids import AgentId, NetworkId, RouterId


class Verb(str, enum.Enum):
    ADD_ROUTER = "add_router"
    REMOVE_ROUTER = "remove_router"
    ADD_NETWORK = "add_network"
    REMOVE_NETWORK = "remove_network"


@dataclass(frozen=True)
class Action:
    verb: Verb
    agent_id: AgentId
    resource_id: str  # a RouterId for router verbs, a NetworkId for network verbs
    reason: str

    @property
    def key(self) -> str:
        return f"{self.verb.value}:{self.resource_id}@{self.agent_id}"

    @property
    def resource(self) -> str:
        """What at most one unfinished task may change: a router (its bindings move
        together: a legacy router sits on one agent), or one network's binding to one
        agent (a network's DHCP bindings are independent of each other)."""
        if self.verb in (Verb.ADD_ROUTER, Verb.REMOVE_ROUTER):
            return self.resource_id
        return f"{self.resource_id}@{self.agent_id}"

    def describe(self) -> str:
        what = "router" if self.verb in (Verb.ADD_ROUTER, Verb.REMOVE_ROUTER) else "network"
        op = "add" if self.verb in (Verb.ADD_ROUTER, Verb.ADD_NETWORK) else "remove"
        prep = "to" if op == "add" else "from"
        return f"{op} {what} {self.resource_id} {prep} agent {self.agent_id}"


def add_router(router_id: RouterId, agent_id: AgentId, reason: str) -> Action:
    return Action(Verb.ADD_ROUTER, agent_id, router_id, reason)


def remove_router(router_id: RouterId, agent_id: AgentId, reason: str) -> Action:
    return Action(Verb.REMOVE_ROUTER, agent_id, router_id, reason)


def move_router(
    router_id: RouterId, source: AgentId, target: AgentId, reason: str, *, ha: bool
) -> tuple[Action, Action]:
    """The two steps of moving a router between agents, in the one safe order: an HA router
    is added to the target first (its redundancy never drops), any other router is removed
    first (Neutron keeps a legacy router on one agent only: the add would be refused)."""
    add, remove = add_router(router_id, target, reason), remove_router(router_id, source, reason)
    return (add, remove) if ha else (remove, add)


def add_network(network_id: NetworkId, agent_id: AgentId, reason: str) -> Action:
    return Action(Verb.ADD_NETWORK, agent_id, network_id, reason)


def remove_network(network_id: NetworkId, agent_id: AgentId, reason: str) -> Action:
    return Action(Verb.REMOVE_NETWORK, agent_id, network_id, reason)


@dataclass(frozen=True)
class Task:
    """Actions run in order. ``source_agent``, when set, is re-checked (fresh API read)
    before the task runs: if it is alive again, the task is dropped."""

    actions: tuple[Action, ...]
    reason: str
    source_agent: AgentId | None = None

    @property
    def key(self) -> str:
        return "|".join(a.key for a in self.actions)

    @property
    def resources(self) -> frozenset[str]:
        """What this task changes (:attr:`Action.resource`): one unfinished task each."""
        return frozenset(a.resource for a in self.actions)


@dataclass(frozen=True)
class Plan:
    """Tasks to run, plus why anything was held back (breaker, caps, no target)."""

    plugin: str
    tasks: tuple[Task, ...] = ()
    held: tuple[str, ...] = ()  # human-readable notes on what was not planned and why
    deferred: int = 0  # tasks left for the next pass by max_moves_per_pass
    breaker_open: bool = False  # every task dropped: too many agents of the type dead

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for t in self.tasks for a in t.actions)

    def __bool__(self) -> bool:
        return bool(self.tasks)
