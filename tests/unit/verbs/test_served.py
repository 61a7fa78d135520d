"""The daemon side: /status on the metrics server, the model from a reactor's state, and
the gauges openstack-exporter lacks."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.guards import BreakerState
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.liveness import AgentKey, AgentRecord
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.core.statusmodel import PauseState, build, from_json
from rpcdaemon.core.statusview import status_document, status_model
from rpcdaemon.core.view import ClusterView
from rpcdaemon.metrics import MetricsServer
from rpcdaemon.modelmetrics import ModelCollector
from rpcdaemon.testing import make_agent, make_dhcp_agent, make_network, make_router, make_view
from rpcdaemon.verbs.common import Context, daemon_url

NOW = 1_800_000_000.0


def cloud() -> ClusterView:
    return make_view(
        agents=[
            make_agent("l3-a", host="net1"),
            make_agent("l3-b", host="net2"),
            make_dhcp_agent("dhcp-a", host="net1"),
            make_dhcp_agent("dhcp-b", host="net2"),
        ],
        routers=[make_router("r1"), make_router("r2")],
        networks=[make_network("n1"), make_network("n2")],
        router_bindings={"r1": ["l3-a"], "r2": ["l3-b"]},
        network_bindings={"n1": ["dhcp-a", "dhcp-b"], "n2": ["dhcp-a"]},
    )


@dataclass(frozen=True)
class Report:
    trigger: str = "periodic"
    finished: float = 95.0
    view: ClusterView | None = field(default_factory=cloud)
    plans: tuple[Plan, ...] = (Plan("L3Agent", (), ("no target for r1",)),)
    verdicts: dict[AgentId, Liveness] = field(
        default_factory=lambda: {
            AgentId("l3-a"): Liveness.DEAD,
            AgentId("l3-b"): Liveness.ALIVE,
            AgentId("dhcp-a"): Liveness.DEAD,
            AgentId("dhcp-b"): Liveness.ALIVE,
        }
    )
    breakers: tuple[BreakerState, ...] = (BreakerState("L3 agent", 1, 2, 0.4),)
    error: str | None = None
    handed: int = 0


class Model:
    def snapshot(self) -> dict[AgentKey, AgentRecord]:
        key = AgentKey("L3 agent", "net1")  # type: ignore[arg-type]
        return {key: AgentRecord(key, last_seen=20.0, started_at=None, availability_zone=None)}


class Reactor:
    def __init__(self, report: Any) -> None:
        self.last_pass = report
        self.model = Model()


def test_status_model_from_the_reactor_state() -> None:
    pause = PauseState(until=None, reason="rmq")
    s = status_model(
        Reactor(Report()),
        is_leader=True,
        coordination_connected=True,
        dry_run=False,
        pause=pause,
        now=100.0,
    )
    assert s is not None and s.source == "daemon"
    by_id = {a.id: a for a in s.agents}
    assert by_id[AgentId("l3-a")].heartbeat_age == 80.0
    assert by_id[AgentId("l3-b")].heartbeat_age is None
    assert [(x.kind, x.id, x.age) for x in s.stranded] == [
        ("router", "r1", 80.0),
        ("network", "n2", None),
    ]
    assert s.breakers == {"L3 agent": True}  # 1 of 2 dead > 0.4
    assert s.last_pass is not None and s.last_pass.age == 5.0
    assert s.last_pass.held == ("no target for r1",)
    assert s.pause == pause
    assert status_model(Reactor(None), is_leader=True, coordination_connected=True,
                        dry_run=False, pause=None, now=1.0) is None  # fmt: skip


def test_status_route_serves_the_model_and_503_before_the_first_pass() -> None:
    reactor = Reactor(None)

    def model() -> Any:
        return status_model(reactor, is_leader=False, coordination_connected=True,
                            dry_run=True, pause=None, now=100.0)  # fmt: skip

    server = MetricsServer(
        "127.0.0.1:0", CollectorRegistry(), StatusSnapshot, status_document=status_document(model)
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/status"
        first = requests.get(url, timeout=5)
        assert first.status_code == 503 and first.json()["reason"] == "no planning pass yet"
        reactor.last_pass = Report()
        answer = requests.get(url, timeout=5)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        s = from_json(answer.json())
        assert s.leader is False and s.dry_run is True and len(s.stranded) == 2
        # the verbs' client reads the same thing
        ctx = Context(settings=None, daemon_address=f"127.0.0.1:{server.port}")  # type: ignore[arg-type]
        assert ctx.fetch_status() == s
    finally:
        server.stop()


def test_daemon_url() -> None:
    assert daemon_url(":9180") == "http://127.0.0.1:9180"
    assert daemon_url("0.0.0.0:9180") == "http://127.0.0.1:9180"
    assert daemon_url("[::]:9180") == "http://[::1]:9180"
    assert daemon_url("10.0.0.5:80") == "http://10.0.0.5:80"


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_model_gauges() -> None:
    view = cloud()
    verdicts = dict(Report().verdicts)
    state: dict[str, Any] = {"pause": PauseState(until=NOW + 30, reason="x")}

    def model() -> Any:
        return build(view, verdicts, source="daemon", pause=state["pause"])

    registry = CollectorRegistry()
    registry.register(ModelCollector(model, wall=lambda: NOW))
    got = samples(registry)
    assert got[("rpcdaemon_host_agents_up", (("agent_type", "L3 agent"), ("host", "net1")))] == 0
    assert got[("rpcdaemon_host_agents_up", (("agent_type", "L3 agent"), ("host", "net2")))] == 1
    assert got[("rpcdaemon_resources_on_dead_agents", (("kind", "router"),))] == 1
    assert got[("rpcdaemon_resources_on_dead_agents", (("kind", "network"),))] == 1
    # n1 on dhcp-a (dead) and dhcp-b (live): 1 live; n2 on dhcp-a only: 0 live
    assert got[("rpcdaemon_dhcp_networks_by_live_agents", (("live_agents", "0"),))] == 1
    assert got[("rpcdaemon_dhcp_networks_by_live_agents", (("live_agents", "1"),))] == 1
    assert got[("rpcdaemon_paused", ())] == 1
    assert got[("rpcdaemon_pause_remaining_seconds", ())] == 30
    state["pause"] = PauseState(until=None)
    assert math.isinf(samples(registry)[("rpcdaemon_pause_remaining_seconds", ())])
    state["pause"] = None
    after = samples(registry)
    assert after[("rpcdaemon_paused", ())] == 0
    assert after[("rpcdaemon_pause_remaining_seconds", ())] == 0
    assert json.dumps(list(after))  # every sample name/label is plain text
