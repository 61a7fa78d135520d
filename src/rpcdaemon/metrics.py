"""Prometheus metrics and the /metrics, /healthz, /readyz endpoint.

``Metrics`` owns the counters and histograms, created on an injected CollectorRegistry
(tests use a fresh one each). Gauges are not set by hand: a custom collector reads a
``StatusSnapshot`` from a callable at scrape time, so they can never go stale.
``MetricsServer`` routes the three paths on a bounded :class:`rpcdaemon.httpserver.HttpServer`.
The /healthz and /readyz verdicts are pure functions in :mod:`rpcdaemon.core.status`.
See docs/operations.md for every metric and the health semantics.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from rpcdaemon.core.status import MAX_TICK_FAILURES, StatusSnapshot, age, health, readiness
from rpcdaemon.httpserver import HttpLimits, HttpServer, HttpStatsCollector, Request, Response

__all__ = [
    "Metrics",
    "MetricsServer",
    "StatusCollector",
    "health",
    "install",
    "parse_address",
    "readiness",
]

from rpcdaemon.core.addresses import parse_address

logger = logging.getLogger(__name__)

StatusSource = Callable[[], StatusSnapshot]
DocumentSource = Callable[[], Mapping[str, Any]]
"""The ``/status`` body (the status model's JSON); raising LookupError means "not yet"."""
CodecStatsSource = Callable[[], Mapping[str, int]]

API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DETECTION_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0, 180.0, 300.0, 600.0)
FAILOVER_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """The daemon's event metrics. Every method is thread-safe and never raises."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
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

    The bus consumer counts decodes itself (``CodecStats``): pass its ``snapshot`` as
    ``codec_stats`` and the counts are exported as ``rpcdaemon_bus_messages_total``.
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
        yield from _health_families(snap)
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


def _health_families(snap: StatusSnapshot) -> Iterable[GaugeMetricFamily]:
    yield _gauge(
        "rpcdaemon_tick_failures",
        "Consecutive reactor ticks that raised (0 once a tick completes).",
        snap.tick_failures,
    )
    yield _gauge(
        "rpcdaemon_dead_threads", "Needed threads that have exited.", len(snap.dead_threads)
    )
    alive = GaugeMetricFamily(
        "rpcdaemon_thread_alive", "1 if this needed thread is running.", labels=["thread"]
    )
    for name in sorted(set(snap.watched_threads) | set(snap.dead_threads)):
        alive.add_metric([name], 0.0 if name in snap.dead_threads else 1.0)
    yield alive
    yield _gauge(
        "rpcdaemon_consumer_lag_messages",
        "Messages waiting in our bus queue, not yet delivered to us. NaN if not measured.",
        math.nan if snap.consumer_lag_messages is None else snap.consumer_lag_messages,
    )
    yield _gauge(
        "rpcdaemon_consumer_lag_seconds",
        "Receive time minus publish time of the latest heartbeat handled. NaN if not measured.",
        math.nan if snap.consumer_lag_seconds is None else snap.consumer_lag_seconds,
    )
    yield _gauge(
        "rpcdaemon_unknown_agents",
        "Agents heard on the bus that Neutron's agent list does not know.",
        snap.unknown_agents,
    )


def _gauge(name: str, help_text: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=float(value))


# -- HTTP endpoint --------------------------------------------------------------------


class MetricsServer:
    """Serves /metrics (the registry), /healthz and /readyz (from the status source).

    ``clock`` is the status clock (ages in the verdicts); the HTTP timeouts always use
    the real monotonic clock. Registers the endpoint's own counters on ``registry``.
    """

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        status: StatusSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        stale_after: float = 30.0,
        api_stale_after: float = 300.0,
        max_tick_failures: int = MAX_TICK_FAILURES,
        limits: HttpLimits | None = None,
        status_document: DocumentSource | None = None,
    ) -> None:
        self.registry = registry
        self._document = status_document
        self._address = parse_address(address)
        self._status = status
        self._clock = clock
        self._stale_after = stale_after
        self._api_stale_after = api_stale_after
        self._max_tick_failures = max_tick_failures
        self._next_error_log = 0.0
        routes = {"/metrics": self._metrics, "/healthz": self._probe, "/readyz": self._probe}
        if status_document is not None:
            routes["/status"] = self._status_json
        self._http = HttpServer(
            self._address,
            routes,
            limits=limits,
            name="rpcdaemon-metrics",
        )
        registry.register(HttpStatsCollector(self._http.stats))

    @property
    def port(self) -> int:
        """The bound port (useful with ``host:0``); only valid after start()."""
        return self._http.port

    @property
    def http(self) -> HttpServer:
        """The server (its ``threads()`` for a liveness watchdog, ``stats()``)."""
        return self._http

    def check(self, path: str) -> tuple[bool, dict[str, Any]]:
        try:
            snap = self._status()
        except Exception as exc:
            if time.monotonic() >= self._next_error_log:  # one traceback a minute at most
                self._next_error_log = time.monotonic() + 60.0
                logger.exception("status snapshot failed for %s", path)
            return False, {"status": "fail", "reasons": [f"status unavailable: {exc!r}"]}
        now = self._clock()
        if path == "/healthz":
            return health(
                snap, now, stale_after=self._stale_after, max_tick_failures=self._max_tick_failures
            )
        return readiness(snap, now, api_stale_after=self._api_stale_after)

    def _metrics(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(200, encoder(self.registry), content_type)

    def _probe(self, request: Request) -> Response:
        ok, body = self.check(request.path)
        return Response(200 if ok else 503, json.dumps(body).encode(), "application/json")

    def _status_json(self, request: Request) -> Response:
        """/status: the status model (``rpcdaemon status``); 503 before the first pass."""
        assert self._document is not None
        try:
            body: Mapping[str, Any] = self._document()
        except LookupError as exc:
            body, code = {"status": "unavailable", "reason": str(exc)}, 503
        except Exception as exc:
            if time.monotonic() >= self._next_error_log:
                self._next_error_log = time.monotonic() + 60.0
                logger.exception("status document failed")
            body, code = {"status": "unavailable", "reason": repr(exc)}, 503
        else:
            code = 200
        return Response(code, json.dumps(body).encode(), "application/json")

    def start(self) -> None:
        self._http.start()
        logger.info(
            "metrics on http://%s:%d/metrics (/healthz, /readyz)", self._address[0], self.port
        )

    def stop(self) -> None:
        self._http.stop()


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
