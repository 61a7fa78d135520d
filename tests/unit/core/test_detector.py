"""The node-death detector (core.detector): rules, driven by a small simulated cloud."""

from __future__ import annotations

from dataclasses import dataclass, field

from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.detection import DetectorPolicy, HostState, ProbeRequest, ProbeResult
from rpcdaemon.core.detector import Detector
from rpcdaemon.core.events import ConsumerLag
from rpcdaemon.core.ids import AgentType, Host
from rpcdaemon.core.records import AgentKey
from rpcdaemon.core.rhythm import Rhythm

NET = ("net1", "net2", "net3")
COMPUTE = ("comp1", "comp2")
NET_TYPES = (AgentType.L3, AgentType.DHCP, AgentType.OVS, AgentType.METADATA)
COMPUTE_TYPES = (AgentType.OVS, AgentType.METADATA)


def keys() -> list[AgentKey]:
    out = [AgentKey(t.value, Host(h)) for h in NET for t in NET_TYPES]
    out += [AgentKey(t.value, Host(h)) for h in COMPUTE for t in COMPUTE_TYPES]
    return out


@dataclass
class Cloud:
    """Agents reporting every ``interval`` (phases spread), a detector, a probe answerer."""

    interval: float = 2.5
    down_time: float = 10.0
    policy: DetectorPolicy = field(default_factory=DetectorPolicy)
    dead: set[Host] = field(default_factory=set)  # report nothing, answer nothing
    mute: set[Host] = field(default_factory=set)  # report nothing, answer probes
    silent_keys: set[AgentKey] = field(default_factory=set)  # one crashed process each
    stopped: set[Host] = field(default_factory=set)  # every process exited, the host is up
    answer: bool = True  # the probe path works at all
    now: float = 0.0
    bus: BusState = field(default_factory=lambda: BusState(connected=True, listening_since=0.0))

    def __post_init__(self) -> None:
        if self.policy == DetectorPolicy():
            self.policy = DetectorPolicy(agent_down_time=self.down_time)
        self.detector = Detector(self.policy)
        self.keys = keys()
        self.detector.set_known(self.keys)
        self.next = {k: i * self.interval / len(self.keys) for i, k in enumerate(self.keys)}
        self.changes: list[str] = []
        self.probes: list[ProbeRequest] = []
        self.brakes: list[str | None] = []

    def silent(self, key: AgentKey) -> bool:
        return (
            key.host in self.dead
            or key.host in self.mute
            or key.host in self.stopped
            or key in self.silent_keys
        )

    def run(self, until: float, tick: float = 0.5) -> None:
        while self.now < until:
            self.now = round(self.now + tick, 6)
            for key, due in self.next.items():
                if due <= self.now:
                    if not self.silent(key):
                        self.detector.arrival(key, due)
                    self.next[key] = due + self.interval
            step = self.detector.tick(self.now, self.bus)
            self.brakes.append(step.brake)
            self.changes += [c.describe() for c in step.changes]
            for probe in step.probes:
                self.probes.append(probe)
                self.detector.probe_done(self.reply(probe))

    def reply(self, probe: ProbeRequest) -> ProbeResult:
        """Dead hosts hold their queues without answering (a powered-off host's connections
        live until the broker's heartbeat timeout); crashed processes and stopped hosts hold
        nothing (their kernel closed the connections)."""
        answered, held = set(), set()
        for queue in probe.queues + probe.control:
            host = Host(queue.split(".", 1)[1])
            crashed = {k for k in self.silent_keys if k.host == host}
            if host in self.dead:
                held.add(queue)
            elif host in self.stopped or any(queue.startswith(_topic(k)) for k in crashed):
                continue
            elif self.answer:
                answered.add(queue)
            else:
                held.add(queue)
        return ProbeResult(
            probe,
            frozenset(answered),
            self.now + self.policy.probe_timeout,
            held=frozenset(held),
        )


def _topic(key: AgentKey) -> str:
    return {"L3 agent": "l3_agent", "DHCP agent": "dhcp_agent"}.get(key.agent_type, "?")


def warm(cloud: Cloud) -> None:
    cloud.run(cloud.down_time + 4 * cloud.interval)
    assert cloud.detector.states() == {}, cloud.changes


