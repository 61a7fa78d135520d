"""The whole daemon, wired: plugins, bus consumer, reactor, executor, leader election,
metrics. ``rpcdaemon run`` and ``rpcdaemon demo`` both come through :func:`run`.

Threads: the bus consumer (decode, hand on, ack) → the reactor (intake, judging, the pass
schedule, passes) → the executor pool beside it (``max_concurrency`` workers shared by
every plugin, one task per resource); the metrics server and the leader elector run
beside them and read immutable snapshots. Every needed thread is watched: one that dies
stops the process with exit status 1 (its supervisor restarts it), and /healthz says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ParamSpec

from prometheus_client import CollectorRegistry

from rpcdaemon.adapters import neutron as neutron_adapter
from rpcdaemon.adapters.codec import CodecStats
from rpcdaemon.adapters.coordination import Elector, elector_from_settings
from rpcdaemon.adapters.pausestore import CachedPause, pause_store
from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.adapters.probe import RpcProber
from rpcdaemon.adapters.sdnotify import ReactorFeed, status_text
from rpcdaemon.config.api import resolve_api
from rpcdaemon.core.actions import Plan, Verb
from rpcdaemon.core.detection import DetectionStatus
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.core.events import BusMessage, Heartbeat
from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.liveness import AgentKey, Transition
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.core.statusmodel import ClusterStatus, PauseState
from rpcdaemon.core.statusview import status_document, status_model
from rpcdaemon.detectionmetrics import DetectionCollector
from rpcdaemon.metrics import Metrics, MetricsServer, install
from rpcdaemon.modelmetrics import ModelCollector
from rpcdaemon.plugins import registry
from rpcdaemon.plugins.base import Planner, Plugin
from rpcdaemon.runtime import services
from rpcdaemon.runtime.executor import ActionResult, Executor
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.runtime.watch import ELECTOR_THREAD, ThreadWatch
from rpcdaemon.settings import AgentPluginSettings, NeutronApiSettings, Settings

logger = logging.getLogger(__name__)
P = ParamSpec("P")


@dataclass(frozen=True)
class Hooks:
    """Observers for embedding the daemon (the demo, tests). All optional, all called on
    daemon threads: keep them quick."""

    on_pass: Callable[[PassReport], None] | None = None
    on_transition: Callable[[Transition], None] | None = None
    on_action: Callable[[ActionResult], None] | None = None
    on_reactor: Callable[[Reactor], None] | None = None  # called once, before it starts
    on_plan: Callable[[Plan], None] | None = None  # each planner's plan, before the gates
    on_tick: Callable[[], None] | None = None  # after every reactor tick (systemd WATCHDOG=1)
    on_ready: Callable[[], None] | None = None  # once, after the first snapshot (READY=1)


def policy_for(section: AgentPluginSettings) -> Policy:
    """The core Policy for one agent plugin's settings."""
    return Policy(
        agent_down_time=section.agent_down_time,
        max_dead_fraction=section.max_dead_fraction,
        max_moves_per_pass=section.max_moves_per_pass,
        restore_ha_redundancy=section.restore_ha_redundancy,
        dhcp_agents_per_network=section.agents_per_network,
        confirm_with_api=section.confirm_with_api,
    )


def _sections(settings: Settings, planners: Sequence[Planner]) -> dict[str, AgentPluginSettings]:
    by_name = {s.name: s for s in (settings.l3, settings.dhcp) if s is not None}
    return {p.agent_type: by_name[p.name] for p in planners if p.name in by_name}


def api_settings(settings: Settings, planners: Sequence[Planner]) -> NeutronApiSettings:
    """``settings.api`` as the loader resolved it; for Settings built by hand (tests, the
    demo, benchmarks), the same resolution from the planner sections."""
    if settings.api is not None:
        return settings.api
    sections = list(_sections(settings, planners).values())
    resolved = resolve_api(
        path=settings.path,
        cloud=settings.daemon.cloud,
        timeout=sections[0].timeout if sections else 20.0,
        agents=sections,
    )
    if resolved is None:
        raise ConfigError("no planner plugin: no Neutron API settings", option="plugins")
    return resolved


