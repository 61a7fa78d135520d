"""The node-death fast path's settings: the detector's policy from ``[Daemon]``, and the
timer ratios ``check-config`` warns about.

Two ratios make the timers unsafe or the fast path useless, and neither is an error (the
daemon works, only worse than it could):

* ``report_interval > agent_down_time / 2``: one late heartbeat (a GC pause, a slow
  neutron-server: agents *call* ``report_state`` and wait) and the agent looks dead. Neutron's
  own help for ``report_interval`` asks for half of ``agent_down_time`` or less.
* ``suspect_multiple x report_interval + probe_timeout >= agent_down_time``: an agent is
  suspect no sooner than ``suspect_multiple`` report intervals after its last heartbeat and
  the probe then waits up to ``probe_timeout``; a verdict that late is never ahead of
  ``agent_down_time``, so the fast path cannot act before today's rule does (it is clamped
  there, see :func:`rpcdaemon.core.rhythm.suspect_after`). The learned jitter margin and the
  check interval only add to the left side: this is the best case.

Each planner is checked with the numbers it runs with: its own ``agent_down_time`` (the
option, else its conffile's, else 75) and the ``[agent] report_interval`` of its conffile
(else Neutron's 30). The same finding for L3Agent and DHCPAgent is one warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rpcdaemon.config import options as o
from rpcdaemon.core.detection import DetectorPolicy
from rpcdaemon.settings import AgentPluginSettings

_SECTIONS = "\x00sections\x00"  # replaced by "[L3Agent]" or "[L3Agent] and [DHCPAgent]"


def detector_policy(value: Callable[[str, str], Any]) -> DetectorPolicy:
    """The [Daemon] options of the fast path, as the pure detector takes them.
    ``agent_down_time`` is left at its default: the runtime sets it from the planners."""
    return DetectorPolicy(
        enabled=value(o.DAEMON, "fast_failover"),
        probe_timeout=value(o.DAEMON, "probe_timeout"),
        suspect_multiple=value(o.DAEMON, "suspect_multiple"),
        min_agents=value(o.DAEMON, "node_min_agents"),
        quiet_hosts=value(o.DAEMON, "disruption_hosts"),
        quiet_fraction=value(o.DAEMON, "disruption_fraction"),
    )


@dataclass(frozen=True)
class _Timer:
    """A number of seconds and where it came from, as a warning shows it."""

    seconds: float
    source: str

    def __str__(self) -> str:
        return f"{self.seconds:g} s ({self.source})"


def _down_time(agent: AgentPluginSettings, written_in: str | None) -> _Timer:
    conffile = agent.neutron.path
    if written_in is not None:
        source = f"set in [{written_in}]"
    elif agent.neutron.agent_down_time_set:
        source = f"{conffile} [DEFAULT] agent_down_time"
    else:
        source = "Neutron's default" + (f", not read from {conffile}" if conffile else "")
    return _Timer(agent.agent_down_time, source)


def _report_interval(agent: AgentPluginSettings) -> _Timer:
    neutron = agent.neutron
    if neutron.report_interval_set:
        source = f"{neutron.path} [agent] report_interval"
    else:
        source = "Neutron's default" + (f", not read from {neutron.path}" if neutron.path else "")
    return _Timer(neutron.report_interval, source)


def timer_warnings(
    path: str,
    policy: DetectorPolicy,
    agents: Sequence[AgentPluginSettings],
    *,
    down_written_in: Mapping[str, str],
) -> list[str]:
    """The timer ratios above, one line each, naming the files, sections and numbers.
    ``down_written_in``: planner section -> the section of ``path`` its ``agent_down_time``
    is written in (absent: it comes from the conffile or Neutron's default)."""
    found: dict[str, list[str]] = {}
    for agent in agents:
        down = _down_time(agent, down_written_in.get(agent.name))
        report = _report_interval(agent)
        if report.seconds > down.seconds / 2:
            found.setdefault(
                f"{path}: {_SECTIONS}: report_interval {report} is more than half of "
                f"agent_down_time {down}: one late heartbeat makes an agent look dead, and "
                "agents flap between alive and dead (Neutron asks for report_interval <= "
                "agent_down_time / 2); lower report_interval where the agents read it, or "
                "raise agent_down_time",
                [],
            ).append(agent.name)
        suspect = policy.suspect_multiple * report.seconds
        earliest = suspect + policy.probe_timeout
        if policy.enabled and earliest >= down.seconds:
            found.setdefault(
                f"{path}: [{o.DAEMON}] fast_failover: for {_SECTIONS}, an agent is suspect "
                f"no sooner than suspect_multiple {policy.suspect_multiple:g} x "
                f"report_interval {report} = {suspect:g} s, and probe_timeout "
                f"{policy.probe_timeout:g} s later is {earliest:g} s, not before "
                f"agent_down_time {down}: the fast path can never act before agent_down_time "
                "does; lower suspect_multiple or probe_timeout, raise agent_down_time, or set "
                "fast_failover = false",
                [],
            ).append(agent.name)
    return [
        text.replace(_SECTIONS, " and ".join(f"[{name}]" for name in sections))
        for text, sections in found.items()
    ]