def test_a_dead_node_is_declared_within_two_intervals() -> None:
    cloud = Cloud()
    warm(cloud)
    died = cloud.now
    cloud.dead.add(Host("net1"))
    cloud.run(died + 10)
    death = cloud.detector.deaths().get(Host("net1"))
    assert death is not None, cloud.changes
    assert death.since - died <= 2 * cloud.interval + 0.5
    assert "l3_agent.net1" in death.reason and "answered" in death.reason
    assert set(cloud.detector.deaths()) == {Host("net1")}
    assert cloud.detector.brake is None


def test_a_crashed_agent_on_a_live_node_is_never_a_node_death() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.silent_keys.add(AgentKey(AgentType.L3.value, Host("net1")))
    cloud.run(cloud.now + 6)
    assert cloud.detector.state(Host("net1")) is HostState.QUIET
    cloud.run(cloud.now + 24)
    assert not cloud.detector.deaths()
    # silent past agent_down_time: retired (today's rule has it), the host costs nothing
    assert cloud.detector.state(Host("net1")) is HostState.OK
    assert not cloud.probes  # one agent of four: nothing to confirm


def test_a_slow_node_answers_and_is_never_declared_dead() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.mute.add(Host("net2"))
    cloud.run(cloud.now + 8)
    assert not cloud.detector.deaths()
    assert cloud.detector.state(Host("net2")) is HostState.SLOW
    assert any("answered" in c for c in cloud.changes)
    cloud.mute.clear()
    cloud.run(cloud.now + 3)
    assert cloud.detector.state(Host("net2")) is HostState.OK


def test_the_node_is_back_when_any_agent_reports() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.dead.add(Host("net1"))
    cloud.run(cloud.now + 8)
    assert Host("net1") in cloud.detector.deaths()
    cloud.dead.clear()
    cloud.run(cloud.now + cloud.interval + 0.5)
    assert Host("net1") not in cloud.detector.deaths()
    assert any("back" in c or "reports again" in c or "reported" in c for c in cloud.changes)


def test_no_verdict_when_the_control_does_not_answer_either() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.dead.add(Host("net1"))
    cloud.answer = False  # our probe path is broken: proves nothing
    cloud.run(cloud.now + 6)
    assert not cloud.detector.deaths()
    assert cloud.detector.state(Host("net1")) is HostState.SILENT
    assert any("our trouble" in c for c in cloud.changes)


def test_many_hosts_quiet_together_engage_the_brake() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.dead.update({Host("net1"), Host("net2"), Host("comp1")})  # a broker partition
    cloud.run(cloud.now + 8)
    assert not cloud.detector.deaths()
    assert cloud.detector.brake is not None and "disruption" in cloud.detector.brake
    # a probe may leave before the last host goes quiet; no verdict is drawn from it
    assert len(cloud.probes) <= 1


def test_no_verdict_right_after_our_reconnect_or_while_we_lag() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.bus = BusState(connected=True, listening_since=cloud.now)
    cloud.detector.reconnected(cloud.now)
    cloud.dead.add(Host("net1"))
    cloud.run(cloud.now + cloud.down_time - 1)
    assert not cloud.detector.deaths()
    assert cloud.brakes[-1] is not None and "listening" in cloud.brakes[-1]

    lagging = Cloud()
    warm(lagging)
    lagging.bus = BusState(
        connected=True, listening_since=0.0, lag=ConsumerLag(messages=500, seconds=3.0)
    )
    lagging.dead.add(Host("net1"))
    lagging.run(lagging.now + 10)
    assert not lagging.detector.deaths()
    assert lagging.brakes[-1] is not None and "lags" in lagging.brakes[-1]


def test_losing_the_bus_drops_every_verdict() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.dead.add(Host("net1"))
    cloud.run(cloud.now + 8)
    assert cloud.detector.deaths()
    cloud.detector.disconnected()
    assert not cloud.detector.deaths()


def test_disabled_detector_never_probes() -> None:
    cloud = Cloud(policy=DetectorPolicy(enabled=False, agent_down_time=10.0))
    warm(cloud)
    cloud.dead.add(Host("net1"))
    cloud.run(cloud.now + 10)
    assert not cloud.probes and not cloud.detector.deaths()


