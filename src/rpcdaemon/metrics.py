"""Prometheus metrics and the /metrics, /healthz, /readyz HTTP endpoint.

``Metrics`` owns the counters and histograms, created on an injected CollectorRegistry
(tests use a fresh one each). Gauges are not set by hand: a custom collector reads a
``StatusSnapshot`` from a callable at scrape time, so they can never go stale.
``MetricsServer`` is a stdlib ThreadingHTTPServer in a daemon thread.
See docs/operations.md for every metric and the health semantics.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from rpcdaemon.core.status import StatusSnapshot, age

logger = logging.getLogger(__name__)

StatusSource = Callable[[], StatusSnapshot]
CodecStatsSource = Callable[[], Mapping[str, int]]

API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DETECTION_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0, 180.0, 300.0, 600.0)
FAILOVER_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """The daemon's event metrics. Every method is thread-safe and never raises."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._messages = Counter(
            "rpcdaemon_messages",
            "Bus messages received, by decode result and rejection reason.",
            ["result", "reason"],
            registry=registry,
        )
        self._heartbeats = Counter(
            "rpcdaemon_heartbeats",
            "Agent report_state heartbeats received, by Neutron agent_type.",
            ["agent_type"],
            registry=registry,
        )
        self._actions = Counter(
            "rpcdaemon_actions",
            "Scheduling actions, by plugin, verb and result (ok|already|failed|skipped).",
            ["plugin", "verb", "result"],
            registry=registry,
        )
        self._api_calls = Counter(
            "rpcdaemon_api_calls",
            "Neutron API calls, by operation and HTTP status (or timeout|connection|error).",
            ["op", "status"],
            registry=registry,
        )
        self._api_seconds = Histogram(
            "rpcdaemon_api_call_seconds",
            "Neutron API call duration, by operation (failed calls included).",
            ["op"],
            buckets=API_BUCKETS,
            registry=registry,
        )
        self._passes = Counter(
            "rpcdaemon_passes",
            "Planning passes, by plugin and what triggered them.",
            ["plugin", "trigger"],
            registry=registry,
        )
        self._detection = Histogram(
            "rpcdaemon_detection_latency_seconds",
            "From the last heartbeat received from an agent to declaring it dead.",
            ["agent_type"],
            buckets=DETECTION_BUCKETS,
            registry=registry,
        )
        self._failover = Histogram(
            "rpcdaemon_failover_duration_seconds",
            "From declaring an agent dead to all its routers/networks re-homed.",
            ["agent_type"],
            buckets=FAILOVER_BUCKETS,
            registry=registry,
        )
        self._breaker = Counter(
            "rpcdaemon_breaker_trips",
            "Times the circuit breaker opened (too many agents of one type dead at once).",
            ["agent_type"],
            registry=registry,
        )

    def message_decoded(self) -> None:
        self._messages.labels(result="decoded", reason="").inc()

    def message_rejected(self, reason: str) -> None:
        self._messages.labels(result="rejected", reason=reason).inc()

    def heartbeat(self, agent_type: str) -> None:
        self._heartbeats.labels(agent_type=agent_type).inc()

    def action(self, *, plugin: str, verb: str, result: str) -> None:
        self._actions.labels(plugin=plugin, verb=verb, result=result).inc()

    def api_call(self, op: str, status: str, seconds: float) -> None:
        """An ``ApiObserver`` for rpcdaemon.adapters.neutron."""
        self._api_calls.labels(op=op, status=status).inc()
        self._api_seconds.labels(op=op).observe(max(0.0, seconds))

    def planning_pass(self, *, plugin: str, trigger: str) -> None:
        self._passes.labels(plugin=plugin, trigger=trigger).inc()

    def detection_latency(self, agent_type: str, seconds: float) -> None:
        self._detection.labels(agent_type=agent_type).observe(max(0.0, seconds))

    def failover_duration(self, agent_type: str, seconds: float) -> None:
        self._failover.labels(agent_type=agent_type).observe(max(0.0, seconds))

    def breaker_trip(self, agent_type: str) -> None:
        self._breaker.labels(agent_type=agent_type).inc()


