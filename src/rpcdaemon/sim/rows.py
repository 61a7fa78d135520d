"""The simulated Neutron database's rows, its error answers and the events it emits."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

INTERNAL_ERROR = "Request Failed: internal server error while processing your request."


class SimNeutronError(Exception):
    """An error answer, exactly as Neutron gives it: HTTP status, NeutronError type and message."""

    def __init__(self, status: int, type_: str, message: str, detail: str = "") -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"NeutronError": {"type": self.type, "message": self.message, "detail": self.detail}}


@dataclasses.dataclass(frozen=True)
class SimEvent:
    """Something Neutron would put on the bus.

    kind: ``call`` / ``cast`` (to ``topic`` = ``<agent topic>.<host>``), ``fanout`` (to the
    ``<topic>_fanout`` exchange) or ``notification`` (``notifications.info``).
    """

    kind: str
    topic: str
    method: str = ""
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    event_type: str = ""
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    publisher: str = "network"


@dataclasses.dataclass
class AgentRow:
    id: str
    agent_type: str
    binary: str
    topic: str
    host: str
    availability_zone: str
    admin_state_up: bool
    configurations: dict[str, Any]
    created_at: float
    started_at: float
    heartbeat_at: float
    description: str | None = None
    process_running: bool = True


@dataclasses.dataclass
class RouterRow:
    id: str
    name: str
    created_at: float
    admin_state_up: bool
    ha: bool
    distributed: bool
    availability_zone_hints: list[str]
    revision: int = 1


@dataclasses.dataclass
class NetworkRow:
    id: str
    name: str
    created_at: float
    admin_state_up: bool
    availability_zone_hints: list[str]
    segmentation_id: int
    revision: int = 1


def not_found(kind: str, ident: str) -> SimNeutronError:
    # Texts as neutron 29 / neutron-lib 5 word them (RouterNotFound has no final period).
    texts = {
        "Agent": ("AgentNotFound", f"Agent {ident} could not be found."),
        "Router": ("RouterNotFound", f"Router {ident} could not be found"),
        "Network": ("NetworkNotFound", f"Network {ident} could not be found."),
        "Subnet": ("SubnetNotFound", f"Subnet {ident} could not be found."),
    }
    type_, message = texts[kind]
    return SimNeutronError(404, type_, message)
