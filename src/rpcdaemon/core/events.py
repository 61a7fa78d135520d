"""Decoded bus messages: the only shapes the AMQP consumer hands to the rest of the daemon.

The codec (``rpcdaemon.adapters.codec``) turns raw AMQP deliveries into these; nothing
here knows about kombu.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpcdaemon.core.ids import Host


class MessageKind(str, enum.Enum):
    RPC_CALL = "rpc_call"  # has _msg_id/_reply_q: we must never reply
    RPC_CAST = "rpc_cast"
    NOTIFICATION = "notification"
    REPLY = "reply"  # an RPC reply ({"result", "failure", "ending"}); seen only by Dump


@dataclass(frozen=True)
class BusMessage:
    """One decoded AMQP delivery.

    ``body`` is the inner message (the ``oslo.message`` JSON for envelope 2.0, the body
    itself for 1.0) with the ``_context_*`` keys moved into ``context``.
    """

    kind: MessageKind
    exchange: str
    routing_key: str
    envelope_version: str  # "2.0" or "1.0"
    received_at: float  # our monotonic receive time
    method: str | None = None  # RPC method
    args: Mapping[str, Any] = field(default_factory=dict)
    event_type: str | None = None  # notification event_type
    payload: Any = None  # notification payload
    publisher_id: str | None = None
    priority: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)  # everything else, as decoded
    properties: Mapping[str, Any] = field(default_factory=dict)  # AMQP properties


@dataclass(frozen=True)
class Heartbeat:
    """An agent's ``report_state`` as we received it."""

    host: Host
    agent_type: str  # Neutron's agent_type string (see core.ids.AgentType)
    binary: str
    topic: str
    availability_zone: str | None
    configurations: Mapping[str, Any]
    start_flag: bool
    agent_time: str | None  # args.time, the agent's clock: only for the skew warning
    received_at: float  # our monotonic receive time: the only clock liveness trusts
    received_wall: float  # our wall clock at receipt (time.time()), for the skew warning


@dataclass(frozen=True)
class ResourceNotification:
    """A Neutron notification about a resource (network.create.end, subnet.update.end, ...)."""

    event_type: str
    resource: str  # "network", "subnet", "router", ...
    resource_id: str | None
    payload: Mapping[str, Any]
    received_at: float


@dataclass(frozen=True)
class ConsumerLag:
    """How far our bus consumer is behind, as the AMQP adapter measured it.

    ``messages``: ready messages waiting in our queue(s) (a passive declare's
    ``message_count``). ``seconds``: the estimated age of the oldest of them: the backlog
    divided by the rate we consumed at since the last measurement, and never more than the
    time since the queue was last seen empty (0 when it is empty).
    """

    messages: int
    seconds: float


Event = Heartbeat | ResourceNotification
