"""Intake: bus events into the liveness model.

The consumer thread calls :meth:`Intake.submit` (keep only what the model or a planner
needs) and :meth:`Intake.connection_changed`; both only put items on an inbox. The
reactor thread applies them (:meth:`Intake.drain`, :meth:`Intake.pump`): heartbeats go to
the model, notifications a planner listens for become pass triggers, connection changes
become the :class:`~rpcdaemon.core.liveness.BusState` (no death is declared while the bus
is down or for a full ``agent_down_time`` after it is back).

Written by the consumer thread and read by executor threads: the latest receive time per
agent, so that a move stops as soon as its source agent speaks again
(:meth:`Intake.agent_is_back`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from rpcdaemon.adapters.codec import heartbeat_from, notification_from
from rpcdaemon.core.busstate import lag_limit
from rpcdaemon.core.detection import DetectorPolicy, ProbeResult
from rpcdaemon.core.detector import Detector
from rpcdaemon.core.events import BusMessage, ConsumerLag, Heartbeat, ResourceNotification
from rpcdaemon.core.ids import AgentId, Host
from rpcdaemon.core.liveness import AgentKey, BusState, LivenessModel
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.rejoin import Rejoin
from rpcdaemon.core.view import ClusterView

logger = logging.getLogger(__name__)

INBOX_CAP = 50_000
"""Items waiting in the inbox beyond which heartbeats of agents the last snapshot did not
list are dropped (a flood of forged hosts during a long snapshot must not grow memory).
Known agents' heartbeats, notifications and connection or lag events are never dropped."""
DROP_LOG_INTERVAL = 60.0
"""Seconds between two log lines about dropped heartbeats."""


@dataclass(frozen=True)
class _Connection:
    connected: bool
    at: float


@dataclass(frozen=True)
class _Wake:
    """No input: the reactor should look (a task finished)."""


@dataclass(frozen=True)
class _Lag:
    lag: ConsumerLag
    at: float


_Item = Heartbeat | ResourceNotification | _Connection | _Lag | _Wake | ProbeResult


