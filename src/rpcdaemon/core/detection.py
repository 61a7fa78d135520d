"""The detector's vocabulary: its thresholds, the probes it asks for, what it concludes.

Frozen values only; the rules are in :mod:`rpcdaemon.core.detector`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from rpcdaemon.core.ids import AgentType, Host

PROBE_TOPICS: Mapping[str, str] = MappingProxyType(
    {
        AgentType.L3.value: "l3_agent",
        AgentType.DHCP.value: "dhcp_agent",
        AgentType.OVS.value: "q-agent-notifier-tunnel-update",
    }
)
"""Agent type -> the RPC topic whose ``<topic>.<host>`` queue that agent consumes
(oslo.messaging's rabbit driver declares ``topic``, ``topic.<server>`` and a fanout queue for
every RPC server; neutron's agents use their host as the server):

* L3 and DHCP agents: ``l3_agent.<host>``, ``dhcp_agent.<host>``;
* Open vSwitch agent: ``q-agent-notifier-tunnel-update.<host>`` (tunnel update/delete and DVR
  update consumers are always created). NOT ``q-agent-notifier-port-update``: port updates
  come from the push-notification cache since Pike, and that consumer went in Queens, so on
  a live host that queue has no consumer;
* the metadata agent runs no RPC server: it is judged by its heartbeats only."""


def probe_queue(agent_type: str, host: Host) -> str | None:
    """The queue a probe of this agent goes to (None: the agent consumes no RPC)."""
    topic = PROBE_TOPICS.get(agent_type)
    return None if topic is None else f"{topic}.{host}"


@dataclass(frozen=True)
class DetectorPolicy:
    """Thresholds of the node-death fast path. Defaults are the safe ones (README,
    "Failure detection"); ``enabled = False`` is today's rule alone."""

    enabled: bool = True
    agent_down_time: float = 75.0
    """The longest agent_down_time of the planners: suspicion never comes later, and hosts
    that went quiet within this long count for the disruption brake."""
    suspect_multiple: float = 1.2
    """An agent is suspect after this many learned intervals of silence..."""
    jitter_margin: float = 4.0
    """...plus this many learned deviations..."""
    suspect_floor: float = 1.0
    """...and never sooner than this many seconds."""
    min_agents: int = 2
    """Agents of a host that must fall silent together (one alone is a crashed process)."""
    probe_timeout: float = 2.0
    """Seconds a probed queue has to answer."""
    reprobe_interval: float = 5.0
    """A host still silent is probed again after this long (a slow node may die later)."""
    quiet_fraction: float = 0.2
    """Brake: more than this fraction of the hosts went quiet within agent_down_time..."""
    quiet_hosts: int = 2
    """...and more than this many: a disruption (broker, neutron-server, us), not a death.
    Two hosts dying together still act; each is confirmed by its own probe and a control."""
    lag_limit: float = 1.0
    """Brake: our consumer is more than this many seconds behind."""


class HostState(str, enum.Enum):
    """What the detector says of a host."""

    OK = "ok"  # its agents report in rhythm
    QUIET = "quiet"  # some agents are past their rhythm; not (yet) a node death
    SILENT = "silent"  # every agent is past its rhythm: probing
    SLOW = "slow"  # silent, but its agents answered the probe: alive, today's rule applies
    STOPPED = "stopped"  # silent, its queues have no consumer: processes gone, host up
    DEAD = "dead"  # silent, unanswered, queues still held, a control answered: a node death


@dataclass(frozen=True)
class ProbeRequest:
    """Ask the runtime: call ``queues`` (the host's) and ``control`` (a healthy host's)."""

    host: Host
    queues: tuple[str, ...]
    control: tuple[str, ...]
    sent_at: float


@dataclass(frozen=True)
class ProbeResult:
    """Which queues of a :class:`ProbeRequest` answered within the timeout. ``error``: we
    could not probe at all (our trouble: proves nothing about the host)."""

    request: ProbeRequest
    answered: frozenset[str]
    finished_at: float
    error: str | None = None
    held: frozenset[str] = frozenset()
    """Unanswered queues the broker still counts a consumer on: a powered-off, frozen or
    cut-off host (its connections live until the broker's heartbeat timeout). A process that
    exited on a live kernel has its connection closed at once: no consumer, not held."""


@dataclass(frozen=True)
class HostChange:
    """A host's state changed (logged once per change)."""

    host: Host
    old: HostState
    new: HostState
    reason: str

    def describe(self) -> str:
        return f"node {self.host}: {self.old.value} -> {self.new.value} ({self.reason})"


@dataclass(frozen=True)
class NodeDeath:
    """A node-death verdict: every agent on ``host`` is dead now, whatever the API says."""

    host: Host
    since: float
    reason: str
    last_heard: float = 0.0  # our receive time of the host's newest heartbeat then


@dataclass(frozen=True)
class DetectorStep:
    """One tick's output: probes to send, host changes to log, the brake (None: off)."""

    probes: tuple[ProbeRequest, ...] = ()
    changes: tuple[HostChange, ...] = ()
    brake: str | None = None
    brake_kind: str | None = None  # bus-down, lag, listening, disruption


@dataclass(frozen=True)
class DetectionStatus:
    """What the detector says now, for metrics and ``/status`` (published each tick)."""

    enabled: bool = True
    brake_kind: str | None = None
    brake: str | None = None
    hosts: tuple[tuple[Host, HostState], ...] = ()  # hosts not OK
    node_deaths: int = 0  # DEAD verdicts since start
    probes_sent: int = 0  # queues probed since start
    probes_answered: int = 0
    probe_failures: int = 0  # probe rounds that failed on our side

    def to_dict(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "brake": self.brake,
            "brake_kind": self.brake_kind,
            "hosts": {host: state.value for host, state in self.hosts},
            "node_deaths": self.node_deaths,
            "probes_sent": self.probes_sent,
            "probes_answered": self.probes_answered,
            "probe_failures": self.probe_failures,
        }