def test_unknown_hosts_are_not_tracked() -> None:
    detector = Detector(DetectorPolicy(agent_down_time=10.0))
    detector.set_known(keys())
    for i in range(100):
        detector.arrival(AgentKey(AgentType.L3.value, Host(f"forged{i}")), float(i))
    assert detector.arrivals == 0


def test_rhythm_resists_one_pause_and_learns_a_new_interval() -> None:
    rhythm = Rhythm(0.0)
    t = 0.0
    for _ in range(20):
        t += 30.0
        rhythm.arrive(t)
    assert abs(rhythm.interval - 30.0) < 0.01
    t += 60.0  # one report lost or a GC pause
    rhythm.arrive(t)
    assert rhythm.interval < 33.0
    for _ in range(5):  # the operator set report_interval = 10
        t += 10.0
        rhythm.arrive(t)
    for _ in range(10):
        t += 10.0
        rhythm.arrive(t)
    assert abs(rhythm.interval - 10.0) < 1.0


def test_probe_queues_are_the_ones_each_agent_consumes() -> None:
    from rpcdaemon.core.detection import probe_queue

    assert probe_queue("L3 agent", Host("net1")) == "l3_agent.net1"
    assert probe_queue("DHCP agent", Host("net1")) == "dhcp_agent.net1"
    assert probe_queue("Open vSwitch agent", Host("n")) == "q-agent-notifier-tunnel-update.n"
    assert probe_queue("Metadata agent", Host("net1")) is None  # no RPC server to probe


def test_a_host_whose_agents_all_restart_is_not_dead() -> None:
    """systemctl restart neutron-*: every process exits, the kernel closes their connections,
    the broker drops the consumers at once; dnsmasq and keepalived go on serving."""
    cloud = Cloud()
    warm(cloud)
    cloud.stopped.add(Host("net1"))
    cloud.run(cloud.now + 5)
    assert not cloud.detector.deaths()
    assert cloud.detector.state(Host("net1")) is HostState.STOPPED
    assert any("nobody consumes" in c for c in cloud.changes)


def test_a_slow_node_that_answered_once_is_never_dead_in_that_silence() -> None:
    cloud = Cloud(policy=DetectorPolicy(agent_down_time=10.0, reprobe_interval=1.0))
    warm(cloud)
    cloud.mute.add(Host("net1"))
    cloud.run(cloud.now + 4)
    assert cloud.detector.state(Host("net1")) is HostState.SLOW
    cloud.mute.clear()
    cloud.dead.add(Host("net1"))  # the next probe goes unanswered (an overloaded host)
    cloud.run(cloud.now + 3)
    assert len(cloud.probes) >= 2  # ... and one of them went unanswered
    assert not cloud.detector.deaths()
    assert cloud.detector.state(Host("net1")) is HostState.SLOW


def test_our_lag_withdraws_a_standing_verdict() -> None:
    cloud = Cloud()
    warm(cloud)
    cloud.dead.add(Host("net1"))
    cloud.run(cloud.now + 6)
    assert Host("net1") in cloud.detector.deaths()
    cloud.bus = BusState(
        connected=True, listening_since=0.0, lag=ConsumerLag(messages=900, seconds=3.0)
    )
    cloud.run(cloud.now + 1)
    assert not cloud.detector.deaths()
    assert any("withdrawn" in c for c in cloud.changes)


def test_dotted_host_names_are_probed() -> None:
    detector = Detector(DetectorPolicy(agent_down_time=10.0))
    hosts = [Host(f"net{i}.example.com") for i in range(3)]
    keys = [AgentKey(t.value, h) for h in hosts for t in NET_TYPES]
    detector.set_known(keys)
    bus = BusState(connected=True, listening_since=0.0)
    t = 0.0
    probes = []
    while t < 40:
        t += 0.5
        for key in keys:
            if key.host != hosts[0] or t < 25:
                if abs(t % 2.5) < 1e-9:
                    detector.arrival(key, t)
        probes += detector.tick(t, bus).probes
    assert probes and probes[0].control, "no control queue for dotted host names"
    assert probes[0].host == hosts[0]
