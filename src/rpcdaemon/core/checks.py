"""``rpcdaemon check``: the status model judged by monitoring-plugin conventions (pure).

Nagios/Icinga: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line
``STATUS: text | perfdata``. CRITICAL when a router or a DHCP network is on no live agent
for longer than ``grace`` seconds (its age is the time since the latest heartbeat of the
agents it is bound to; an unbound one has no age and is critical at once). WARNING when a
breaker is open, moves are paused, the answering daemon can neither lead nor take over,
or a configured daemon does not answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.statusmodel import ClusterStatus, Stranded


class Code(int, enum.Enum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class CheckResult:
    code: Code
    text: str
    perfdata: str

    def line(self) -> str:
        """One line; the text can hold no ``|`` (it would start the perfdata)."""
        tail = f" | {self.perfdata}" if self.perfdata else ""
        return f"{self.code.name}: {plugin_text(self.text)}{tail}"


def plugin_text(text: str) -> str:
    """``text`` fit for a plugin's status line: one line, no ``|``."""
    return " ".join(text.replace("|", "/").split())


def _tolerated(item: Stranded, grace: float) -> bool:
    return grace > 0 and item.age is not None and item.age < grace


def evaluate(
    status: ClusterStatus | None,
    *,
    wall_now: float,
    grace: float = 0.0,
    daemon_error: str | None = None,
    unknown_reason: str | None = None,
) -> CheckResult:
    """Judge ``status``. ``daemon_error``: a configured daemon did not answer (then
    ``status`` comes from the API alone). ``status`` None: nothing could be read."""
    if status is None:
        why = unknown_reason or "no status available"
        if daemon_error:
            why = f"{why}; daemon: {daemon_error}"
        return CheckResult(Code.UNKNOWN, why, "")
    routers = status.routers_stranded
    networks = status.networks_stranded
    late = [s for s in status.stranded if not _tolerated(s, grace)]
    tolerated = len(status.stranded) - len(late)
    critical: list[str] = []
    late_routers = [s.id for s in late if s.kind == "router"]
    late_networks = [s.id for s in late if s.kind == "network"]
    if late_routers:
        critical.append(f"{len(late_routers)} router(s) on no live agent: {_few(late_routers)}")
    if late_networks:
        critical.append(
            f"{len(late_networks)} DHCP network(s) on no live agent: {_few(late_networks)}"
        )
    warning: list[str] = []
    opened = sorted(t for t, is_open in status.breakers.items() if is_open)
    if opened:
        warning.append(f"circuit breaker open for {', '.join(opened)}")
    if status.paused(wall_now):
        assert status.pause is not None
        warning.append(f"automatic moves {status.pause.describe(wall_now)}")
    if status.leader is False and status.coordination_connected is False:
        warning.append("no instance can lead: the coordination backend is unreachable")
    if daemon_error:
        warning.append(f"daemon not answering ({daemon_error}); judged from the API alone")
    if tolerated:
        warning.append(f"{tolerated} on no live agent within the {grace:g}s grace")
    dead = sum(1 for a in status.agents if a.liveness is Liveness.DEAD)
    alive = sum(1 for a in status.agents if a.liveness is Liveness.ALIVE)
    perf = " ".join(
        (
            f"routers_on_dead_agents={len(routers)};;0",
            f"networks_on_dead_agents={len(networks)};;0",
            f"networks_short={len(status.short_networks)}",
            f"agents_alive={alive}",
            f"agents_dead={dead}",
            f"paused={int(status.paused(wall_now))};0",
        )
    )
    source = f" [{status.source}]"
    if critical:
        return CheckResult(Code.CRITICAL, "; ".join(critical + warning) + source, perf)
    if warning:
        return CheckResult(Code.WARNING, "; ".join(warning) + source, perf)
    text = (
        f"{alive} agents alive, {dead} dead; every router and DHCP network on a live agent" + source
    )
    return CheckResult(Code.OK, text, perf)


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")
