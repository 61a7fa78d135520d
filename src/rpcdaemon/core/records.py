"""The values the liveness model is made of: how the bus names an agent, what it told us
about one, and the changes and judgements the model reports. Pure and frozen."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import Host, Liveness
from rpcdaemon.core.view import AgentInfo


class AgentKey(NamedTuple):
    """How the bus names an agent: Neutron's ``agent_type`` string and the host.

    A named tuple rather than a frozen dataclass on purpose: keys are hashed and compared
    on every heartbeat and tick (10,000 agents), and a tuple does both in C (a dataclass
    key cost 31 % of a tick in ``__lt__`` alone), in 56 bytes instead of ~150."""

    agent_type: str
    host: Host

    @classmethod
    def of(cls, item: Heartbeat | AgentInfo) -> AgentKey:
        return cls(sys.intern(item.agent_type), item.host)

    def __str__(self) -> str:
        return f"{self.agent_type}@{self.host}"


MAX_KEPT_CONFIGURATIONS = 64
"""Bound on the ``configurations`` entries a record keeps."""
KEPT_CONFIGURATIONS = ("routers", "networks")
"""The ``configurations`` entries a record keeps: the counts :meth:`AgentRecord.reported_routers`
and ``reported_networks`` read. Nothing else is read, so nothing else is held (10,000 records
with a copied dict of a dozen entries each took 10 MB)."""
_NOTHING_KEPT: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """What the bus told us about one agent. Times are our monotonic receive clock."""

    key: AgentKey
    last_seen: float
    started_at: float | None  # receive time of the last heartbeat with start_flag
    availability_zone: str | None
    configurations: Mapping[str, Any] = field(default_factory=dict)  # the counts only
    skew: float | None = None  # our wall clock minus the agent's, seconds (None: unreadable)

    @property
    def reported_networks(self) -> int:
        return reported_count(self.configurations.get("networks"))

    @property
    def reported_routers(self) -> int:
        return reported_count(self.configurations.get("routers"))


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


def reported_count(value: Any) -> int:
    """A reported resource count; anything but a finite non-negative number counts 0 (the
    codec already refuses such heartbeats: this is the second line)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(0, int(value))


def kept_configurations(configurations: Mapping[str, Any]) -> Mapping[str, Any]:
    """The scalar entries of ``configurations`` a record reads (:data:`KEPT_CONFIGURATIONS`),
    with interned keys; one shared empty mapping when there are none."""
    kept: dict[str, Any] | None = None
    for key in KEPT_CONFIGURATIONS:
        value = configurations.get(key)
        if value is not None and isinstance(value, bool | int | float):
            if kept is None:
                kept = {}
            kept[key] = value
    return _NOTHING_KEPT if kept is None else kept


SHARED_CONFIGURATIONS = 4096
"""Distinct kept ``configurations`` mappings a :class:`ConfigurationPool` holds at most."""


class ConfigurationPool:
    """One mapping object per distinct kept ``configurations`` (agents report the same few
    counts), not one per record: bounded, cleared when full. One owner thread."""

    def __init__(self, limit: int = SHARED_CONFIGURATIONS) -> None:
        self._pool: dict[tuple[tuple[str, type, Any], ...], Mapping[str, Any]] = {}
        self._limit = limit

    def shared(self, kept: Mapping[str, Any]) -> Mapping[str, Any]:
        if not kept:
            return kept
        items = tuple((k, type(v), v) for k, v in kept.items())  # True == 1, but not here
        found = self._pool.get(items)
        if found is None:
            if len(self._pool) >= self._limit:
                self._pool.clear()
            found = self._pool[items] = kept
        return found


def interned(text: str | None) -> str | None:
    """``text`` interned (an AZ name: a handful of values, one string each)."""
    return None if text is None else sys.intern(text)


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
