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
``configurations["networks"]`` and the bindings the view shows (Neutron's
``agent_starting_up`` counts the latter). A DHCP agent busy syncing hundreds of networks after
a restart misses reports; this keeps it from being evacuated.

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

from collections.abc import Collection, Iterable, Mapping

from rpcdaemon.core.busstate import LAG_LIMIT_FRACTION, BusState, lag_limit
from rpcdaemon.core.deadlines import TypeBook
from rpcdaemon.core.detection import NodeDeath
from rpcdaemon.core.events import Heartbeat
from rpcdaemon.core.ids import AgentId, AgentType, Host, Liveness
from rpcdaemon.core.judging import (
    combine,
    deadline,
    hosted_network_counts,
    judge,
    silent_liveness,
)
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.records import (
    AgentKey,
    AgentRecord,
    ConfigurationPool,
    Judgement,
    SkewChange,
    Transition,
    interned,
    kept_configurations,
    parse_agent_time,
)
from rpcdaemon.core.strangers import Strangers
from rpcdaemon.core.view import ClusterView

UNKNOWN_CAP = 1024
"""Records of agents Neutron does not know kept at most, plus ``UNKNOWN_PER_KNOWN`` each."""
UNKNOWN_PER_KNOWN = 1


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
        # known keys, each mapped to itself: records share the view's key (and host string)
        self._known: dict[AgentKey, AgentKey] = {}
        self._reported: dict[AgentKey, Liveness] = {}
        self._skewed: set[AgentKey] = set()
        self._down_time = 0.0  # the longest agent_down_time seen: how long a demoted record lives
        self._unknown_cap = unknown_cap
        self._unknown_per_known = unknown_per_known
        self._books: dict[str, TypeBook[AgentKey]] = {}  # per agent type: see core.deadlines
        self._hosted: tuple[ClusterView, dict[AgentId, int]] | None = None
        self._configs = ConfigurationPool()
        self.judged_total = 0
        """Agents judged by :meth:`evaluate` since start: a tick costs what changed."""

    def _book(self, agent_type: str) -> TypeBook[AgentKey]:
        book = self._books.get(agent_type)
        if book is None:
            book = self._books[agent_type] = TypeBook()
        return book

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
        known = {k: self._known.get(k, k) for k in keys}
        for key in self._known.keys() - known.keys():
            record = self._records.pop(key, None)
            if record is not None:
                self._unknown.put(key, record, expires_at=record.last_seen + self._down_time)
                self._unknown.take_arrivals()  # not a newcomer: Neutron knew it until now
            self._reported.pop(key, None)
            self._skewed.discard(key)
            self._book(key.agent_type).drop(key)
        fresh = known.keys() - self._known.keys()
        self._known = known
        self._promote(fresh)
        self._unknown.trim(self.unknown_limit)

    def _promote(self, keys: Iterable[AgentKey]) -> None:
        for key in keys:
            record = self._unknown.pop(key)
            if record is not None:
                self._records[key] = record
                self._book(key.agent_type).judge_too(key)

    def observe(self, heartbeat: Heartbeat, *, policy: Policy) -> SkewChange | None:
        """Record a heartbeat. Returns a skew change for this agent, if any (else None;
        always None for an agent Neutron does not know).

        A heartbeat received earlier than the one already recorded (reordering after a
        redelivery) does not move ``last_seen`` back.
        """
        key = AgentKey.of(heartbeat)
        canonical = self._known.get(key)
        known = canonical is not None
        previous = self.get(key)
        if previous is not None:
            key = previous.key  # one key object (and host string) per agent, not per heartbeat
        elif canonical is not None:
            key = canonical
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
            availability_zone=interned(heartbeat.availability_zone),
            configurations=self._configs.shared(kept_configurations(heartbeat.configurations)),
            skew=skew,
        )
        self._down_time = max(self._down_time, policy.agent_down_time)
        if known:
            self._records[key] = record
            book = self._book(key.agent_type)
            book.dirty.add(key)
            book.judged.add(key)
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
        self._book(key.agent_type).drop(key)

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

        Cost: what changed since the last call (heartbeats, deadlines passed, a change of
        bus state), plus one set lookup per ``expected`` key; see :mod:`rpcdaemon.core.deadlines`.
        """
        self._unknown.expire(now)
        if not isinstance(expected, Collection):
            expected = list(expected)  # read twice below
        fresh: list[AgentKey] = []
        if agent_type is not None:
            book = self._book(agent_type)
            if expected is book.absorbed or book.judged.issuperset(expected):
                pass  # the same immutable collection as last time (O(1)) or the same keys
            else:
                fresh = [k for k in expected if k not in book.judged and k.agent_type == agent_type]
            if isinstance(expected, tuple | frozenset):
                book.absorbed = expected
        else:
            fresh = [k for k in expected if k not in self._book(k.agent_type).judged]
        for key in fresh:
            if key not in self._known:
                self._known[key] = key
                self._promote((key,))
            self._book(key.agent_type).judge_too(key)
        types = [agent_type] if agent_type is not None else sorted(self._books)
        silent = silent_liveness(now, policy, bus)
        changes: list[Transition] = []
        for one_type in types:
            book = self._book(one_type)
            for key in book.to_judge(now, policy.agent_down_time, silent):
                if key not in book.judged:
                    continue
                self.judged_total += 1
                record = self._records.get(key)
                due = None if record is None else deadline(record, policy)
                if due is not None and now <= due:
                    liveness = Liveness.ALIVE
                    book.due.push(key, due)
                    book.not_alive.discard(key)
                else:
                    liveness = silent
                    book.not_alive.add(key)
                old = self._reported.get(key, Liveness.UNKNOWN)
                if liveness is not old:
                    reason = judge(record, now=now, policy=policy, bus=bus).reason
                    changes.append(Transition(key, old, liveness, reason))
                self._reported[key] = liveness
        changes.sort(key=lambda change: change.key)
        return changes

    def judgements(
        self,
        view: ClusterView,
        now: float,
        policy: Policy,
        bus: BusState,
        nodes: Mapping[Host, NodeDeath] | None = None,
    ) -> dict[AgentId, Judgement]:
        """:meth:`verdicts` with the reason for each (for plan reasons and logs)."""
        hosted = self._hosted_counts(view)
        result: dict[AgentId, Judgement] = {}
        for agent in view.agents.values():
            death = None if not nodes or not bus.connected or bus.lagging else nodes.get(agent.host)
            if death is not None:  # a confirmed node death: the API cannot know yet
                result[agent.id] = Judgement(Liveness.DEAD, death.reason)
                continue
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
        hosted = self._hosted_counts(view)
        found: set[AgentId] = set()
        for agent in view.agents_of_type(agent_type):
            record = self.get(AgentKey.of(agent))
            if record is None:
                continue
            due = deadline(record, policy, hosted_networks=hosted.get(agent.id, 0))
            if due - policy.agent_down_time / 2 < now <= due:
                found.add(agent.id)
        return frozenset(found)

    def _hosted_counts(self, view: ClusterView) -> dict[AgentId, int]:
        """:func:`hosted_network_counts`, computed once per view (a pass asks several times)."""
        if self._hosted is None or self._hosted[0] is not view:
            self._hosted = (view, hosted_network_counts(view))
        return self._hosted[1]

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
        self,
        view: ClusterView,
        now: float,
        policy: Policy,
        bus: BusState,
        nodes: Mapping[Host, NodeDeath] | None = None,
    ) -> dict[AgentId, Liveness]:
        """One verdict per agent in ``view``: what the planners act on. Does not mutate.
        ``nodes``: the detector's node deaths (:mod:`rpcdaemon.core.detector`): every agent
        of such a host is DEAD, whatever its heartbeat clock and the API say."""
        judged = self.judgements(view, now, policy, bus, nodes)
        return {agent_id: j.liveness for agent_id, j in judged.items()}


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
    "silent_liveness",
]
