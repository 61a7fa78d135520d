"""The plugin protocol.

Every plugin says which (exchange, routing key) pairs it wants a private queue bound to,
and observes decoded bus messages. Planning plugins (L3Agent, DHCPAgent) also turn a
ClusterView plus our liveness verdicts into a Plan, purely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.events import BusMessage
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView


@dataclass(frozen=True)
class Binding:
    """Bind our private queue to ``exchange`` with ``routing_key``."""

    exchange: str
    routing_key: str


@runtime_checkable
class Plugin(Protocol):
    name: str

    def bindings(self) -> Sequence[Binding]: ...

    def observe(self, message: BusMessage) -> None:
        """Called on the consumer thread for each decoded message on this plugin's queue.
        Must not block and must not raise (the caller isolates it anyway)."""


@runtime_checkable
class Planner(Plugin, Protocol):
    agent_type: str  # the Neutron agent_type this plugin cares about

    def plan(
        self,
        view: ClusterView,
        verdicts: Mapping[AgentId, Liveness],
        policy: Policy,
        now: float,
    ) -> Plan:
        """Pure: same inputs, same plan. ``verdicts`` has one entry per agent in ``view``."""
        ...
