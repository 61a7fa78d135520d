"""The range of every numeric option, with the reason for it.

An option with the same name means the same thing in every section it appears in (``timeout``
in [Daemon], [L3Agent] and [DHCPAgent]; ``queue_expire`` in the plugin sections), so the
table is keyed by name. The loader refuses a value outside its range (and any non-finite
number) with one line naming file, section, option, value and range; ``sample-config`` and
docs/configuration.md print the range and the reason from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    why: str
    low_open: bool = False  # True: low itself is refused (a fraction > 0)

    def admits(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def text(self, unit: str = "") -> str:
        low, high = _fmt(self.low), _fmt(self.high)
        if self.low_open:
            return f"greater than {low} and at most {high}{unit}"
        return f"from {low} to {high}{unit}"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


# RabbitMQ x-expires is an integer of milliseconds; we stay within a signed 32-bit field.
_MAX_EXPIRE_S = float((2**31 - 1) // 1000)

BOUNDS: dict[str, Bound] = {
    "check_interval": Bound(
        0.05, 60, "more often burns CPU for nothing; less often detects dead agents late"
    ),
    "max_concurrency": Bound(
        1, 256, "each call in flight holds a thread and an HTTP connection to Neutron"
    ),
    "resync_interval": Bound(1, 86400, "at least one resync a day; at most one a second"),
    "full_resync_interval": Bound(1, 604800, "at least one full resync a week"),
    "reconnect_max_backoff": Bound(
        0.5, 3600, "a retry at least every hour, and no reconnect storm"
    ),
    "prefetch": Bound(1, 65535, "AMQP basic.qos prefetch-count is a 16-bit field"),
    "probe_timeout": Bound(
        0.1, 60, "a live agent answers in milliseconds; a longer wait only delays the verdict"
    ),
    "suspect_multiple": Bound(
        1.05,
        10,
        "nearer 1, ordinary jitter makes agents suspect; 10 intervals is past any sane "
        "agent_down_time",
    ),
    "node_min_agents": Bound(
        2, 64, "one agent silent alone is a crashed process, never a node death"
    ),
    "disruption_hosts": Bound(1, 100000, "more than any cloud's hosts"),
    "disruption_fraction": Bound(0.01, 1, "a fraction of all the hosts that run agents"),
    "timeout": Bound(
        1,
        3600,
        "a Neutron call shorter than 1 s fails on a loaded cloud; an hour-long one stalls failover",
    ),
    "queue_expire": Bound(
        1, _MAX_EXPIRE_S, "RabbitMQ x-expires: whole milliseconds in a signed 32-bit integer"
    ),
    "agent_down_time": Bound(1, 86400, "a heartbeat is expected every few seconds"),
    # neutron.conf [agent] report_interval (read, not an option of ours); Neutron's 0 turns
    # the agents' state reports off, which leaves nothing to judge
    "report_interval": Bound(0, 86400, "0 turns the agents' heartbeats off", low_open=True),
    "max_dead_fraction": Bound(
        0.01, 1, "a fraction of the agents; below 1% one dead agent trips it in any cloud"
    ),
    "max_moves_per_pass": Bound(1, 100000, "more than any cloud's routers or networks"),
    "agents_per_network": Bound(1, 1000, "more than any cloud's DHCP agents"),
}


# AMQP exchange names, routing keys and queue names are shortstr: at most 255 bytes.
AMQP_SHORTSTR = 255
AMQP_NAMES = frozenset({"exchange", "queue", "routing_key", "routing_keys", "notification_topic"})

# Options whose value is one word of a fixed set (case-insensitive; stored lower-case).
CHOICES: dict[str, tuple[str, ...]] = {"log_format": ("text", "json")}
