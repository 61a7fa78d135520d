"""Gauges from the status model that openstack-exporter lacks (read at scrape time).

openstack-exporter's ``openstack_neutron_agent_state`` is Neutron's own ``alive`` flag;
these are judged by rpcdaemon's clock (the bus), and add what an operator needs at 3 a.m.:

* ``rpcdaemon_host_agents_up{host, agent_type}``: agents of that type on that host alive
  by our verdict and admin up (0 when the host's agent is dead, unknown or disabled);
* ``rpcdaemon_resources_on_dead_agents{kind}``: routers (``kind="router"``) and DHCP
  networks (``kind="network"``) hosted only by dead agents (or none);
* ``rpcdaemon_dhcp_networks_by_live_agents{live_agents}``: DHCP networks by the number of
  live DHCP agents serving them (the distribution: ``"0"`` is an outage);
* ``rpcdaemon_paused`` (1 while automatic moves are paused) and
  ``rpcdaemon_pause_remaining_seconds`` (+Inf until resumed; 0 when not paused).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rpcdaemon.core.ids import AgentType
from rpcdaemon.core.statusmodel import ClusterStatus

logger = logging.getLogger(__name__)

ModelSource = Callable[[], "ClusterStatus | None"]


class ModelCollector(Collector):
    def __init__(self, model: ModelSource, *, wall: Callable[[], float] = time.time) -> None:
        self._model = model
        self._wall = wall

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        try:
            status = self._model()
        except Exception:
            logger.exception("status model failed during a scrape")
            return
        if status is None:
            return
        yield from families(status, self._wall())


def families(status: ClusterStatus, wall_now: float) -> Iterable[GaugeMetricFamily]:
    up = GaugeMetricFamily(
        "rpcdaemon_host_agents_up",
        "Agents on the host alive by rpcdaemon's clock and admin up, by agent_type.",
        labels=["host", "agent_type"],
    )
    counts: dict[tuple[str, str], int] = {}
    for agent in status.agents:
        key = (agent.host, agent.agent_type)
        counts[key] = counts.get(key, 0) + (1 if agent.live else 0)
    for (host, agent_type), count in sorted(counts.items()):
        up.add_metric([host, agent_type], count)
    yield up
    dead = GaugeMetricFamily(
        "rpcdaemon_resources_on_dead_agents",
        "Routers and DHCP networks hosted only by dead agents (or by none).",
        labels=["kind"],
    )
    dead.add_metric(["router"], len(status.routers_stranded))
    dead.add_metric(["network"], len(status.networks_stranded))
    yield dead
    dist = GaugeMetricFamily(
        "rpcdaemon_dhcp_networks_by_live_agents",
        "DHCP networks by the number of live DHCP agents serving them.",
        labels=["live_agents"],
    )
    live_dhcp = {a.id: a for a in status.agents if a.agent_type == AgentType.DHCP.value and a.live}
    by_network: dict[str, int] = {}
    for agent in status.agents:
        if agent.agent_type != AgentType.DHCP.value:
            continue
        for network in agent.hosted:
            by_network.setdefault(network, 0)
            if agent.id in live_dhcp:
                by_network[network] += 1
    for stranded in status.networks_stranded:
        by_network.setdefault(stranded.id, 0)
    histogram: dict[int, int] = {}
    for count in by_network.values():
        histogram[count] = histogram.get(count, 0) + 1
    for live, networks in sorted(histogram.items()):
        dist.add_metric([str(live)], networks)
    yield dist
    paused = status.paused(wall_now)
    yield GaugeMetricFamily(
        "rpcdaemon_paused", "1 while automatic moves are paused.", value=float(paused)
    )
    remaining = 0.0
    if paused and status.pause is not None:
        until = status.pause.until
        remaining = math.inf if until is None else max(0.0, until - wall_now)
    yield GaugeMetricFamily(
        "rpcdaemon_pause_remaining_seconds",
        "Seconds until the pause expires (+Inf: until resumed; 0: not paused).",
        value=remaining,
    )
