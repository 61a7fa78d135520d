"""What a private queue of ours is: its spec and its name (the AMQP consumer declares it)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rpcdaemon.core.binding import Binding
from rpcdaemon.core.events import BusMessage


@dataclass(frozen=True)
class QueueSpec:
    """One private queue: its name, what it is bound to, and who gets its messages."""

    name: str
    bindings: tuple[Binding, ...]
    expires: float  # seconds -> x-expires
    handler: Callable[[BusMessage], None]  # runs on the consumer thread; must be fast
    exclusive: bool = False  # exclusive instead of durable + x-expires


def private_queue_name(purpose: str) -> str:
    """``rpcdaemon-<purpose>-<hostname>-<uuid8>``: ours, recognisable in ``list_queues``."""
    host = socket.gethostname().split(".", 1)[0] or "localhost"
    return f"rpcdaemon-{purpose}-{host}-{uuid.uuid4().hex[:8]}"
