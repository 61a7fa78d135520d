"""Classify before acting: tell a dead *node* from a crashed agent, a slow node or our trouble.

Today's rule (:mod:`rpcdaemon.core.liveness`) waits a full ``agent_down_time`` and the API's
``alive: false`` for every agent. That is right for a crashed agent *process*: its routers and
dnsmasq go on serving, systemd restarts it, and moving its routers would cause the outage we
exist to prevent. A *node* death (power, kernel, uplink) is different: every agent of the host
falls silent at once and nothing on it consumes its RPC queues any more. This detector finds
those, in seconds, from three kinds of evidence:

1. **Rhythm** (:mod:`rpcdaemon.core.rhythm`): every agent's arrivals on our receive clock, the
   Open vSwitch and metadata agents included. An agent is *suspect* once it is silent past its
   learned rhythm (never later than ``agent_down_time``).
2. **Correlation**: a host is SILENT when every agent it had reporting (at least
   ``min_agents``, each with a learned rhythm) is suspect. One agent silent while its
   neighbours report is a crashed process: the host stays QUIET and today's rule applies.
3. **Confirmation**: a SILENT host's agent queues (``<topic>.<host>``) are probed, together
   with the same queues of a healthy host (the *control*). A live process answers at once, even
   a slow one (SLOW: today's rule applies, for the rest of this silence). Queues nobody
   consumes any more mean the processes exited and a live kernel closed their connections (a
   crash, or systemd restarting every agent of the host): STOPPED, today's rule. No answer
   while the broker still counts the consumers (a powered-off, frozen or cut-off host keeps
   its connections until the broker's heartbeat timeout) and the control answered is a node
   death (DEAD): its agents are dead now, whatever the API says.

**Disruption brake** (:mod:`rpcdaemon.core.brake`): while it holds, no host becomes SILENT,
nothing is probed and nothing is declared DEAD; when it holds for our own trouble (bus down,
lag, a fresh reconnect), standing DEAD verdicts are withdrawn too (a node coming back could
be hidden in a backlog we have not read).

A DEAD host is back as soon as any of its agents reports again. Each change of a host's
state is reported once (:class:`DetectorStep`), except between OK and QUIET (in a broker
restart every host goes quiet: that is the brake's line to log, not thousands).

Cost: an arrival is O(1); a tick pops the agents whose suspicion (or retirement) time passed
(heaps) and looks at the quiet hosts only. An agent silent for ``agent_down_time`` is retired
(today's rule has it): a host whose dead agent Neutron still lists costs nothing per tick.
One owner thread (the reactor); pure, ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from rpcdaemon.core.brake import DisruptionBrake
from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.deadlines import DeadlineQueue
from rpcdaemon.core.detection import (
    PROBE_TOPICS,
    DetectorPolicy,
    DetectorStep,
    HostChange,
    HostState,
    NodeDeath,
    ProbeRequest,
    ProbeResult,
    probe_queue,
)
from rpcdaemon.core.ids import Host
from rpcdaemon.core.records import AgentKey
from rpcdaemon.core.rhythm import Rhythm, suspect_after

CONTROL_HOSTS = 2
"""Healthy hosts probed beside a silent one; one answer is enough."""
STALE_PROBE = 10.0
"""Seconds beyond its timeout after which a probe never answered by the runtime is dropped."""
OUR_TROUBLE = frozenset({"bus-down", "lag", "listening"})
"""Brake kinds that withdraw standing DEAD verdicts (see the module docstring)."""
_LOGGED = frozenset({HostState.SILENT, HostState.SLOW, HostState.STOPPED, HostState.DEAD})


class Detector:
    """Per-agent rhythms, per-host states, the brake. One owner thread."""

    def __init__(self, policy: DetectorPolicy | None = None) -> None:
        self.policy = policy if policy is not None else DetectorPolicy()
        self._rhythms: dict[AgentKey, Rhythm] = {}
        self._members: dict[Host, tuple[AgentKey, ...]] = {}  # known agents, by host
        self._known: frozenset[AgentKey] = frozenset()
        self._due: DeadlineQueue[AgentKey] = DeadlineQueue()  # suspicion times
        self._retire: DeadlineQueue[AgentKey] = DeadlineQueue()  # suspects past agent_down_time
        self._suspect: set[AgentKey] = set()
        self._quiet: dict[Host, int] = {}  # hosts with suspect agents -> how many
        self._states: dict[Host, HostState] = {}  # hosts not OK
        self._silent_since: dict[Host, float] = {}
        self._answered: set[Host] = set()  # answered a probe in this silence: never DEAD in it
        self._probing: dict[Host, ProbeRequest] = {}
        self._results: dict[Host, ProbeResult] = {}
        self._deaths: dict[Host, NodeDeath] = {}
        self._brake = DisruptionBrake(self.policy)
        self._changes: list[HostChange] = []
        self._why: dict[Host, str] = {}  # the reason last reported per host not OK
        self.brake: str | None = None  # why no fast verdict may be drawn now
        self.brake_kind: str | None = None  # bus-down, lag, listening or disruption
        self.arrivals = 0
        self.judged_hosts = 0  # hosts looked at by ticks since start (cost: what changed)

    # -- inputs -----------------------------------------------------------------------------

    def set_known(self, keys: Iterable[AgentKey]) -> None:
        """The agents Neutron lists (every type): only these are tracked (a forged host on
        an open bus must not grow the detector, nor count for the brake)."""
        known = frozenset(keys)
        if known == self._known:
            return
        members: dict[Host, list[AgentKey]] = {}
        for key in sorted(known):
            members.setdefault(key.host, []).append(key)
        self._members = {h: tuple(ks) for h, ks in members.items()}
        for key in self._known - known:
            self._rhythms.pop(key, None)
            self._due.discard(key)
            self._retire.discard(key)
            self._drop_suspect(key)
        self._known = known
        for host in [h for h in self._states if h not in self._members]:
            self._forget_host(host)

    def arrival(self, key: AgentKey, at: float) -> None:
        """A heartbeat of ``key`` received at ``at`` (our monotonic clock)."""
        if key not in self._known or not self.policy.enabled:
            return
        self.arrivals += 1
        rhythm = self._rhythms.get(key)
        if rhythm is None:
            self._rhythms[key] = rhythm = Rhythm(at)
        else:
            late = rhythm.learned and at - rhythm.last > self._suspect_after(rhythm)
            if rhythm.arrive(at) <= 0:
                return  # reordered: an older heartbeat says nothing new
            if late:  # late but never popped (between two ticks): it went quiet too
                self._brake.quiet.note(key.host, at)
        self._retire.discard(key)
        if key in self._suspect:
            self._drop_suspect(key)
        if key.host in self._states:
            self._host_heard(key)
        if rhythm.learned and key not in self._due:
            self._due.push(key, rhythm.last + self._suspect_after(rhythm))

    def reconnected(self, at: float) -> None:
        """Our consumer is back: every rhythm is learned afresh (arrivals around an outage
        say nothing about the agents). Nothing is suspect until it is learned again."""
        for rhythm in self._rhythms.values():
            rhythm.reset(at)
        self._due.clear()
        self._retire.clear()
        self._suspect.clear()
        self._quiet.clear()
        self._brake.quiet.clear()
        self._brake.silent.clear()
        for host in list(self._states):
            self._forget_host(host)

    def disconnected(self) -> None:
        """Our consumer lost the bus: no verdict stands on evidence we can no longer see."""
        for host, state in list(self._states.items()):
            if state in _LOGGED:
                self._set(host, HostState.OK, "we lost the bus: verdicts dropped")
            self._forget_host(host)

    def probe_done(self, result: ProbeResult) -> None:
        host = result.request.host
        pending = self._probing.get(host)
        if pending is result.request:
            del self._probing[host]
            self._results[host] = result

    # -- outputs ----------------------------------------------------------------------------

    def deaths(self) -> Mapping[Host, NodeDeath]:
        """Hosts with a node-death verdict now (read-only view; copy to hand elsewhere)."""
        return MappingProxyType(self._deaths)

    def members(self, host: Host) -> tuple[AgentKey, ...]:
        """The known agents of ``host`` (every type)."""
        return self._members.get(host, ())

    def state(self, host: Host) -> HostState:
        return self._states.get(host, HostState.OK)

    def states(self) -> dict[Host, HostState]:
        """Hosts not OK (a copy)."""
        return dict(self._states)

    def tick(self, now: float, bus: BusState) -> DetectorStep:
        """Judge what changed since the last tick; returns probes to send, host changes and
        the brake."""
        if not self.policy.enabled:
            return DetectorStep()
        for key in self._due.pop_due(now):
            rhythm = self._rhythms.get(key)
            if rhythm is None:
                continue
            due = rhythm.last + self._suspect_after(rhythm)
            if due > now:
                self._due.push(key, due)
            elif key not in self._suspect:
                self._suspect.add(key)
                self._quiet[key.host] = self._quiet.get(key.host, 0) + 1
                self._brake.quiet.note(key.host, now)
                self._retire.push(key, rhythm.last + self.policy.agent_down_time)
        for key in self._retire.pop_due(now):
            self._retire_agent(key, now)
        brake = self._brake.check(now, bus, len(self._members))
        self.brake_kind, self.brake = (None, None) if brake is None else brake
        if self.brake_kind in OUR_TROUBLE:
            self._withdraw_deaths()
        probes: list[ProbeRequest] = []
        for host in list(self._quiet):
            self.judged_hosts += 1
            probe = self._judge_host(host, now)
            if probe is not None:
                probes.append(probe)
        changes, self._changes = tuple(self._changes), []
        return DetectorStep(tuple(probes), changes, self.brake, self.brake_kind)

    # -- the rules --------------------------------------------------------------------------

    def _suspect_after(self, rhythm: Rhythm) -> float:
        p = self.policy
        return suspect_after(
            rhythm,
            multiple=p.suspect_multiple,
            margin=p.jitter_margin,
            floor=p.suspect_floor,
            ceiling=p.agent_down_time,
        )

    def _judge_host(self, host: Host, now: float) -> ProbeRequest | None:
        """A host with suspect agents: QUIET, SILENT (probe), SLOW, STOPPED or DEAD."""
        state = self._states.get(host, HostState.OK)
        if state is HostState.DEAD:
            return None
        p = self.policy
        reporting = [
            k
            for k in self._members.get(host, ())
            if (r := self._rhythms.get(k)) is not None and now - r.last < p.agent_down_time
        ]
        unlearned = [k for k in reporting if not self._rhythms[k].learned]
        talking = [k for k in reporting if k not in self._suspect]
        if unlearned or talking or len(reporting) < p.min_agents:
            why = (
                f"{_names(talking)} still report"
                if talking
                else f"rhythm of {_names(unlearned)} not learned yet"
                if unlearned
                else f"only {_names(reporting)} reported: a crash looks the same"
            )
            self._set(host, HostState.QUIET, why)
            return None
        probed = [k for k in reporting if k.agent_type in PROBE_TOPICS]
        if len(probed) < p.min_agents:  # one paused process must not be the whole proof
            self._set(host, HostState.QUIET, f"only {_names(probed)} to probe: not enough")
            return None
        if self.brake is not None:
            self._results.pop(host, None)  # evidence from before the brake: probe afresh
            if state not in _LOGGED:
                self._set(host, HostState.QUIET, f"held: {self.brake}")
            return None
        if state not in _LOGGED:
            self._silent_since[host] = now
            self._brake.silent.note(host, now)
            self._set(host, HostState.SILENT, f"{_names(reporting)} silent past their rhythm")
        since = self._silent_since.get(host, now)
        pending = self._probing.get(host)
        if pending is not None and now - pending.sent_at > p.probe_timeout + STALE_PROBE:
            del self._probing[host]
            pending = None
        result = self._results.get(host)
        if result is not None and result.request.sent_at >= since:
            self._conclude(host, result, reporting, now)
            if self._states.get(host) is HostState.DEAD:
                return None
        if pending is not None:
            return None
        if result is not None and now - result.finished_at < p.reprobe_interval:
            return None
        queues = tuple(q for k in probed if (q := probe_queue(k.agent_type, host)) is not None)
        control = self._control(host, {k.agent_type for k in probed})
        if not control:
            self._set(host, HostState.SILENT, "no healthy host to compare with: not probing")
            return None
        request = ProbeRequest(host, queues, control, now)
        self._probing[host] = request
        self._results.pop(host, None)
        return request

    def _conclude(
        self, host: Host, result: ProbeResult, reporting: list[AgentKey], now: float
    ) -> None:
        request = result.request
        answered = [q for q in request.queues if q in result.answered]
        let_go = [q for q in request.queues if q not in result.answered and q not in result.held]
        if result.error is not None:
            self._set(host, HostState.SILENT, f"probe failed on our side: {result.error}")
        elif answered:
            self._answered.add(host)
            self._set(host, HostState.SLOW, f"silent, but {', '.join(answered)} answered")
        elif host in self._answered:  # one lost answer does not make a slow node dead
            self._set(host, HostState.SLOW, "answered earlier in this silence: today's rule")
        elif let_go:
            self._set(
                host,
                HostState.STOPPED,
                f"nobody consumes {', '.join(let_go)}: the agent processes exited and the "
                "host closed their connections (a crash or a restart): today's rule",
            )
        elif not any(q in result.answered for q in request.control):
            self._set(
                host,
                HostState.SILENT,
                f"control probe ({', '.join(request.control)}) unanswered too: "
                "our trouble, not the node's",
            )
        else:
            last_heard = max(self._rhythms[k].last for k in reporting)
            silent = now - min(self._rhythms[k].last for k in reporting)
            reason = (
                f"node {host} dead: {_names(reporting)} silent for up to {silent:.1f}s; "
                f"{', '.join(request.queues)} held but unanswered within "
                f"{self.policy.probe_timeout:g}s while "
                f"{', '.join(q for q in request.control if q in result.answered)} answered"
            )
            self._deaths[host] = NodeDeath(host, now, reason, last_heard)
            self._set(host, HostState.DEAD, reason)
        self._results[host] = result  # kept: its finish time paces the next probe

    def _control(self, host: Host, types: set[str]) -> tuple[str, ...]:
        """Queues of up to CONTROL_HOSTS healthy hosts, of the agent types ``host`` has."""
        found: list[str] = []
        for other, members in self._members.items():
            if other == host or other in self._quiet or other in self._states:
                continue
            for k in members:
                r = self._rhythms.get(k)
                if k.agent_type in types and r is not None and r.learned:
                    queue = probe_queue(k.agent_type, other)
                    if queue is not None:
                        found.append(queue)
                        break
            if len(found) >= CONTROL_HOSTS:
                break
        return tuple(found)

    def _withdraw_deaths(self) -> None:
        """Our own trouble: a node coming back could be hidden from us. DEAD -> SILENT."""
        for host in list(self._deaths):
            del self._deaths[host]
            self._results.pop(host, None)
            self._set(host, HostState.SILENT, f"verdict withdrawn: {self.brake}")

    # -- bookkeeping ------------------------------------------------------------------------

    def _retire_agent(self, key: AgentKey, now: float) -> None:
        """Silent for agent_down_time: today's rule has it. A DEAD host stays DEAD."""
        rhythm = self._rhythms.get(key)
        if key not in self._suspect or rhythm is None:
            return
        if now - rhythm.last < self.policy.agent_down_time:
            self._retire.push(key, rhythm.last + self.policy.agent_down_time)
            return
        self._suspect.discard(key)
        left = self._quiet.get(key.host, 0) - 1
        if left > 0:
            self._quiet[key.host] = left
            return
        self._quiet.pop(key.host, None)
        if self._states.get(key.host) is not HostState.DEAD:
            self._forget_host(key.host)

    def _host_heard(self, key: AgentKey) -> None:
        """An agent of a host not OK reported: the host is up."""
        if self._states.get(key.host) is HostState.DEAD:
            self._set(key.host, HostState.QUIET, f"{key} reported: the node is back")
            self._deaths.pop(key.host, None)
        if not self._quiet.get(key.host):
            self._set(key.host, HostState.OK, f"{key} reported")
            self._forget_host(key.host)

    def _drop_suspect(self, key: AgentKey) -> None:
        if key not in self._suspect:
            return
        self._suspect.discard(key)
        self._retire.discard(key)
        left = self._quiet.get(key.host, 0) - 1
        if left > 0:
            self._quiet[key.host] = left
        else:
            self._quiet.pop(key.host, None)

    def _forget_host(self, host: Host) -> None:
        self._states.pop(host, None)
        self._why.pop(host, None)
        self._silent_since.pop(host, None)
        self._answered.discard(host)
        self._probing.pop(host, None)
        self._results.pop(host, None)
        self._deaths.pop(host, None)

    def _set(self, host: Host, state: HostState, reason: str) -> None:
        """Each change of state is reported once, but not between OK and QUIET (hosts go
        quiet by the thousand in a broker restart); a new reason for a SILENT host (why a
        probe proved nothing) is reported too."""
        old = self._states.get(host, HostState.OK)
        if state is not HostState.OK:
            self._states[host] = state
        if (old is not state and (state in _LOGGED or old in _LOGGED)) or (
            state is HostState.SILENT and self._why.get(host) != reason
        ):
            self._changes.append(HostChange(host, old, state, reason))
        if state is HostState.OK:
            self._why.pop(host, None)
        else:
            self._why[host] = reason


def _names(keys: Iterable[AgentKey]) -> str:
    return ", ".join(sorted(k.agent_type for k in keys)) or "no agent"
