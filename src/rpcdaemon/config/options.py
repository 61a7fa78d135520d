"""The declarative option table: every option of the ini file, old (2014) and new.

The loader (``rpcdaemon.config.loader``), ``rpcdaemon sample-config`` and the reference in
docs/configuration.md are all built from :data:`OPTIONS`, so they cannot drift apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DAEMON = "Daemon"
L3 = "L3Agent"
DHCP = "DHCPAgent"
DUMP = "Dump"
SECTIONS: tuple[str, ...] = (DAEMON, L3, DHCP, DUMP)
PLUGIN_SECTIONS: tuple[str, ...] = (L3, DHCP, DUMP)
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Kind(enum.Enum):
    """How a raw string becomes a value; ``expected`` names the type in error messages."""

    STR = "str"
    OPT_STR = "opt_str"  # empty = unset (None)
    PATH = "path"  # made absolute against the working directory at load time
    OPT_PATH = "opt_path"
    POS_FLOAT = "pos_float"
    POS_NUMBER = "pos_number"  # a plain number (a multiple), not seconds
    FRACTION = "fraction"
    POS_INT = "pos_int"
    BOOL = "bool"
    LEVEL = "level"
    WORDS = "words"  # separated by spaces and/or commas
    COUNT_OR_ALL = "count_or_all"
    HOSTPORT = "hostport"

    @property
    def expected(self) -> str:
        return _EXPECTED[self]


_EXPECTED: dict[Kind, str] = {
    Kind.STR: "a non-empty string",
    Kind.OPT_STR: "a string (empty = unset)",
    Kind.PATH: "a file path",
    Kind.OPT_PATH: "a file path (empty = unset)",
    Kind.POS_FLOAT: "a number of seconds greater than 0",
    Kind.POS_NUMBER: "a number greater than 0",
    Kind.FRACTION: "a number greater than 0 and at most 1",
    Kind.POS_INT: "an integer greater than 0",
    Kind.BOOL: "a boolean (true/false, yes/no, on/off, 1/0)",
    Kind.LEVEL: "one of " + ", ".join(LOG_LEVELS),
    Kind.WORDS: "a list of words separated by spaces or commas",
    Kind.COUNT_OR_ALL: '"all" or an integer greater than 0',
    Kind.HOSTPORT: "HOST:PORT (an empty HOST listens on every address)",
}


@dataclass(frozen=True)
class Option:
    """One option of one or more sections."""

    name: str
    kind: Kind
    default: str  # as written in the ini ("" = unset); rendered in the sample
    help: str
    sections: tuple[str, ...]
    since: str = "new"  # "2014" for the original options
    default_note: str | None = None  # shown instead of the default when it is computed


_AGENTS = (L3, DHCP)

OPTIONS: tuple[Option, ...] = (
    # [Daemon], 2014
    Option(
        "plugins",
        Kind.WORDS,
        "L3Agent DHCPAgent",
        "Plugins to load, separated by spaces: L3Agent, DHCPAgent, Dump.",
        (DAEMON,),
        "2014",
    ),
    Option(
        "rpchost",
        Kind.STR,
        "127.0.0.1",
        "The message server: an IP address or host name of RabbitMQ (guest/guest on port "
        "5672), or a kombu URL such as amqp://user:pass@host:5672// .",
        (DAEMON,),
        "2014",
    ),
    Option(
        "pidfile",
        Kind.PATH,
        "/var/run/rpcdaemon.pid",
        "The pid file written when running detached (not with -d).",
        (DAEMON,),
        "2014",
    ),
    Option(
        "logfile",
        Kind.PATH,
        "/var/log/rpcdaemon.log",
        "The log file when running detached; with -d the log goes to stderr. SIGHUP "
        "reopens it (for logrotate).",
        (DAEMON,),
        "2014",
    ),
    Option(
        "loglevel",
        Kind.LEVEL,
        "INFO",
        "The daemon's log level (DEBUG when -d and not set here).",
        (DAEMON,),
        "2014",
    ),
    Option(
        "log_format",
        Kind.STR,
        "text",
        "text: one line per record (time, pid, level, logger, thread, message); json: one "
        "JSON object per line (ts, level, logger, message, pid, thread, traceback, and "
        "plugin, action, resource, agent, reason for actions).",
        (DAEMON,),
    ),
    Option(
        "check_interval",
        Kind.POS_FLOAT,
        "1",
        "Seconds between liveness checks of the agents.",
        (DAEMON,),
        "2014",
    ),
    # [Daemon], new
    Option(
        "cloud",
        Kind.OPT_STR,
        "",
        "A clouds.yaml cloud name for the Neutron API; when set it wins over the credentials "
        "read from the plugins' conffile.",
        (DAEMON,),
    ),
    Option(
        "dry_run",
        Kind.BOOL,
        "false",
        "Log and print every planned change, change nothing (also --dry-run).",
        (DAEMON,),
    ),
    Option(
        "max_concurrency", Kind.POS_INT, "8", "Most Neutron API calls in flight at once.", (DAEMON,)
    ),
    Option(
        "resync_interval",
        Kind.POS_FLOAT,
        "60",
        "Seconds between resyncs with the Neutron API, whatever the bus says. A resync first "
        "reads agents, routers and networks (4 calls); the per-agent bindings are read only "
        "if something changed, or every full_resync_interval.",
        (DAEMON,),
    ),
    Option(
        "full_resync_interval",
        Kind.POS_FLOAT,
        "1800",
        "Seconds between resyncs that read every binding even when nothing seems to have "
        "changed (a backstop for changes no listing or heartbeat shows).",
        (DAEMON,),
    ),
    Option(
        "metrics_address",
        Kind.HOSTPORT,
        "",
        "HOST:PORT to serve Prometheus /metrics and /healthz on; empty = off.",
        (DAEMON,),
    ),
    Option(
        "coordination_url",
        Kind.OPT_STR,
        "",
        "A tooz backend URL (e.g. redis://host:6379) to elect one active rpcdaemon among "
        "several; empty = this instance is always active.",
        (DAEMON,),
    ),
    Option(
        "pause_file",
        Kind.PATH,
        "/var/lib/rpcdaemon/pause.json",
        "Where 'rpcdaemon pause' keeps its state when no coordination_url is set (with one, "
        "the pause is a key in that backend, obeyed by every instance). Mode 0600.",
        (DAEMON,),
    ),
    Option(
        "timeout",
        Kind.POS_FLOAT,
        "",
        "Longest time in seconds one Neutron API call may take, for every plugin (there is "
        "one Neutron connection). Setting it and a different [L3Agent]/[DHCPAgent] timeout "
        "is an error.",
        (DAEMON,),
        default_note="the timeout set in [L3Agent]/[DHCPAgent] (they must agree), else 20",
    ),
    Option(
        "reconnect_max_backoff",
        Kind.POS_FLOAT,
        "30",
        "Longest wait in seconds between two attempts to reconnect to the message server.",
        (DAEMON,),
    ),
    Option(
        "prefetch",
        Kind.POS_INT,
        "100",
        "AMQP prefetch count (QoS) of each of our consumers.",
        (DAEMON,),
    ),
    # [Daemon], failure detection (docs/configuration.md, "Failure detection")
    Option(
        "fast_failover",
        Kind.BOOL,
        "true",
        "Classify before acting. true: when every agent of a host falls silent at once, its "
        "agent queues do not answer a probe while another host's do, and the rest of the "
        "cloud reports normally, the node is dead: its routers and networks move within "
        "seconds, without waiting for agent_down_time or the Neutron API. A lone silent "
        "agent (a crashed process) or a host whose agents answer the probe (a slow node) "
        "still waits for agent_down_time and the API. false: that rule alone, for every "
        "agent (the behaviour before this option).",
        (DAEMON,),
    ),
    Option(
        "probe_timeout",
        Kind.POS_FLOAT,
        "2",
        "Seconds a probed agent queue (<topic>.<host>) has to answer. A live agent process "
        "answers at once, even a busy one; a longer timeout only delays the verdict on a "
        "dead node.",
        (DAEMON,),
    ),
    Option(
        "suspect_multiple",
        Kind.POS_NUMBER,
        "1.2",
        "An agent is suspect after this many of its own report intervals (learned from its "
        "heartbeats, plus their jitter) without a heartbeat, and never later than "
        "agent_down_time. Suspicion alone moves nothing: it makes the host a candidate "
        "for a probe.",
        (DAEMON,),
    ),
    Option(
        "node_min_agents",
        Kind.POS_INT,
        "2",
        "How many agents of one host (L3, DHCP, Open vSwitch, metadata) must fall silent "
        "together before the host can be found dead in seconds. A host with fewer agents "
        "reporting is left to agent_down_time and the API: one agent alone going silent "
        "looks exactly like a crashed process.",
        (DAEMON,),
    ),
    Option(
        "disruption_hosts",
        Kind.POS_INT,
        "2",
        "The brake: while more than the larger of disruption_hosts and disruption_fraction "
        "x all hosts went quiet within agent_down_time (a broker restart, a slow "
        "neutron-server, a network partition), no host is found dead fast; "
        "agent_down_time and the API decide. Also braked: the first agent_down_time after "
        "our own (re)connect, and while our consumer lags.",
        (DAEMON,),
    ),
    Option(
        "disruption_fraction",
        Kind.FRACTION,
        "0.2",
        "The brake's fraction of all hosts (see disruption_hosts).",
        (DAEMON,),
    ),
    # [L3Agent] / [DHCPAgent], 2014
    Option(
        "conffile",
        Kind.OPT_PATH,
        "/etc/neutron/neutron.conf",
        "neutron.conf: agent_down_time, control_exchange and the Keystone credentials "
        "([keystone_authtoken], or the old admin_user set) are read from it.",
        _AGENTS,
        "2014",
    ),
    Option("loglevel", Kind.LEVEL, "INFO", "This plugin's log level.", _AGENTS, "2014"),
    Option(
        "timeout",
        Kind.POS_FLOAT,
        "20",
        "Longest time in seconds one Neutron API call may take; it also bounds failover speed.",
        _AGENTS,
        "2014",
    ),
    Option(
        "queue_expire",
        Kind.POS_FLOAT,
        "60",
        "Our private RabbitMQ queue is deleted after this many seconds without a consumer.",
        _AGENTS,
        "2014",
    ),
    # [L3Agent] / [DHCPAgent], new
    Option(
        "exchange",
        Kind.OPT_STR,
        "",
        "The exchange the agents report on.",
        _AGENTS,
        default_note="control_exchange from conffile, else neutron",
    ),
    Option(
        "agent_down_time",
        Kind.POS_FLOAT,
        "",
        "Seconds without a heartbeat (by our receive clock) before an agent counts as dead.",
        _AGENTS,
        default_note="agent_down_time from conffile, else 75",
    ),
    Option(
        "routing_keys",
        Kind.WORDS,
        "q-reports-plugin q-plugin",
        "Routing keys whose report_state heartbeats we listen to.",
        _AGENTS,
    ),
    Option(
        "max_dead_fraction",
        Kind.FRACTION,
        "0.5",
        "Circuit breaker: when more than this fraction of the agents look dead at once, act "
        "on none of them.",
        _AGENTS,
    ),
    Option(
        "max_moves_per_pass",
        Kind.POS_INT,
        "100",
        "Most changes made in one pass; the rest wait for the next pass.",
        _AGENTS,
    ),
    Option(
        "confirm_with_api",
        Kind.BOOL,
        "true",
        "Act on a dead agent only when the Neutron API also says alive: false.",
        _AGENTS,
    ),
    Option(
        "restore_ha_redundancy",
        Kind.BOOL,
        "false",
        "Also re-home HA routers (ha: true) from dead agents; by default VRRP handles them.",
        (L3,),
    ),
    Option(
        "agents_per_network",
        Kind.COUNT_OR_ALL,
        "all",
        "How many live DHCP agents host each DHCP network: all (the 2014 policy) or N.",
        (DHCP,),
    ),
    Option(
        "notifications",
        Kind.BOOL,
        "true",
        "Also listen to Neutron notifications (e.g. network.delete.end) to react before "
        "the next resync.",
        _AGENTS,
    ),
    Option(
        "notification_topic",
        Kind.STR,
        "notifications",
        "The notification topic; we bind <topic>.info on the exchange.",
        _AGENTS,
    ),
    # [Dump], 2014
    Option(
        "loglevel",
        Kind.LEVEL,
        "DEBUG",
        "Dump's log level; messages are logged at DEBUG, so other levels hide them.",
        (DUMP,),
        "2014",
    ),
    Option(
        "queue",
        Kind.STR,
        "neutron",
        "The exchange to dump (the 2014 name of this option).",
        (DUMP,),
        "2014",
    ),
    Option(
        "filter",
        Kind.OPT_STR,
        "",
        "Print only messages for which this JMESPath expression is truthy, e.g. "
        "method == 'report_state'. The 2014 Python expressions are not accepted.",
        (DUMP,),
        "2014",
    ),
    # [Dump], new
    Option("routing_key", Kind.STR, "#", "The routing key to bind (# = everything).", (DUMP,)),
    Option(
        "output",
        Kind.OPT_PATH,
        "",
        "Append messages as JSON lines to this file; empty = pretty JSON to stdout (-d) "
        "or to the log.",
        (DUMP,),
    ),
    Option(
        "redact",
        Kind.WORDS,
        "token password secret passwd credential",
        "Values of keys containing any of these words are replaced by ***.",
        (DUMP,),
    ),
    Option(
        "queue_expire",
        Kind.POS_FLOAT,
        "60",
        "Dump's private queue is deleted after this many seconds without a consumer.",
        (DUMP,),
    ),
)


def options_of(section: str) -> tuple[Option, ...]:
    return tuple(o for o in OPTIONS if section in o.sections)


def find(section: str, name: str) -> Option | None:
    for opt in OPTIONS:
        if opt.name == name and section in opt.sections:
            return opt
    return None