class StatusCollector(Collector):
    """Gauges read from a StatusSnapshot at scrape time (and, optionally, codec counters).

    If the bus consumer counts decodes itself (``CodecStats``), pass its ``snapshot`` as
    ``codec_stats`` and do NOT also call ``Metrics.message_*``: the counts are exported as
    ``rpcdaemon_bus_messages_total`` from that source.
    """

    def __init__(
        self,
        status: StatusSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        codec_stats: CodecStatsSource | None = None,
    ) -> None:
        self._status = status
        self._clock = clock
        self._codec_stats = codec_stats

    def describe(self) -> Iterable[Any]:
        return ()  # unchecked collector: families depend on the snapshot

    def collect(self) -> Iterable[Any]:
        try:
            snap = self._status()
        except Exception:
            logger.exception("status snapshot failed during a scrape")
            return
        now = self._clock()
        agents = GaugeMetricFamily(
            "rpcdaemon_agents",
            "Agents by Neutron agent_type and our liveness verdict.",
            labels=["agent_type", "liveness"],
        )
        for (agent_type, liveness), count in sorted(snap.agents.items()):
            agents.add_metric([agent_type, liveness], count)
        yield agents
        yield _gauge(
            "rpcdaemon_routers_on_dead_agents",
            "Routers hosted by no live L3 agent.",
            snap.routers_on_dead_agents,
        )
        yield _gauge(
            "rpcdaemon_networks_missing_agents",
            "DHCP networks hosted by fewer live DHCP agents than the policy wants.",
            snap.networks_missing_agents,
        )
        breaker = GaugeMetricFamily(
            "rpcdaemon_breaker_open",
            "1 while the circuit breaker holds back all actions for this agent_type.",
            labels=["agent_type"],
        )
        for agent_type, is_open in sorted(snap.breaker_open.items()):
            breaker.add_metric([agent_type], 1.0 if is_open else 0.0)
        yield breaker
        yield _gauge("rpcdaemon_leader", "1 if this instance may act.", snap.is_leader)
        yield _gauge(
            "rpcdaemon_coordination_connected",
            "1 if the leader election backend answers (1 for a single instance).",
            snap.coordination_connected,
        )
        yield _gauge("rpcdaemon_bus_connected", "1 if consuming from AMQP.", snap.bus_connected)
        yield _gauge("rpcdaemon_dry_run", "1 if running with --dry-run.", snap.dry_run)
        yield _gauge(
            "rpcdaemon_in_grace_period",
            "1 while listening for less than agent_down_time: no agent is declared dead.",
            snap.in_grace,
        )
        yield _gauge(
            "rpcdaemon_pending_tasks", "Tasks planned and not yet finished.", snap.pending_tasks
        )
        for name, help_text, instant in (
            (
                "rpcdaemon_last_tick_age_seconds",
                "Since the reactor loop last ran.",
                snap.last_tick_at,
            ),
            (
                "rpcdaemon_last_pass_age_seconds",
                "Since a planning pass last completed.",
                snap.last_pass_at,
            ),
            (
                "rpcdaemon_last_api_success_age_seconds",
                "Since a Neutron API call last succeeded.",
                snap.last_api_success_at,
            ),
        ):
            seconds = age(instant, now)
            yield _gauge(
                name, help_text + " NaN if never.", math.nan if seconds is None else seconds
            )
        if self._codec_stats is not None:
            yield from self._codec_families()

    def _codec_families(self) -> Iterable[Any]:
        assert self._codec_stats is not None
        try:
            stats = dict(self._codec_stats())
        except Exception:
            logger.exception("codec stats failed during a scrape")
            return
        family = CounterMetricFamily(
            "rpcdaemon_bus_messages",
            "Bus messages seen by the consumer, by decode result and rejection reason.",
            labels=["result", "reason"],
        )
        family.add_metric(["decoded", ""], stats.get("decoded", 0))
        for key, value in sorted(stats.items()):
            if key.startswith("rejected."):
                family.add_metric(["rejected", key.removeprefix("rejected.")], value)
        yield family
        yield CounterMetricFamily(
            "rpcdaemon_handler_errors",
            "Decoded messages whose handler raised (logged, acked).",
            value=stats.get("handler_errors", 0),
        )