def run(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    hooks: Hooks | None = None,
    neutron: NeutronPort | None = None,
    plugins: Sequence[Plugin] | None = None,
) -> int:
    """Run until ``stop`` is set; returns the exit status. ConfigError propagates."""
    stop = stop if stop is not None else threading.Event()
    hooks = hooks or Hooks()
    if plugins is None:
        plugins = registry.load(settings)
    planners = [p for p in plugins if isinstance(p, Planner)]
    if not planners:
        return services.run(settings, stop=stop, plugins=plugins)

    sections = _sections(settings, planners)
    api = settings.api or api_settings(settings, planners)
    prom = CollectorRegistry()
    codec_stats = CodecStats()
    holder: dict[str, Reactor] = {}
    elector: Elector = elector_from_settings(settings.daemon)
    pause = CachedPause(pause_store(settings.daemon.coordination_url, settings.daemon.pause_file))
    per_network = settings.dhcp.agents_per_network if settings.dhcp is not None else None

    def model() -> ClusterStatus | None:
        reactor = holder.get("reactor")
        if reactor is None:
            return None
        return status_model(
            reactor,
            is_leader=elector.is_leader,
            coordination_connected=elector.connected,
            dry_run=settings.daemon.dry_run,
            pause=pause.get(),
            dhcp_agents_per_network=per_network,
            notes=((pause.note,) if pause.note else ()) + detection_notes(reactor.detection),
            now=time.monotonic(),
        )

    watch = ThreadWatch()

    def status() -> StatusSnapshot:
        return holder["reactor"].status(
            is_leader=elector.is_leader,
            coordination_connected=elector.connected,
            dry_run=settings.daemon.dry_run,
            watched=watch.names(),
            dead=watch.dead(),
        )

    metrics = install(prom, status, codec_stats=codec_stats.snapshot)
    # systemd: READY=1 after the first snapshot, WATCHDOG=1 from the reactor's own loop,
    # STATUS= lines, STOPPING=1 on shutdown (a no-op without NOTIFY_SOCKET)
    feed = ReactorFeed.from_env(
        status=lambda: status_text(status(), paused=pause.get() is not None)
    )
    prom.register(ModelCollector(model))
    port = neutron or neutron_adapter.connect(
        api, concurrency=settings.daemon.max_concurrency, observer=metrics.api_call
    )
    executor = Executor(
        port,
        max_concurrency=settings.daemon.max_concurrency,
        stop=stop,
        on_action=_action_observer(metrics, hooks),
    )
    tracker = _FailoverTracker(metrics)
    detection = settings.daemon.detection
    if detection.enabled and settings.daemon.amqp_url.startswith("memory://"):
        logger.info("fast failover needs an AMQP broker to probe agents: off on memory://")
        detection = replace(detection, enabled=False)
    prober = (
        RpcProber(settings.daemon.amqp_url, exchange=_control_exchange(sections))
        if detection.enabled
        else None
    )
    reactor = Reactor(
        planners=planners,
        policies={t: policy_for(s) for t, s in sections.items()},
        neutron=port,
        executor=executor,
        stop=stop,
        is_leader=lambda: elector.is_leader,
        paused=lambda: _describe_pause(pause.get()),  # paused: observe and plan, never act
        dry_run=settings.daemon.dry_run,
        check_interval=settings.daemon.check_interval,
        resync_interval=settings.daemon.resync_interval,
        full_resync_interval=settings.daemon.full_resync_interval,
        on_pass=_chain(tracker.on_pass, hooks.on_pass),
        on_transition=_chain(tracker.on_transition, hooks.on_transition),
        on_plan=hooks.on_plan,
        on_tick=_chain(feed.on_tick, hooks.on_tick),
        on_ready=_chain(feed.on_ready, hooks.on_ready),
        detection=detection,
        probe=None if prober is None else prober.probe_outcomes,
    )
    prom.register(DetectionCollector(lambda: reactor.detection))
    holder["reactor"] = reactor
    tracker.reactor = reactor
    if hooks.on_reactor is not None:
        hooks.on_reactor(reactor)

    server = (
        MetricsServer(
            settings.daemon.metrics_address,
            prom,
            status,
            status_document=_with_detection(status_document(model), reactor),
        )
        if settings.daemon.metrics_address
        else None
    )
    reactor_thread = threading.Thread(target=reactor.run, name="reactor", daemon=True)
    elector.start()
    if server is not None:
        server.start()
    reactor_thread.start()
    watch.add(reactor_thread)
    watch.add_named(services.CONSUMER_THREAD)
    if settings.daemon.coordination_url:
        watch.add_named(ELECTOR_THREAD)
    watch.add_pool(executor.dead_threads)
    try:
        exit_code = services.run(
            settings,
            stop=stop,
            plugins=plugins,
            on_message=_submitter(reactor, metrics),
            on_connection_change=reactor.connection_changed,
            stats=codec_stats,
            dead_threads=watch.dead,
            on_lag=reactor.intake.lag_measured,
        )
    finally:
        feed.on_stopping()
        stop.set()
        # No new task starts once stop is set, but a move in flight is finished (remove,
        # then add: a legacy router is never left unhosted by a shutdown we could wait for).
        # That is at most two API calls of `timeout` seconds each.
        grace = max(services.JOIN_TIMEOUT, 2 * api.timeout + 1)
        deadline = time.monotonic() + grace
        reactor_thread.join(grace)
        if reactor_thread.is_alive():
            logger.error("the reactor did not stop within %.0f s", grace)
            exit_code = 1
        if not executor.shutdown(max(0.0, deadline - time.monotonic())):
            logger.error("a task in flight did not finish within %.0f s of the stop", grace)
            exit_code = 1
        elector.stop()
        if prober is not None:
            prober.close()
        if server is not None:
            server.stop()
        feed.notifier.close()
    return exit_code


