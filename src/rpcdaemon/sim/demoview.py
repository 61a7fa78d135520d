"""What ``rpcdaemon demo`` shows: its timeline, readable names, the convergence check, the final
table, and the broker it picks. No daemon here (rpcdaemon.demo wires it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT, METADATA_AGENT, OVS_AGENT

logger = logging.getLogger(__name__)

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672//"
SHORT = {L3_AGENT: "L3", DHCP_AGENT: "DHCP", OVS_AGENT: "OVS", METADATA_AGENT: "metadata"}


@dataclass
class Timeline:
    """Timestamped events, printed live (or kept for ``--json``)."""

    out: TextIO | None
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, text: str, **data: Any) -> None:
        at = time.monotonic() - self.started
        with self.lock:
            self.events.append({"t": round(at, 3), "kind": kind, "text": text, **data})
            if self.out is not None:
                print(f"[{at:6.2f}s] {text}", file=self.out, flush=True)

    def first(self, kind: str) -> dict[str, Any] | None:
        with self.lock:
            return next((e for e in self.events if e["kind"] == kind), None)


class Names:
    """Replace the simulated cloud's UUIDs by readable names in demo output."""

    def __init__(self, cloud: SimCloud) -> None:
        self._map: dict[str, str] = {}
        for agent in cloud.agents():
            kind = SHORT.get(agent["agent_type"], agent["agent_type"])
            self._map[agent["id"]] = f"{kind}@{agent['host']}"
        for router in cloud.routers():
            self._map[router["id"]] = router["name"] or router["id"][:8]
        for network in cloud.networks():
            self._map[network["id"]] = network["name"] or network["id"][:8]

    def of(self, text: str) -> str:
        for ident, name in self._map.items():
            if ident in text:
                text = text.replace(ident, name)
        return text


class DaemonTap(logging.Handler):
    """The daemon's node-death detector as timeline events: its probes, their results, its
    verdicts and its brake, read from the runtime's log records (the daemon's log, not a
    private interface). Host changes and the brake count once ``armed`` (after the strike:
    the brake holds while the daemon starts, which says nothing)."""

    LOGGER = "rpcdaemon.runtime"

    def __init__(self, timeline: Timeline, names: Names) -> None:
        super().__init__(logging.INFO)
        self._timeline = timeline
        self._names = names
        self._level: int | None = None
        self.armed = False

    def attach(self) -> None:
        target = logging.getLogger(self.LOGGER)
        self._level = target.level
        target.setLevel(logging.INFO)
        target.addHandler(self)

    def detach(self) -> None:
        target = logging.getLogger(self.LOGGER)
        target.removeHandler(self)
        if self._level is not None:
            target.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = self._kind(str(record.msg), record.getMessage())
            if kind is not None:
                self._timeline.add(kind, f"daemon: {self._names.of(record.getMessage())}")
        except Exception:  # an observer must never break the daemon's logging
            self.handleError(record)

    def _kind(self, template: str, text: str) -> str | None:
        if template.startswith("NODE DOWN"):
            return "node-dead"
        if template.startswith("node %s is back"):
            return "node-back"
        if template.startswith("node %s: every agent silent"):
            return "probe"
        if template.startswith("probe:"):
            return "probe-result"
        if not self.armed:
            return None
        if template.startswith("fast failover"):
            return "brake"
        if template == "%s" and text.startswith("node "):
            return "host"
        return None


def pick_amqp(given: str | None, *, timeout: float = 2.0) -> tuple[str, str | None]:
    """The broker URL to use and, when it is the in-process fallback, why. Given: that one.
    Else ``RPCDAEMON_AMQP_URL`` or the local RabbitMQ, if it accepts a connection now."""
    if given:
        return given, None
    url = os.environ.get("RPCDAEMON_AMQP_URL", LOCAL_AMQP)
    import kombu

    kombu_: Any = kombu  # untyped
    try:
        with kombu_.Connection(url, connect_timeout=timeout) as conn:
            conn.connect()
    except Exception as exc:  # no broker: the in-process one, without the probe
        return "memory://", f"no RabbitMQ at {masked_url(url)} ({type(exc).__name__})"
    return url, None


def masked_url(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, userinfo = head.partition("://")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:**@{tail}"


def converged(cloud: SimCloud, dead: Iterable[str]) -> tuple[bool, list[str]]:
    """Every router on a live L3 agent; no DHCP network on a dead DHCP agent; every DHCP
    network on every live DHCP agent. ``dead``: the ids of the agents that are gone."""
    gone = set(dead)
    problems: list[str] = []
    agents = cloud.agents()
    live_l3 = {a["id"] for a in agents if a["agent_type"] == L3_AGENT and a["id"] not in gone}
    live_dhcp = {a["id"] for a in agents if a["agent_type"] == DHCP_AGENT and a["id"] not in gone}
    for router in cloud.routers():
        if not cloud.router_agents(router["id"]) & live_l3:
            problems.append(f"router {router['name'] or router['id']} has no live L3 agent")
    for network in cloud.networks():
        hosts = cloud.network_agents(network["id"])
        if hosts & gone:
            problems.append(f"network {network['name']} still on a dead DHCP agent")
        if cloud.is_dhcp_network(network["id"]) and not live_dhcp <= hosts:
            problems.append(f"network {network['name']} missing from a live DHCP agent")
    return not problems, problems


def table(cloud: SimCloud, dead: Iterable[str]) -> list[str]:
    """L3 and DHCP agents with what they host, then every host and its agents."""
    gone = set(dead)
    rows = []
    names = {r["id"]: r["name"] for r in cloud.routers()}
    nets = {n["id"]: n["name"] for n in cloud.networks()}
    agents = sorted(cloud.agents(), key=lambda a: (a["agent_type"], a["host"]))
    for agent in agents:
        if agent["agent_type"] == L3_AGENT:
            hosted = sorted(names.get(r, r) for r in cloud.routers_on(agent["id"]))
        elif agent["agent_type"] == DHCP_AGENT:
            hosted = sorted(nets.get(n, n) for n in cloud.networks_on(agent["id"]))
        else:
            continue
        state = "DEAD" if agent["id"] in gone else "alive"
        rows.append(
            f"  {agent['agent_type']:<11} {agent['host']:<9} {state:<5} "
            f"{len(hosted):>3}  {' '.join(hosted)}"
        )
    rows.append("  hosts:")
    by_host: dict[str, list[str]] = {}
    for agent in agents:
        mark = "" if agent["id"] not in gone else " (DEAD)"
        by_host.setdefault(agent["host"], []).append(
            SHORT.get(agent["agent_type"], agent["agent_type"]) + mark
        )
    for host in sorted(by_host):
        rows.append(f"    {host:<9} {', '.join(sorted(by_host[host]))}")
    return rows