def _gauge(name: str, help_text: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=float(value))


# -- health -----------------------------------------------------------------------------


def health(snap: StatusSnapshot, now: float, *, stale_after: float) -> tuple[bool, dict[str, Any]]:
    """/healthz: the process is doing its job (consuming, and the reactor loop turns)."""
    reasons = []
    if not snap.bus_connected:
        reasons.append("AMQP consumer not connected")
    tick_age = age(snap.last_tick_at, now)
    if tick_age is None:
        reasons.append("reactor has not ticked yet")
    elif tick_age > stale_after:
        reasons.append(f"reactor last ticked {tick_age:.1f}s ago (limit {stale_after:g}s)")
    body: dict[str, Any] = {
        "status": "fail" if reasons else "ok",
        "bus_connected": snap.bus_connected,
        "last_tick_age": tick_age,
        "leader": snap.is_leader,
        "dry_run": snap.dry_run,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body


def readiness(
    snap: StatusSnapshot, now: float, *, api_stale_after: float
) -> tuple[bool, dict[str, Any]]:
    """/readyz: leader or healthy standby, and the Neutron API answered recently."""
    reasons = []
    if snap.is_leader:
        role = "leader"
    elif snap.coordination_connected:
        role = "standby"
    else:
        role = "disconnected"
        reasons.append("leader election backend unreachable: cannot act or take over")
    api_age = age(snap.last_api_success_at, now)
    if api_age is None:
        reasons.append("no successful Neutron API call yet")
    elif api_age > api_stale_after:
        reasons.append(f"last Neutron API success {api_age:.1f}s ago (limit {api_stale_after:g}s)")
    body: dict[str, Any] = {
        "status": "fail" if reasons else "ok",
        "role": role,
        "last_api_success_age": api_age,
        "dry_run": snap.dry_run,
    }
    if reasons:
        body["reasons"] = reasons
    return not reasons, body


# -- HTTP server ------------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) -> (host, port)."""
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"metrics_address {address!r}: expected host:port, e.g. 127.0.0.1:9180")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port_text)  # ":port": all interfaces


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encoder(owner.registry))
            elif path in ("/healthz", "/readyz"):
                ok, body = owner.check(path)
                self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"try /metrics, /healthz, /readyz\n")
        except Exception:
            logger.exception("metrics endpoint %s failed", path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n")

    def _send(self, code: int, content_type: str, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None  # scrapes every few seconds would flood the log; errors are logged above


class MetricsServer:
    """Serves /metrics (the registry), /healthz and /readyz (from the status source)."""

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        status: StatusSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        stale_after: float = 30.0,
        api_stale_after: float = 300.0,
    ) -> None:
        self.registry = registry
        self._address = parse_address(address)
        self._status = status
        self._clock = clock
        self._stale_after = stale_after
        self._api_stale_after = api_stale_after
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``host:0``); only valid after start()."""
        if self._httpd is None:
            raise RuntimeError("MetricsServer not started")
        return int(self._httpd.server_address[1])

    def check(self, path: str) -> tuple[bool, dict[str, Any]]:
        try:
            snap = self._status()
        except Exception as exc:
            logger.exception("status snapshot failed for %s", path)
            return False, {"status": "fail", "reasons": [f"status unavailable: {exc!r}"]}
        now = self._clock()
        if path == "/healthz":
            return health(snap, now, stale_after=self._stale_after)
        return readiness(snap, now, api_stale_after=self._api_stale_after)

    def start(self) -> None:
        self._httpd = _Server(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="rpcdaemon-metrics",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "metrics on http://%s:%d/metrics (/healthz, /readyz)", self._address[0], self.port
        )

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._httpd = None


def install(
    registry: CollectorRegistry,
    status: StatusSource,
    *,
    clock: Callable[[], float] = time.monotonic,
    codec_stats: CodecStatsSource | None = None,
) -> Metrics:
    """Create the event metrics and register the status collector on ``registry``."""
    metrics = Metrics(registry)
    registry.register(StatusCollector(status, clock=clock, codec_stats=codec_stats))
    return metrics
