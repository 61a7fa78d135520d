"""Start and stop the daemon's parts in order: plugins, then the bus consumer thread.

``run`` loads the enabled plugins, gives each one a private queue bound as it asks, hands
every decoded message to the plugin's ``observe`` (isolated: a plugin's exception is logged
and counted, never propagated), and to the optional ``on_message`` sink for the planners'
queues. It blocks until ``stop`` is set, then stops the consumer and joins it within 5 s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from rpcdaemon.adapters.amqp import BusConsumer, QueueSpec, private_queue_name
from rpcdaemon.adapters.busguard import LAG_LOG_SECONDS
from rpcdaemon.adapters.codec import CodecStats
from rpcdaemon.core.busstate import lag_limit
from rpcdaemon.core.events import BusMessage, ConsumerLag
from rpcdaemon.plugins import registry
from rpcdaemon.plugins.base import Planner, Plugin
from rpcdaemon.settings import Settings

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0
CONSUMER_THREAD = "bus-consumer"
POLL_INTERVAL = 0.5

MessageSink = Callable[[str, BusMessage], None]
"""Receives (queue purpose, message) for every message of the planners' shared queue."""

SHARED_QUEUE = "agents"
"""The purpose (and sink name) of the one queue the planners share."""


def queue_expire(settings: Settings, plugin: Plugin) -> float:
    """The plugin's ``queue_expire`` (its section's, else 60 s)."""
    for section in (settings.l3, settings.dhcp):
        if section is not None and section.name == plugin.name:
            return section.queue_expire
    if plugin.name == "Dump" and settings.dump is not None:
        return settings.dump.queue_expire
    return 60.0


def build_queues(
    settings: Settings,
    plugins: Sequence[Plugin],
    *,
    on_message: MessageSink | None = None,
    failures: registry.PluginFailures | None = None,
) -> list[QueueSpec]:
    """Private queues named ``rpcdaemon-<purpose>-<host>-<uuid8>``.

    Observers (Dump) get one queue each. The planners (L3Agent, DHCPAgent) share ONE queue
    bound with the union of their bindings: they read the same heartbeats, and a second
    copy of every report_state would only double the work of the consumer and the reactor.
    """
    specs: list[QueueSpec] = []
    planners = [p for p in plugins if isinstance(p, Planner)]
    for plugin in plugins:
        if isinstance(plugin, Planner):
            continue
        bindings = tuple(plugin.bindings())
        if not bindings:
            logger.info("plugin %s binds nothing: no queue for it", plugin.name)
            continue
        specs.append(
            QueueSpec(
                name=private_queue_name(plugin.name.lower()),
                bindings=bindings,
                expires=queue_expire(settings, plugin),
                handler=_handler([plugin], None, failures),
            )
        )
    if planners:
        bindings = tuple(dict.fromkeys(b for p in planners for b in p.bindings()))
        specs.append(
            QueueSpec(
                name=private_queue_name(SHARED_QUEUE),
                bindings=bindings,
                expires=min(queue_expire(settings, p) for p in planners),
                handler=_handler(planners, on_message, failures),
            )
        )
    return specs


def _handler(
    plugins: Sequence[Plugin],
    sink: MessageSink | None,
    failures: registry.PluginFailures | None,
) -> Callable[[BusMessage], None]:
    def handle(message: BusMessage) -> None:
        for plugin in plugins:
            registry.call_isolated(plugin.name, plugin.observe, message, failures=failures)
        if sink is not None:
            registry.call_isolated(SHARED_QUEUE, sink, SHARED_QUEUE, message, failures=failures)

    return handle


def _lag_log_seconds(settings: Settings) -> float:
    """Log consumer lag from the point where it holds deaths back (the shortest
    agent_down_time of the loaded agent plugins), so the log matches the rule."""
    times = [s.agent_down_time for s in (settings.l3, settings.dhcp) if s is not None]
    return lag_limit(min(times)) if times else LAG_LOG_SECONDS


def run(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    on_message: MessageSink | None = None,
    plugins: Sequence[Plugin] | None = None,
    on_connection_change: Callable[[bool], None] | None = None,
    stats: CodecStats | None = None,
    dead_threads: Callable[[], tuple[str, ...]] | None = None,
    on_lag: Callable[[ConsumerLag], None] | None = None,
) -> int:
    """Run until ``stop`` is set. Returns 0 after a clean stop, 1 when the consumer thread
    (or one ``dead_threads`` names: the reactor, an executor worker, the elector) died or
    did not stop in time. Raises ConfigError when a plugin cannot be loaded."""
    stop = stop if stop is not None else threading.Event()
    loaded = tuple(plugins) if plugins is not None else registry.load(settings)
    failures = registry.PluginFailures()
    queues = build_queues(settings, loaded, on_message=on_message, failures=failures)
    consumer = BusConsumer(
        settings.daemon.amqp_url,
        queues,
        prefetch=settings.daemon.prefetch,
        reconnect_max_backoff=settings.daemon.reconnect_max_backoff,
        stats=stats if stats is not None else CodecStats(),
        on_connection_change=on_connection_change,
        on_lag=on_lag,
        lag_log_seconds=_lag_log_seconds(settings),
    )
    thread = threading.Thread(target=consumer.run, name=CONSUMER_THREAD, daemon=True)
    logger.info(
        "starting: plugins %s, dry run %s",
        ", ".join(p.name for p in loaded) or "none",
        settings.daemon.dry_run,
    )
    thread.start()
    status = 0
    try:
        while not stop.wait(POLL_INTERVAL):
            if not thread.is_alive():
                logger.error("the bus consumer thread ended unexpectedly: stopping")
                status = 1
                break
            dead = dead_threads() if dead_threads is not None else ()
            if dead:
                logger.error(
                    "needed thread(s) ended unexpectedly: %s; stopping (exit status 1) so "
                    "that the supervisor restarts the daemon",
                    ", ".join(dead),
                )
                status = 1
                break
    finally:
        consumer.stop()
        thread.join(JOIN_TIMEOUT)
        if thread.is_alive():
            logger.error("the bus consumer did not stop within %.0f s", JOIN_TIMEOUT)
            status = 1
        for plugin in loaded:
            close = getattr(plugin, "close", None)
            if callable(close):
                registry.call_isolated(plugin.name, close, failures=failures)
        counts = failures.snapshot()
        if counts:
            logger.warning("plugin failures during this run: %s", counts)
        logger.info("stopped: %d messages decoded", consumer.stats.decoded)
    return status
