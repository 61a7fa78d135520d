"""Agent liveness, judged by OUR monotonic receive clock.

An agent is identified on the bus by ``(agent_type, host)``: heartbeats carry no Neutron
agent id. :class:`AgentKey` is that pair; the view's :class:`~rpcdaemon.core.view.AgentInfo`
has both, so :meth:`LivenessModel.verdicts` joins the two.

Two levels of judgement:

* **Heartbeat clock** (:meth:`LivenessModel.evaluate`): ALIVE while a heartbeat arrived
  within ``agent_down_time`` (plus start-up grace), DEAD once it did not *and* we have been
  connected and listening for a full ``agent_down_time``, UNKNOWN otherwise (never heard of,
  bus disconnected, or still inside the listening window after a (re)connect). It reports
  each change once, for the up/down log lines.
* **Verdict** (:meth:`LivenessModel.verdicts`): what planners act on, one per agent in a
  ClusterView. It combines the heartbeat clock with the API's ``alive`` flag:

  ======================  ==================  ===========================================
  heartbeat clock         API ``alive``       verdict
  ======================  ==================  ===========================================
  ALIVE (fresh)           any                 ALIVE (heartbeats are reaching us)
  UNKNOWN (window/bus)    true                ALIVE (the API is the source meanwhile)
  UNKNOWN (window/bus)    false               UNKNOWN: never DEAD in the window
  DEAD                    false               DEAD
  DEAD                    true                UNKNOWN if ``confirm_with_api``, else DEAD
  ======================  ==================  ===========================================

  Why the API's ``alive: false`` alone never makes an agent DEAD, even while connected:
  the window exists because after a broker outage or partition the API says ``false`` for
  exactly the agents whose heartbeats were lost on the way - the most common false "dead"
  (neutron bug 1461714). Waiting one ``agent_down_time`` costs little: Neutron itself waits
  37-74 s after start before its first check.

Start-up grace (Neutron's ``agent_starting_up``): an agent whose last heartbeat carried
``start_flag`` is not judged dead before ``started_at + agent_down_time +
startup_grace_per_network * networks``, where ``networks`` is the larger of its reported
``configurations["networks"]`` and the bindings the view shows. A DHCP agent busy syncing
hundreds of networks after a restart misses reports; this keeps it from being evacuated.

Clock skew: the agent's own ``time`` argument is never used for liveness. It only feeds a
warning when it differs from our wall clock at receipt by more than ``agent_down_time``
(reported once when it starts and once when it recovers).

Why a mutable class: heartbeats arrive at ``agents / report_interval`` per second (about
33/s for 1000 agents); copying an immutable map per heartbeat is O(agents). The model is
owned by ONE thread (the reactor); every method takes ``now``; the records it holds are
frozen, and :meth:`LivenessModel.snapshot` hands out a copy for other threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import AgentId, AgentType, Host, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import AgentInfo, ClusterView


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


@dataclass(frozen=True)
class BusState:
    """What the reactor knows about the consumer: connected, and since when (monotonic)."""

    connected: bool
    listening_since: float | None = None  # monotonic time of the last (re)connect

    def listened_for(self, now: float) -> float:
        """Seconds we have been listening without interruption (0 when disconnected)."""
        if not self.connected or self.listening_since is None:
            return 0.0
        return max(0.0, now - self.listening_since)


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
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def parse_agent_time(text: str | None) -> float | None:
    """The agent's ``time`` (ISO 8601, UTC, usually without offset) as a POSIX timestamp."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def deadline(record: AgentRecord, policy: Policy, *, hosted_networks: int = 0) -> float:
    """Monotonic time after which ``record``'s agent is stale by our clock."""
    due = record.last_seen + policy.agent_down_time
    if record.started_at is not None:
        networks = max(hosted_networks, record.reported_networks)
        grace = policy.startup_grace_per_network * networks
        due = max(due, record.started_at + policy.agent_down_time + grace)
    return due