def detection_notes(status: DetectionStatus) -> tuple[str, ...]:
    """Lines for ``rpcdaemon status``: the node-death detector's verdicts and its brake."""
    if not status.enabled:
        return ("fast failover off: every death waits for agent_down_time and the API",)
    notes = [
        f"node {host}: {state.value}" for host, state in status.hosts if state.value != "quiet"
    ]
    if status.brake is not None and status.brake_kind != "listening":
        notes.append(f"fast failover held: {status.brake}")
    return tuple(notes)


def _with_detection(
    document: Callable[[], dict[str, Any]], reactor: Reactor
) -> Callable[[], dict[str, Any]]:
    """``/status`` with the node-death detector's state (``detection``)."""

    def both() -> dict[str, Any]:
        body = document()
        body["detection"] = reactor.detection.to_dict()
        return body

    return both


def _control_exchange(sections: Mapping[str, AgentPluginSettings]) -> str:
    """The exchange the agents' RPC queues are bound to: the planners' (they agree, or
    the first one's: the probe only needs one)."""
    for section in sections.values():
        return section.exchange
    return "neutron"


def _describe_pause(pause: PauseState | None) -> str | None:
    return None if pause is None else pause.describe(time.time())


def _chain(*fns: Callable[P, None] | None) -> Callable[P, None] | None:
    """One observer that calls each of ``fns`` given (None: no observer at all)."""
    live = [f for f in fns if f is not None]
    if not live:
        return None

    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        for f in live:
            f(*args, **kwargs)

    return call


def _submitter(reactor: Reactor, metrics: Metrics) -> Callable[[str, BusMessage], None]:
    def submit(_queue: str, message: BusMessage) -> None:
        event = reactor.submit(message)
        if isinstance(event, Heartbeat):
            metrics.heartbeat(event.agent_type)

    return submit


def _action_observer(metrics: Metrics, hooks: Hooks) -> Callable[[ActionResult], None]:
    def observe(result: ActionResult) -> None:
        plugin = (
            "L3Agent"
            if result.action.verb in (Verb.ADD_ROUTER, Verb.REMOVE_ROUTER)
            else "DHCPAgent"
        )
        metrics.action(plugin=plugin, verb=result.action.verb.value, result=result.outcome.value)
        if hooks.on_action is not None:
            hooks.on_action(result)

    return observe


class _FailoverTracker:
    """Pass and breaker counters, detection latency (last heartbeat → declared dead) and
    failover duration (declared dead → nothing left bound to the agent)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._declared: dict[AgentKey, float] = {}
        self._breaker_open: dict[str, bool] = {}
        self.reactor: Reactor | None = None

    def on_transition(self, change: Transition) -> None:
        if self.reactor is None:
            return
        now = time.monotonic()
        if change.new is Liveness.DEAD:
            record = self.reactor.model.get(change.key)
            if record is not None:
                self._metrics.detection_latency(change.key.agent_type, now - record.last_seen)
            self._declared[change.key] = now
        else:
            self._declared.pop(change.key, None)

    def on_pass(self, report: PassReport) -> None:
        for plan in report.plans:
            self._metrics.planning_pass(plugin=plan.plugin, trigger=report.trigger)
        for breaker in report.breakers:
            was = self._breaker_open.get(breaker.agent_type, False)
            if breaker.open and not was:
                self._metrics.breaker_trip(breaker.agent_type)
            self._breaker_open[breaker.agent_type] = breaker.open
        if report.view is None or not self._declared:
            return
        view = report.view
        for agent in view.agents.values():
            key = AgentKey.of(agent)
            since = self._declared.get(key)
            if since is None:
                continue
            hosting = view.routers_on(agent.id) or view.networks_on(agent.id)
            if not hosting:
                self._metrics.failover_duration(key.agent_type, time.monotonic() - since)
                del self._declared[key]