class Intake:
    """The model's only writer is the thread that calls ``drain``/``pump`` (the reactor)."""

    def __init__(
        self,
        *,
        policies: Mapping[str, Policy],
        notifications: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        inbox_cap: int = INBOX_CAP,
        detection: DetectorPolicy | None = None,
    ) -> None:
        self._policies = dict(policies)
        self._inbox_cap = inbox_cap
        self.dropped = 0  # heartbeats of unknown agents dropped while the inbox was full
        self._dropped_logged: float | None = None
        self._dropped_since_log = 0
        self.woken = False  # a _Wake was applied since the reactor last looked
        self._notifications = frozenset(notifications)
        self._clock = clock
        self._wall = wall
        self._inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.model = LivenessModel()
        # suspicion never later than today's rule: the longest agent_down_time of the planners
        down_time = max((p.agent_down_time for p in self._policies.values()), default=75.0)
        self.detector = Detector(replace(detection or DetectorPolicy(), agent_down_time=down_time))
        self._detecting = self.detector.policy.enabled
        self._lost_at: float | None = None  # when we last lost the bus (None: never)
        self._rejoin: Rejoin | None = None  # after a reconnect: agents expected back
        self.bus = BusState(connected=False)
        self.heartbeats = 0
        self._triggers: set[str] = set()
        self._seen_lock = threading.Lock()
        self._seen: dict[AgentKey, float] = {}  # known agents only: bounded by Neutron
        self._host_seen: dict[Host, float] = {}  # any known agent of the host, any type
        self._known: frozenset[AgentKey] = frozenset()
        self._keys_by_id: dict[AgentId, AgentKey] = {}
        self._expected: dict[str, tuple[AgentKey, ...]] = {}

    # -- consumer thread ----------------------------------------------------------------

    def submit(self, message: BusMessage) -> Heartbeat | ResourceNotification | None:
        """Keep what the model or a planner needs; returns it (None: not ours)."""
        heartbeat = heartbeat_from(message, received_wall=self._wall())
        if heartbeat is not None:
            return self.accept(heartbeat)
        notification = notification_from(message)
        if notification is not None and notification.event_type in self._notifications:
            self._inbox.put(notification)
            return notification
        return None

    def accept(self, heartbeat: Heartbeat) -> Heartbeat | None:
        """A decoded heartbeat: queued for the model and the detector (None: not ours, or
        dropped because the inbox is over its cap and the agent is unknown to the last
        snapshot). Every type Neutron lists counts: an OVS or metadata agent falling silent
        with its host's L3 and DHCP agents is what tells a node death from a crash."""
        key = AgentKey.of(heartbeat)
        if key in self._known:  # forged or new hosts must not grow these maps
            with self._seen_lock:
                self._seen[key] = heartbeat.received_at
                self._host_seen[key.host] = heartbeat.received_at
        if heartbeat.agent_type not in self._policies:
            if key not in self._known or not self._detecting:
                return None  # no planner's, and no detector (or Neutron does not list it)
            self._inbox.put(heartbeat)
            return heartbeat
        if key not in self._known and self._inbox.qsize() > self._inbox_cap:
            self._drop()
            return None
        self._inbox.put(heartbeat)
        return heartbeat

    def _drop(self) -> None:
        """Consumer thread: an unknown agent's heartbeat, with the inbox full."""
        self.dropped += 1
        self._dropped_since_log += 1
        now = self._clock()
        last = self._dropped_logged
        if last is None or now - last >= DROP_LOG_INTERVAL:
            logger.warning(
                "reactor inbox over %d item(s): dropped %d heartbeat(s) of agents unknown to "
                "the last snapshot%s (%d in all); known agents' heartbeats are kept",
                self._inbox_cap,
                self._dropped_since_log,
                "" if last is None else f" in the last {now - last:.0f}s",
                self.dropped,
            )
            self._dropped_since_log = 0
            self._dropped_logged = now

    def connection_changed(self, connected: bool) -> None:
        self._inbox.put(_Connection(connected, self._clock()))

    def lag_measured(self, lag: ConsumerLag) -> None:
        """The consumer's backlog (its ``on_lag``): a lagging consumer is *our* trouble, so
        no death is declared until it catches up and has listened a full window again."""
        self._inbox.put(_Lag(lag, self._clock()))

    # -- executor threads ---------------------------------------------------------------

    def wake(self) -> None:
        """Wake the reactor now (a task finished: it collects the result at once)."""
        self._inbox.put(_Wake())

    def probed(self, result: ProbeResult) -> None:
        """The prober's thread: a probe's result (the reactor judges it at once)."""
        self._inbox.put(result)

    def host_heard_after(self, host: Host, since: float) -> bool:
        """Any thread: has any agent of ``host`` (any type) been heard after ``since``? Read
        where the consumer writes, ahead of the reactor: a node coming back stops the moves
        off it before the next tick."""
        with self._seen_lock:
            seen = self._host_seen.get(host)
        return seen is not None and seen > since

    def agent_is_back(self, agent_id: AgentId, since: float) -> bool:
        """Has ``agent_id`` sent a heartbeat received after ``since``?"""
        key = self._keys_by_id.get(agent_id)
        if key is None:
            return False
        with self._seen_lock:
            seen = self._seen.get(key)
        return seen is not None and seen > since

    # -- reactor thread -----------------------------------------------------------------

    def know(self, view: ClusterView) -> None:
        """The agents of the latest snapshot: the model judges these (the others are
        unknown records, bounded and silent); their ids serve ``agent_is_back``."""
        self._keys_by_id = {a.id: AgentKey.of(a) for a in view.agents.values()}
        known = frozenset(self._keys_by_id.values())
        self._known = known
        by_type: dict[str, list[AgentKey]] = {}
        for key in sorted(known, key=lambda k: (k.agent_type, k.host)):
            by_type.setdefault(key.agent_type, []).append(key)
        # one tuple per type, the same object every tick: the model skips it in O(1)
        self._expected = {t: tuple(keys) for t, keys in by_type.items()}
        with self._seen_lock:
            for key in [k for k in self._seen if k not in known]:
                del self._seen[key]
            hosts = {k.host for k in known}
            for host in [h for h in self._host_seen if h not in hosts]:
                del self._host_seen[host]
        self.model.set_known(k for k in known if k.agent_type in self._policies)
        self.detector.set_known(known)

    def key_of(self, agent_id: AgentId) -> AgentKey | None:
        """Any thread: the bus key of an agent of the last snapshot."""
        return self._keys_by_id.get(agent_id)

    def known_keys(self) -> frozenset[AgentKey]:
        return frozenset(self._keys_by_id.values())

    def expected(self, agent_type: str) -> tuple[AgentKey, ...]:
        """The last snapshot's agents of ``agent_type``: the same tuple until the next."""
        return self._expected.get(agent_type, ())

    def has_triggers(self) -> bool:
        return bool(self._triggers)

    def take_triggers(self) -> set[str]:
        """Pass triggers raised by the inputs applied since the last call."""
        found, self._triggers = self._triggers, set()
        return found

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for one input, then apply everything waiting."""
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return
        self._apply(item)
        self.pump()

    def pump(self) -> int:
        """Apply every input waiting in the inbox without blocking; returns how many."""
        count = 0
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return count
            self._apply(item)
            count += 1

    def _apply(self, item: _Item) -> None:
        if isinstance(item, Heartbeat):
            self.heartbeats += 1
            key = AgentKey.of(item)
            self.detector.arrival(key, item.received_at)
            if self._rejoin is not None and self._rejoin.heard(key, item.received_at):
                self._rejoined(item.received_at)
            policy = self._policies.get(item.agent_type)
            if policy is None:
                return  # judged by the detector only
            skew = self.model.observe(item, policy=policy)
            if skew is not None:
                (logger.warning if skew.skewed else logger.info)("%s", skew.describe())
        elif isinstance(item, _Wake):
            self.woken = True
        elif isinstance(item, ProbeResult):
            self.detector.probe_done(item)
            self.woken = True
        elif isinstance(item, _Lag):
            self._set_lag(item)
        elif isinstance(item, ResourceNotification):
            logger.debug("notification %s %s", item.event_type, item.resource_id)
            self._triggers.add(f"notification:{item.event_type}")
        else:
            self._set_connection(item)

    def _set_lag(self, item: _Lag) -> None:
        adt = max((p.agent_down_time for p in self._policies.values()), default=75.0)
        limit = lag_limit(adt)
        was = self.bus.lagging
        self.bus = self.bus.with_lag(item.lag, item.at, limit=limit)
        if self.bus.lagging and not was:
            logger.warning(
                "our bus consumer lags: %d message(s), about %.1fs behind (limit %.1fs): no "
                "agent is declared dead until it catches up",
                item.lag.messages,
                item.lag.seconds,
                limit,
            )
        elif was and not self.bus.lagging:
            logger.info(
                "our bus consumer caught up (%.0fs behind): deaths are judged again after a "
                "full agent_down_time (%.0fs) of listening",
                item.lag.seconds,
                adt,
            )

    def check_rejoin(self, now: float) -> None:
        """Reactor tick: end a wait for the agents that lasted its bound (core.rejoin)."""
        rejoin = self._rejoin
        if rejoin is not None and rejoin.expire(now):
            logger.warning(
                "after our reconnect only %s: judging silence again (those still silent may "
                "have died during the outage)",
                rejoin.describe(),
            )
            self._rejoined(now, quorum=False)

    def _rejoined(self, at: float, *, quorum: bool = True) -> None:
        if quorum and self._rejoin is not None:
            logger.info(
                "after our reconnect %s: listening window from now", self._rejoin.describe()
            )
        self._rejoin = None
        self.bus = replace(self.bus, rejoining=False, listening_since=at)

    def _set_connection(self, change: _Connection) -> None:
        adt = max((p.agent_down_time for p in self._policies.values()), default=0.0)
        if change.connected:
            rejoin = None
            if self._lost_at is not None:  # a reconnect: who was reporting before the outage?
                since = self._lost_at - adt
                before = [
                    k
                    for k, r in self.model.snapshot().items()
                    if r.last_seen >= since and k in self._known
                ]
                outage = change.at - self._lost_at
                rejoin = Rejoin(before, since=change.at, outage=outage, agent_down_time=adt)
            self._rejoin = rejoin if rejoin is not None and rejoin.waiting else None
            self.bus = BusState(
                connected=True, listening_since=change.at, rejoining=self._rejoin is not None
            )
            self.detector.reconnected(change.at)
            logger.info(
                "listening on the bus; no agent is declared dead by our clock for %.0fs%s "
                "(until then Neutron's alive flag is the source)",
                adt,
                ""
                if self._rejoin is None
                else f" after half of the {self._rejoin.expected} agents heard before the "
                "outage are back and as long as the outage lasted",
            )
        else:
            self._lost_at = (
                change.at if self._lost_at is None or self.bus.connected else self._lost_at
            )
            self._rejoin = None
            self.bus = BusState(connected=False)
            self.detector.disconnected()
            logger.warning("lost the bus: no agent will be declared dead until we are back")


def notifications_of(planners: Iterable[object]) -> frozenset[str]:
    """The union of the planners' ``notifications`` (event types that call for a pass)."""
    found: set[str] = set()
    for planner in planners:
        found.update(getattr(planner, "notifications", ()))
    return frozenset(found)
