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
startup_grace_per_network * networks``, where ``networks`` is the count of networks the
view (Neutron's database) binds to it, as Neutron's ``agent_starting_up`` counts them. A DHCP
agent busy syncing hundreds of networks after a restart misses reports; this keeps it from
being evacuated. The count the agent reports on the bus is not used: anyone who can publish
could forge a huge one and hold a dead agent's evacuation back for days.

Clock skew: the agent's own ``time`` argument is never used for liveness. It only feeds a
warning when it differs from our wall clock at receipt by more than ``agent_down_time``
(reported once when it starts and once when it recovers).

Agents Neutron does not know: the bus is open to every service, so heartbeats may come
from hosts that are not Neutron agents (forged, or a node not registered yet). The model
keeps the records of agents outside the *known* set (the last snapshot's agents, given by
:meth:`LivenessModel.set_known` and by ``evaluate(expected=...)``) apart, and bounded:

* they produce no transitions and no skew warnings (so no per-host log line);
* each expires after its type's ``agent_down_time`` of silence;
* at most ``unknown_cap + unknown_per_known * len(known)`` are kept (defaults 1024 + 1 per
  known agent); beyond that the least recently heard is dropped;
* :meth:`LivenessModel.take_newcomers` counts the unknown keys first heard since the last
  call, so the reactor can take a fresh snapshot (rate-limited) and see whether Neutron
  knows them: a replacement node is noticed quickly. Once known, the record moves over.

Consumer lag: see :mod:`rpcdaemon.core.busstate` (no death while our own consumer lags).

Why a mutable class: heartbeats arrive at ``agents / report_interval`` per second (about
33/s for 1000 agents); copying an immutable map per heartbeat is O(agents). The model is
owned by ONE thread (the reactor); every method takes ``now``; the records it holds are
frozen, and :meth:`LivenessModel.snapshot` hands out a copy for other threads.
"""

from __future__ import annotations

from collections.abc import Iterable

from rpcdaemon.core.busstate import LAG_LIMIT_FRACTION, BusState, lag_limit
from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.records import (
    AgentKey,
    AgentRecord,
    Judgement,
    SkewChange,
    Transition,
    kept_configurations,
    parse_agent_time,
)
from rpcdaemon.core.strangers import Strangers
from rpcdaemon.core.view import AgentInfo, ClusterView

UNKNOWN_CAP = 1024
"""Records of agents Neutron does not know kept at most, plus ``UNKNOWN_PER_KNOWN`` each."""
UNKNOWN_PER_KNOWN = 1


def deadline(record: AgentRecord, policy: Policy, *, hosted_networks: int = 0) -> float:
    """Monotonic time after which ``record``'s agent is stale by our clock."""
    due = record.last_seen + policy.agent_down_time
    if record.started_at is not None:
        grace = policy.startup_grace_per_network * hosted_networks
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
    if bus.lagging:
        behind = bus.lag.seconds if bus.lag is not None else 0.0
        return Judgement(
            Liveness.UNKNOWN, f"our consumer lags {behind:.0f}s behind: not judging by our clock"
        )
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
    """Per-agent heartbeat records and the last reported state. One owner thread.

    Records of known agents (see :meth:`set_known`) are judged and reported; the others are
    kept apart, bounded and silent (see the module docstring).
    """

    def __init__(
        self, *, unknown_cap: int = UNKNOWN_CAP, unknown_per_known: int = UNKNOWN_PER_KNOWN
    ) -> None:
        self._records: dict[AgentKey, AgentRecord] = {}  # known agents
        self._unknown: Strangers[AgentKey, AgentRecord] = Strangers()
        self._known: set[AgentKey] = set()
        self._reported: dict[AgentKey, Liveness] = {}
        self._skewed: set[AgentKey] = set()
        self._down_time = 0.0  # the longest agent_down_time seen: how long a demoted record lives
        self._unknown_cap = unknown_cap
        self._unknown_per_known = unknown_per_known

    def __len__(self) -> int:
        return len(self._records) + len(self._unknown)

    @property
    def unknown_count(self) -> int:
        """Records kept for agents Neutron does not know (for a metric)."""
        return len(self._unknown)

    @property
    def unknown_limit(self) -> int:
        """At most this many unknown records are kept."""
        return self._unknown_cap + self._unknown_per_known * len(self._known)

    def get(self, key: AgentKey) -> AgentRecord | None:
        record = self._records.get(key)
        if record is not None:
            return record
        return self._unknown.get(key)

    def snapshot(self) -> dict[AgentKey, AgentRecord]:
        """A copy of the records (frozen values), safe to hand to another thread."""
        out = dict(self._unknown.items())
        out.update(self._records)
        return out

    def take_newcomers(self) -> int:
        """Unknown agent keys first heard since the last call (then reset to 0): when
        non-zero, a fresh snapshot may show that Neutron knows them (a replacement node).
        A key dropped (expired or over the cap) and heard again counts again."""
        return self._unknown.take_arrivals()

    def set_known(self, keys: Iterable[AgentKey]) -> None:
        """The agents Neutron knows (the last snapshot's). Their records are judged and
        reported; records of agents no longer known become unknown records (bounded,
        silent, expiring)."""
        known = set(keys)
        for key in self._known - known:
            record = self._records.pop(key, None)
            if record is not None:
                self._unknown.put(key, record, expires_at=record.last_seen + self._down_time)
                self._unknown.take_arrivals()  # not a newcomer: Neutron knew it until now
            self._reported.pop(key, None)
            self._skewed.discard(key)
        self._known = known
        self._promote(known)
        self._unknown.trim(self.unknown_limit)

    def _promote(self, keys: Iterable[AgentKey]) -> None:
        for key in keys:
            record = self._unknown.pop(key)
            if record is not None:
                self._records[key] = record

    def observe(self, heartbeat: Heartbeat, *, policy: Policy) -> SkewChange | None:
        """Record a heartbeat. Returns a skew change for this agent, if any (else None;
        always None for an agent Neutron does not know).

        A heartbeat received earlier than the one already recorded (reordering after a
        redelivery) does not move ``last_seen`` back.
        """
        key = AgentKey.of(heartbeat)
        known = key in self._known
        previous = self.get(key)
        agent_epoch = parse_agent_time(heartbeat.agent_time)
        skew = None if agent_epoch is None else heartbeat.received_wall - agent_epoch
        if previous is not None and heartbeat.received_at < previous.last_seen:
            return None
        started_at = heartbeat.received_at if heartbeat.start_flag else None
        if started_at is None and previous is not None:
            started_at = previous.started_at
        record = AgentRecord(
            key=key,
            last_seen=heartbeat.received_at,
            started_at=started_at,
            availability_zone=heartbeat.availability_zone,
            configurations=kept_configurations(heartbeat.configurations),
            agent_time=heartbeat.agent_time,
            skew=skew,
        )
        self._down_time = max(self._down_time, policy.agent_down_time)
        if known:
            self._records[key] = record
            return self._skew_change(key, skew, policy.agent_down_time)
        self._unknown.expire(heartbeat.received_at)
        self._unknown.put(key, record, expires_at=heartbeat.received_at + policy.agent_down_time)
        self._unknown.trim(self.unknown_limit)
        return None

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
        self._unknown.pop(key)
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

        Judges every known agent heard on the bus, plus ``expected`` (e.g. the view's
        agents, so that one never heard of becomes DEAD after the window); ``expected``
        keys count as known from now on. ``agent_type`` restricts the pass to one type
        (each plugin has its own ``agent_down_time``). The first judgement of an agent is
        reported as a change from UNKNOWN. Unknown agents are never reported; their
        records expire here too.
        """
        self._unknown.expire(now)
        expected = [k for k in expected if agent_type is None or k.agent_type == agent_type]
        fresh = [k for k in expected if k not in self._known]
        if fresh:
            self._known.update(fresh)
            self._promote(fresh)
        keys = {k for k in self._records if agent_type is None or k.agent_type == agent_type}
        keys.update(expected)
        changes: list[Transition] = []
        for key in sorted(keys):
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
                self.get(AgentKey.of(agent)),
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
            record = self.get(AgentKey.of(agent))
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
            record = self.get(AgentKey.of(agent))
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


__all__ = [
    "LAG_LIMIT_FRACTION",
    "AgentKey",
    "AgentRecord",
    "BusState",
    "Judgement",
    "LivenessModel",
    "SkewChange",
    "Transition",
    "combine",
    "deadline",
    "hosted_network_counts",
    "judge",
    "lag_limit",
    "parse_agent_time",
]
