"""The values the liveness model is made of: how the bus names an agent, what it told us
about one, and the changes and judgements the model reports. Pure and frozen."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import Host, Liveness
from rpcdaemon.core.view import AgentInfo


@dataclass(frozen=True, order=True)
class AgentKey:
    """How the bus names an agent: Neutron's ``agent_type`` string and the host."""

    agent_type: str
    host: Host

    @classmethod
    def of(cls, item: Heartbeat | AgentInfo) -> AgentKey:
        return cls(item.agent_type, item.host)

    def __str__(self) -> str:
        return f"{self.agent_type}@{self.host}"


MAX_KEPT_CONFIGURATIONS = 64
"""Scalar ``configurations`` entries a record keeps (only counts are read; bounded memory)."""


@dataclass(frozen=True)
class AgentRecord:
    """What the bus told us about one agent. Times are our monotonic receive clock."""

    key: AgentKey
    last_seen: float
    started_at: float | None  # receive time of the last heartbeat with start_flag
    availability_zone: str | None
    configurations: Mapping[str, Any] = field(default_factory=dict)
    agent_time: str | None = None  # the agent's own clock, as sent
    skew: float | None = None  # our wall clock minus the agent's, seconds (None: unreadable)

    @property
    def reported_networks(self) -> int:
        return _count(self.configurations.get("networks"))

    @property
    def reported_routers(self) -> int:
        return _count(self.configurations.get("routers"))


@dataclass(frozen=True)
class Judgement:
    """One agent's liveness with a one-line reason (for logs and plan reasons)."""

    liveness: Liveness
    reason: str


@dataclass(frozen=True)
class Transition:
    """A change of the heartbeat-clock liveness of one agent, reported once."""

    key: AgentKey
    old: Liveness
    new: Liveness
    reason: str

    def describe(self) -> str:
        return f"{self.key}: {self.old.value} -> {self.new.value} ({self.reason})"


@dataclass(frozen=True)
class SkewChange:
    """The agent's clock started (``skewed``) or stopped differing from ours by > ``limit``."""

    key: AgentKey
    skewed: bool
    skew: float  # seconds; positive: the agent's clock is behind ours
    limit: float

    def describe(self) -> str:
        if self.skewed:
            return (
                f"{self.key}: clock differs from ours by {self.skew:+.1f}s "
                f"(more than agent_down_time {self.limit:.0f}s)"
            )
        return f"{self.key}: clock back within {self.limit:.0f}s of ours ({self.skew:+.1f}s)"


def _count(value: Any) -> int:
    """A reported resource count; anything but a finite non-negative number counts 0 (the
    codec already refuses such heartbeats: this is the second line)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(0, int(value))


def kept_configurations(configurations: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of ``configurations`` (bounded): what a record needs to keep."""
    kept: dict[str, Any] = {}
    for key, value in configurations.items():
        if len(kept) >= MAX_KEPT_CONFIGURATIONS:
            break
        if isinstance(value, bool | int | float | None) or (
            isinstance(value, str) and len(value) <= 255
        ):
            kept[key] = value
    return kept


def parse_agent_time(text: str | None) -> float | None:
    """The agent's ``time`` (ISO 8601, UTC, usually without offset) as a POSIX timestamp."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None