def judge(
    record: AgentRecord | None,
    *,
    now: float,
    policy: Policy,
    bus: BusState,
    hosted_networks: int = 0,
) -> Judgement:
    """The heartbeat-clock judgement of one agent (``record`` None: never heard of)."""
    if record is not None and now <= deadline(record, policy, hosted_networks=hosted_networks):
        return Judgement(Liveness.ALIVE, f"heartbeat {now - record.last_seen:.1f}s ago")
    if not bus.connected:
        return Judgement(Liveness.UNKNOWN, "bus disconnected: not judging by our clock")
    listened = bus.listened_for(now)
    if bus.listening_since is None or listened < policy.agent_down_time:
        return Judgement(
            Liveness.UNKNOWN,
            f"listening for {listened:.0f}s of {policy.agent_down_time:.0f}s since (re)connect",
        )
    if record is None:
        return Judgement(
            Liveness.DEAD, f"no heartbeat in the {listened:.0f}s we have been listening"
        )
    return Judgement(
        Liveness.DEAD,
        f"no heartbeat for {now - record.last_seen:.1f}s "
        f"(agent_down_time {policy.agent_down_time:.0f}s)",
    )


def combine(heartbeat: Judgement, agent: AgentInfo, policy: Policy) -> Judgement:
    """The verdict from the heartbeat clock and the API's ``alive`` (see the module table)."""
    api = "alive" if agent.alive else "not alive"
    if heartbeat.liveness is Liveness.ALIVE:
        return heartbeat
    if heartbeat.liveness is Liveness.UNKNOWN:
        if agent.alive:
            return Judgement(Liveness.ALIVE, f"API says alive; {heartbeat.reason}")
        return Judgement(Liveness.UNKNOWN, f"API says not alive; {heartbeat.reason}")
    if agent.alive and policy.confirm_with_api:
        return Judgement(Liveness.UNKNOWN, f"{heartbeat.reason}, but the API says alive")
    return Judgement(Liveness.DEAD, f"{heartbeat.reason}; API says {api}")


def hosted_network_counts(view: ClusterView) -> dict[AgentId, int]:
    """Networks bound to each agent in ``view``, in one pass over the bindings."""
    counts: dict[AgentId, int] = {}
    for agents in view.network_bindings.values():
        for agent_id in agents:
            counts[agent_id] = counts.get(agent_id, 0) + 1
    return counts


