"""The plugin protocol, and the base the two agent planners share.

Every plugin says which (exchange, routing key) pairs it wants a private queue bound to,
and observes decoded bus messages. Planning plugins (L3Agent, DHCPAgent) also turn a
ClusterView plus our liveness verdicts into a Plan, purely: what they *would* do. The
runtime applies the one guard (:func:`rpcdaemon.core.guards.guard`) to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol, runtime_checkable

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.binding import Binding
from rpcdaemon.core.events import BusMessage
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.settings import AgentPluginSettings, Settings

__all__ = ["AgentPlanner", "Binding", "Planner", "Plugin"]


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
    # Optional: ``notifications``, the event types that call for a pass at once (a
    # frozenset of str; none when absent). Not a protocol member, so that planners
    # written before it still match.

    def plan(
        self,
        view: ClusterView,
        verdicts: Mapping[AgentId, Liveness],
        policy: Policy,
        now: float,
    ) -> Plan:
        """Pure: same inputs, same plan, before any guard. ``verdicts`` has one entry per
        agent in ``view``."""
        ...


class AgentPlanner:
    """What L3Agent and DHCPAgent share: their settings section, their bindings, and an
    ``observe`` that does nothing (heartbeats and notifications feed the reactor's intake).
    Subclasses set the class attributes and implement :meth:`plan`."""

    name: ClassVar[str]
    agent_type: ClassVar[str]
    notifications: frozenset[str] = frozenset()

    def __init__(self, settings: Settings) -> None:
        section = settings.l3 if self.agent_type == AgentType.L3.value else settings.dhcp
        self.settings: AgentPluginSettings = section or AgentPluginSettings(name=self.name)

    def routing_keys(self) -> tuple[str, ...]:
        return self.settings.routing_keys

    def bindings(self) -> Sequence[Binding]:
        exchange = self.settings.exchange
        return tuple(Binding(exchange, key) for key in dict.fromkeys(self.routing_keys()))

    def observe(self, message: BusMessage) -> None:
        """Nothing: the runtime's intake feeds heartbeats and notifications to the model."""
