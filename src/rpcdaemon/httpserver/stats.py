"""The endpoint's own counters as Prometheus families (answers by code, drops by reason)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class HttpStatsCollector(Collector):
    """The HTTP endpoint's own counters (answers by status code, connections dropped)."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        stats = self._stats()
        codes = CounterMetricFamily(
            "rpcdaemon_http_responses",
            "Answers of the /metrics, /healthz, /readyz endpoint, by HTTP status.",
            labels=["code"],
        )
        dropped = CounterMetricFamily(
            "rpcdaemon_http_connections_dropped",
            "Connections closed without a normal answer, by reason (timeout = no complete "
            "request head within the read timeout; evicted = closed to make room; busy; "
            "too_large; incomplete = client closed first; reset; write_failed; no_fd).",
            labels=["reason"],
        )
        for key, value in sorted(stats.items()):
            kind, _, label = key.partition(".")
            if kind == "code":
                codes.add_metric([label], value)
            elif kind == "dropped" and label != "stopping":
                dropped.add_metric([label], value)
        yield codes
        yield dropped