class LivenessModel:
    """Per-agent heartbeat records and the last reported state. One owner thread."""

    def __init__(self) -> None:
        self._records: dict[AgentKey, AgentRecord] = {}
        self._reported: dict[AgentKey, Liveness] = {}
        self._skewed: set[AgentKey] = set()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: AgentKey) -> AgentRecord | None:
        return self._records.get(key)

    def snapshot(self) -> dict[AgentKey, AgentRecord]:
        """A copy of the records (frozen values), safe to hand to another thread."""
        return dict(self._records)

    def observe(self, heartbeat: Heartbeat, *, policy: Policy) -> SkewChange | None:
        """Record a heartbeat. Returns a skew change for this agent, if any (else None).

        A heartbeat received earlier than the one already recorded (reordering after a
        redelivery) does not move ``last_seen`` back.
        """
        key = AgentKey.of(heartbeat)
        previous = self._records.get(key)
        agent_epoch = parse_agent_time(heartbeat.agent_time)
        skew = None if agent_epoch is None else heartbeat.received_wall - agent_epoch
        if previous is not None and heartbeat.received_at < previous.last_seen:
            return None
        started_at = heartbeat.received_at if heartbeat.start_flag else None
        if started_at is None and previous is not None:
            started_at = previous.started_at
        self._records[key] = AgentRecord(
            key=key,
            last_seen=heartbeat.received_at,
            started_at=started_at,
            availability_zone=heartbeat.availability_zone,
            configurations=dict(heartbeat.configurations),
            agent_time=heartbeat.agent_time,
            skew=skew,
        )
        return self._skew_change(key, skew, policy.agent_down_time)

    def _skew_change(self, key: AgentKey, skew: float | None, limit: float) -> SkewChange | None:
        if skew is None:
            return None
        if abs(skew) > limit and key not in self._skewed:
            self._skewed.add(key)
            return SkewChange(key, True, skew, limit)
        if abs(skew) <= limit and key in self._skewed:
            self._skewed.discard(key)
            return SkewChange(key, False, skew, limit)
        return None

    def forget(self, key: AgentKey) -> None:
        """Drop an agent (deleted from Neutron). Its next heartbeat starts afresh."""
        self._records.pop(key, None)
        self._reported.pop(key, None)
        self._skewed.discard(key)

    def evaluate(
        self,
        now: float,
        policy: Policy,
        bus: BusState,
        *,
        agent_type: str | None = None,
        expected: Iterable[AgentKey] = (),
    ) -> list[Transition]:
        """Heartbeat-clock changes since the last call, each reported once, sorted by key.

        Judges every agent heard on the bus, plus ``expected`` (e.g. the view's agents, so
        that one never heard of becomes DEAD after the window). ``agent_type`` restricts
        the pass to one type (each plugin has its own ``agent_down_time``). The first
        judgement of an agent is reported as a change from UNKNOWN.
        """
        keys = set(self._records)
        keys.update(expected)
        changes: list[Transition] = []
        for key in sorted(keys):
            if agent_type is not None and key.agent_type != agent_type:
                continue
            judgement = judge(self._records.get(key), now=now, policy=policy, bus=bus)
            old = self._reported.get(key, Liveness.UNKNOWN)
            if judgement.liveness is not old:
                changes.append(Transition(key, old, judgement.liveness, judgement.reason))
            self._reported[key] = judgement.liveness
        return changes

    def judgements(
        self, view: ClusterView, now: float, policy: Policy, bus: BusState
    ) -> dict[AgentId, Judgement]:
        """:meth:`verdicts` with the reason for each (for plan reasons and logs)."""
        hosted = hosted_network_counts(view)
        result: dict[AgentId, Judgement] = {}
        for agent in view.agents.values():
            heartbeat = judge(
                self._records.get(AgentKey.of(agent)),
                now=now,
                policy=policy,
                bus=bus,
                hosted_networks=hosted.get(agent.id, 0),
            )
            result[agent.id] = combine(heartbeat, agent, policy)
        return result

    def overdue(
        self, view: ClusterView, now: float, policy: Policy, bus: BusState, *, agent_type: str
    ) -> frozenset[AgentId]:
        """Agents of ``agent_type`` in ``view`` still alive by our clock but more than half
        way from their last heartbeat to their deadline, while we can judge (connected, a
        full window listened). Agents that stop together are declared dead up to one
        ``report_interval`` apart (Neutron wants it <= agent_down_time / 2): at the first
        declaration, the others are in this set, and the circuit breaker counts them."""
        if not bus.connected or bus.listened_for(now) < policy.agent_down_time:
            return frozenset()
        hosted = hosted_network_counts(view)
        found: set[AgentId] = set()
        for agent in view.agents_of_type(agent_type):
            record = self._records.get(AgentKey.of(agent))
            if record is None:
                continue
            due = deadline(record, policy, hosted_networks=hosted.get(agent.id, 0))
            if due - policy.agent_down_time / 2 < now <= due:
                found.add(agent.id)
        return frozenset(found)

    def reported_counts(self, view: ClusterView, *, since: float) -> dict[AgentId, int]:
        """What agents in ``view`` say they host (L3: routers, DHCP: networks), from
        heartbeats received after ``since``: a way to notice bindings changed behind our
        back without listing them (see ``core.view.what_changed``)."""
        counts: dict[AgentId, int] = {}
        for agent in view.agents.values():
            record = self._records.get(AgentKey.of(agent))
            if record is None or record.last_seen <= since:
                continue
            if agent.agent_type == AgentType.L3.value and "routers" in record.configurations:
                counts[agent.id] = record.reported_routers
            elif agent.agent_type == AgentType.DHCP.value and "networks" in record.configurations:
                counts[agent.id] = record.reported_networks
        return counts

    def verdicts(
        self, view: ClusterView, now: float, policy: Policy, bus: BusState
    ) -> dict[AgentId, Liveness]:
        """One verdict per agent in ``view``: what the planners act on. Does not mutate."""
        return {
            agent_id: j.liveness for agent_id, j in self.judgements(view, now, policy, bus).items()
        }
