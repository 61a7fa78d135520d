"""Metrics of the node-death detector (read at scrape time from the reactor's last tick).

* ``rpcdaemon_fast_failover_enabled``: 1 when node deaths may be acted on in seconds;
* ``rpcdaemon_fast_failover_brake{reason}``: 1 for the reason the fast path is held now
  (``bus-down``, ``lag``, ``listening``, ``disruption``), 0 for the others;
* ``rpcdaemon_hosts{state}``: hosts the detector does not call ``ok``, by state (``quiet``:
  some agents late; ``silent``: all late, being probed; ``slow``: silent but answering;
  ``dead``: a confirmed node death);
* ``rpcdaemon_node_deaths_total``: node-death verdicts since start;
* ``rpcdaemon_probes_total{result}``: agent queues probed (``answered``, ``unanswered``),
  and probe rounds that failed on our side (``error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rpcdaemon.core.detection import DetectionStatus, HostState

logger = logging.getLogger(__name__)

BRAKES = ("bus-down", "lag", "listening", "disruption")


class DetectionCollector(Collector):
    def __init__(self, source: Callable[[], DetectionStatus | None]) -> None:
        self._source = source

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        try:
            status = self._source()
        except Exception:
            logger.exception("detection status failed during a scrape")
            return
        if status is None:
            return
        yield from families(status)


def families(status: DetectionStatus) -> Iterable[Any]:
    enabled = GaugeMetricFamily(
        "rpcdaemon_fast_failover_enabled",
        "1 when confirmed node deaths are acted on in seconds (fast_failover).",
    )
    enabled.add_metric([], 1.0 if status.enabled else 0.0)
    yield enabled
    brake = GaugeMetricFamily(
        "rpcdaemon_fast_failover_brake",
        "1 for the reason no fast node-death verdict may be drawn now.",
        labels=["reason"],
    )
    for kind in BRAKES:
        brake.add_metric([kind], 1.0 if status.brake_kind == kind else 0.0)
    yield brake
    hosts = GaugeMetricFamily(
        "rpcdaemon_hosts",
        "Hosts by the node-death detector's state (ok not counted).",
        labels=["state"],
    )
    counts: dict[HostState, int] = {s: 0 for s in HostState if s is not HostState.OK}
    for _, state in status.hosts:
        counts[state] = counts.get(state, 0) + 1
    for state, count in counts.items():
        hosts.add_metric([state.value], count)
    yield hosts
    deaths = CounterMetricFamily(
        "rpcdaemon_node_deaths", "Node-death verdicts (every agent of a host dead) since start."
    )
    deaths.add_metric([], status.node_deaths)
    yield deaths
    probes = CounterMetricFamily(
        "rpcdaemon_probes",
        "Agent queues probed, by result; error: rounds failed on our side.",
        labels=["result"],
    )
    probes.add_metric(["answered"], status.probes_answered)
    probes.add_metric(["unanswered"], status.probes_sent - status.probes_answered)
    probes.add_metric(["error"], status.probe_failures)
    yield probes
