"""What a plugin asks the bus adapter for: a private queue bound to (exchange, routing key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Binding:
    """Bind our private queue to ``exchange`` with ``routing_key``."""

    exchange: str
    routing_key: str
