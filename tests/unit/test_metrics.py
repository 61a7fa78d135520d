"""Metrics: values read back from a fresh registry, endpoints hit over real HTTP."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import rpcdaemon
from rpcdaemon.core.status import StatusSnapshot, age
from rpcdaemon.metrics import (
    Metrics,
    MetricsServer,
    health,
    install,
    parse_address,
    readiness,
)

NOW = 1000.0

HEALTHY = StatusSnapshot(
    agents={("L3 agent", "alive"): 3, ("L3 agent", "dead"): 1, ("DHCP agent", "alive"): 2},
    routers_on_dead_agents=4,
    networks_missing_agents=2,
    breaker_open={"L3 agent": False, "DHCP agent": True},
    is_leader=True,
    bus_connected=True,
    last_tick_at=NOW - 0.5,
    last_pass_at=NOW - 2.0,
    last_api_success_at=NOW - 10.0,
    pending_tasks=5,
)


class Box:
    """A mutable holder the tests change between scrapes."""

    def __init__(self, snap: StatusSnapshot) -> None:
        self.snap = snap

    def __call__(self) -> StatusSnapshot:
        return self.snap


def test_event_counters_and_histograms() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.heartbeat("L3 agent")
    m.action(plugin="L3Agent", verb="add_router", result="already")
    m.api_call("add_router", "201", 0.04)
    m.api_call("add_router", "timeout", 20.0)
    m.planning_pass(plugin="DHCPAgent", trigger="resync")
    m.detection_latency("L3 agent", 76.0)
    m.failover_duration("L3 agent", 12.0)
    m.breaker_trip("DHCP agent")
    v = reg.get_sample_value
    assert v("rpcdaemon_heartbeats_total", {"agent_type": "L3 agent"}) == 1
    labels = {"plugin": "L3Agent", "verb": "add_router", "result": "already"}
    assert v("rpcdaemon_actions_total", labels) == 1
    assert v("rpcdaemon_api_calls_total", {"op": "add_router", "status": "timeout"}) == 1
    assert v("rpcdaemon_api_call_seconds_count", {"op": "add_router"}) == 2
    assert v("rpcdaemon_api_call_seconds_sum", {"op": "add_router"}) == pytest.approx(20.04)
    assert v("rpcdaemon_api_call_seconds_bucket", {"op": "add_router", "le": "0.05"}) == 1
    assert v("rpcdaemon_passes_total", {"plugin": "DHCPAgent", "trigger": "resync"}) == 1
    assert (
        v("rpcdaemon_detection_latency_seconds_bucket", {"agent_type": "L3 agent", "le": "75.0"})
        == 0
    )
    assert (
        v("rpcdaemon_detection_latency_seconds_bucket", {"agent_type": "L3 agent", "le": "90.0"})
        == 1
    )
    assert v("rpcdaemon_failover_duration_seconds_sum", {"agent_type": "L3 agent"}) == 12.0
    assert v("rpcdaemon_breaker_trips_total", {"agent_type": "DHCP agent"}) == 1
    assert "rpcdaemon_messages" not in {f.name for f in reg.collect()}  # dropped: no writer


def test_every_event_metric_has_a_writer_in_the_daemon() -> None:
    """Issue 10: a family nobody writes is a lie on the dashboard."""
    src = Path(rpcdaemon.__file__).parent
    code = "\n".join(
        p.read_text() for p in src.rglob("*.py") if p.name != "metrics.py" and "sim" not in p.parts
    )
    methods = [n for n, f in vars(Metrics).items() if callable(f) and not n.startswith("_")]
    assert len(methods) == 7
    unused = [n for n in methods if f".{n}(" not in code and f".{n}," not in code]
    unused = [n for n in unused if f"=metrics.{n}" not in code]
    assert unused == []


def test_status_gauges_follow_the_snapshot_at_scrape_time() -> None:
    reg = CollectorRegistry()
    box = Box(HEALTHY)
    install(reg, box, clock=lambda: NOW)
    v = reg.get_sample_value
    assert v("rpcdaemon_agents", {"agent_type": "L3 agent", "liveness": "dead"}) == 1
    assert v("rpcdaemon_agents", {"agent_type": "DHCP agent", "liveness": "alive"}) == 2
    assert v("rpcdaemon_routers_on_dead_agents") == 4
    assert v("rpcdaemon_networks_missing_agents") == 2
    assert v("rpcdaemon_breaker_open", {"agent_type": "DHCP agent"}) == 1
    assert v("rpcdaemon_breaker_open", {"agent_type": "L3 agent"}) == 0
    assert v("rpcdaemon_leader") == 1
    assert v("rpcdaemon_bus_connected") == 1
    assert v("rpcdaemon_pending_tasks") == 5
    assert v("rpcdaemon_last_api_success_age_seconds") == 10.0
    assert v("rpcdaemon_last_pass_age_seconds") == 2.0
    box.snap = replace(HEALTHY, is_leader=False, routers_on_dead_agents=0, last_pass_at=None)
    assert v("rpcdaemon_leader") == 0
    assert v("rpcdaemon_routers_on_dead_agents") == 0
    never = v("rpcdaemon_last_pass_age_seconds")
    assert never is not None and math.isnan(never)


def test_health_gauges_follow_the_snapshot() -> None:
    reg = CollectorRegistry()
    box = Box(HEALTHY)
    install(reg, box, clock=lambda: NOW)
    v = reg.get_sample_value
    assert v("rpcdaemon_tick_failures") == 0
    assert v("rpcdaemon_dead_threads") == 0
    assert v("rpcdaemon_unknown_agents") == 0
    lag_messages, lag_seconds = (
        v("rpcdaemon_consumer_lag_messages"),
        v("rpcdaemon_consumer_lag_seconds"),
    )
    assert lag_messages is not None and math.isnan(lag_messages)  # not measured
    assert lag_seconds is not None and math.isnan(lag_seconds)
    box.snap = replace(
        HEALTHY,
        tick_failures=4,
        last_tick_error="KeyError('x')",
        watched_threads=("reactor", "bus-consumer", "elector"),
        dead_threads=("bus-consumer",),
        consumer_lag_messages=120,
        consumer_lag_seconds=3.5,
        unknown_agents=2,
    )
    assert v("rpcdaemon_tick_failures") == 4
    assert v("rpcdaemon_dead_threads") == 1
    assert v("rpcdaemon_thread_alive", {"thread": "reactor"}) == 1
    assert v("rpcdaemon_thread_alive", {"thread": "bus-consumer"}) == 0
    assert v("rpcdaemon_consumer_lag_messages") == 120
    assert v("rpcdaemon_consumer_lag_seconds") == 3.5
    assert v("rpcdaemon_unknown_agents") == 2


def test_codec_stats_are_exported_as_counters() -> None:
    reg = CollectorRegistry()
    stats = {"decoded": 7, "rejected": 3, "rejected.not_json": 2, "rejected.too_large": 1}
    stats["handler_errors"] = 1
    install(reg, lambda: HEALTHY, clock=lambda: NOW, codec_stats=lambda: stats)
    v = reg.get_sample_value
    assert v("rpcdaemon_bus_messages_total", {"result": "decoded", "reason": ""}) == 7
    assert v("rpcdaemon_bus_messages_total", {"result": "rejected", "reason": "not_json"}) == 2
    assert v("rpcdaemon_bus_messages_total", {"result": "rejected", "reason": "too_large"}) == 1
    assert v("rpcdaemon_handler_errors_total") == 1


def test_a_failing_status_source_does_not_break_the_scrape() -> None:
    reg = CollectorRegistry()
    m = install(reg, _boom, clock=lambda: NOW)
    m.heartbeat("DHCP agent")
    assert reg.get_sample_value("rpcdaemon_heartbeats_total", {"agent_type": "DHCP agent"}) == 1
    assert reg.get_sample_value("rpcdaemon_leader") is None


def _boom() -> StatusSnapshot:
    raise RuntimeError("reactor not ready")


@pytest.mark.parametrize(
    ("snap", "ok", "reason"),
    [
        (HEALTHY, True, None),
        (replace(HEALTHY, bus_connected=False), False, "AMQP consumer not connected"),
        (replace(HEALTHY, last_tick_at=None), False, "reactor has not ticked yet"),
        (replace(HEALTHY, last_tick_at=NOW - 31), False, "reactor last ticked 31.0s ago"),
        (replace(HEALTHY, tick_failures=2, last_tick_error="KeyError('x')"), True, None),
        (
            replace(HEALTHY, tick_failures=3, last_tick_error="KeyError('x')"),
            False,
            "reactor ticks failing: 3 in a row (limit 3), last: KeyError('x')",
        ),
        (
            replace(HEALTHY, watched_threads=("reactor", "elector"), dead_threads=("elector",)),
            False,
            "needed threads dead: elector",
        ),
    ],
)
def test_health(snap: StatusSnapshot, ok: bool, reason: str | None) -> None:
    got_ok, body = health(snap, NOW, stale_after=30.0)
    assert got_ok is ok
    assert body["status"] == ("ok" if ok else "fail")
    if reason is not None:
        assert any(r.startswith(reason) for r in body["reasons"])


@pytest.mark.parametrize(
    ("snap", "ok", "role"),
    [
        (HEALTHY, True, "leader"),
        (replace(HEALTHY, is_leader=False), True, "standby"),
        (replace(HEALTHY, is_leader=False, coordination_connected=False), False, "disconnected"),
        (replace(HEALTHY, last_api_success_at=None), False, "leader"),
        (replace(HEALTHY, last_api_success_at=NOW - 301), False, "leader"),
    ],
)
def test_readiness(snap: StatusSnapshot, ok: bool, role: str) -> None:
    got_ok, body = readiness(snap, NOW, api_stale_after=300.0)
    assert (got_ok, body["role"]) == (ok, role)


@given(st.one_of(st.none(), st.floats(-1e6, 1e6)), st.floats(-1e6, 1e6))
def test_age_is_never_negative(instant: float | None, now: float) -> None:
    a = age(instant, now)
    assert (a is None) == (instant is None)
    assert a is None or a >= 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9180", ("127.0.0.1", 9180)),
        (":9180", ("0.0.0.0", 9180)),
        ("[::1]:9180", ("::1", 9180)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9180", "host:", "host:port", "host:70000"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="metrics_address"):
        parse_address(text)


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Box, Metrics]]:
    reg = CollectorRegistry()
    box = Box(HEALTHY)
    clock = [NOW]
    metrics = install(reg, box, clock=lambda: clock[0])
    server = MetricsServer("127.0.0.1:0", reg, box, clock=lambda: clock[0], stale_after=30.0)
    server.start()
    yield server, box, metrics
    server.stop()


def _get(server: MetricsServer, path: str, accept: str = "") -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_http_metrics_endpoint(served: tuple[MetricsServer, Box, Metrics]) -> None:
    server, _, metrics = served
    metrics.api_call("list_agents", "200", 0.02)
    code, ctype, text = _get(server, "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    assert 'rpcdaemon_api_calls_total{op="list_agents",status="200"} 1.0' in text
    assert "rpcdaemon_routers_on_dead_agents 4.0" in text
    code, ctype, text = _get(server, "/metrics", accept="application/openmetrics-text")
    assert code == 200 and ctype.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_http_health_endpoints(served: tuple[MetricsServer, Box, Metrics]) -> None:
    server, box, _ = served
    code, ctype, text = _get(server, "/healthz")
    body: dict[str, Any] = json.loads(text)
    assert (code, ctype, body["status"]) == (200, "application/json", "ok")
    box.snap = replace(HEALTHY, bus_connected=False, is_leader=False, last_api_success_at=None)
    code, _, text = _get(server, "/healthz")
    body = json.loads(text)
    assert code == 503 and body["reasons"] == ["AMQP consumer not connected"]
    code, _, text = _get(server, "/readyz")
    body = json.loads(text)
    assert code == 503 and body["role"] == "standby"
    assert body["reasons"] == ["no successful Neutron API call yet"]
    box.snap = HEALTHY
    assert _get(server, "/readyz")[0] == 200
    assert _get(server, "/nope")[0] == 404


def test_http_health_when_the_status_source_fails() -> None:
    reg = CollectorRegistry()
    server = MetricsServer("127.0.0.1:0", reg, _boom)
    server.start()
    try:
        code, _, text = _get(server, "/healthz")
        assert code == 503 and "reactor not ready" in json.loads(text)["reasons"][0]
        assert _get(server, "/metrics")[0] == 200
    finally:
        server.stop()


def test_http_health_reports_tick_failures_and_dead_threads(
    served: tuple[MetricsServer, Box, Metrics],
) -> None:
    server, box, _ = served
    box.snap = replace(HEALTHY, tick_failures=5, last_tick_error="OSError(24)", dead_threads=("x",))
    code, _, text = _get(server, "/healthz")
    body = json.loads(text)
    assert code == 503
    assert (body["tick_failures"], body["last_tick_error"]) == (5, "OSError(24)")
    assert body["dead_threads"] == ["x"] and len(body["reasons"]) == 2


def test_http_head_and_wrong_methods(served: tuple[MetricsServer, Box, Metrics]) -> None:
    server, _, _ = served
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/healthz", method="HEAD")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b""
        assert int(resp.headers["Content-Length"]) > 0
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics", data=b"x=1", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 405 and err.value.headers["Allow"] == "GET, HEAD"


def test_http_endpoint_counts_its_answers(served: tuple[MetricsServer, Box, Metrics]) -> None:
    server, _, _ = served
    assert _get(server, "/nope")[0] == 404
    _, _, text = _get(server, "/metrics")
    assert 'rpcdaemon_http_responses_total{code="404"} 1.0' in text
    assert server.registry.get_sample_value("rpcdaemon_http_responses_total", {"code": "200"}) == 1
