"""Frozen settings: the shape every layer reads. ``rpcdaemon.config`` builds them from
the ini file (old options and new) and from the plugins' neutron.conf.

Field names here are a contract between modules: add fields, do not rename them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rpcdaemon.core.detection import DetectorPolicy

NEUTRON_REPORT_INTERVAL = 30.0
"""Neutron's default ``[agent] report_interval`` (seconds between an agent's state reports)."""


@dataclass(frozen=True)
class KeystoneAuth:
    """Credentials for the Neutron API, from neutron.conf (or none: clouds.yaml wins)."""

    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str | None = None
    interface: str | None = None  # public / internal / admin
    source: str = "keystone_authtoken"  # or "admin_user" (the 2014 [DEFAULT] admin_* set)


@dataclass(frozen=True)
class NeutronConf:
    """What we read from a plugin's ``conffile`` (neutron.conf)."""

    path: str | None
    agent_down_time: float = 75.0
    control_exchange: str = "neutron"
    auth: KeystoneAuth | None = None
    report_interval: float = NEUTRON_REPORT_INTERVAL  # [agent] report_interval
    # where the two timers came from, for check-config's warnings (False: Neutron's default)
    agent_down_time_set: bool = False
    report_interval_set: bool = False


@dataclass(frozen=True)
class NeutronApiSettings:
    """The ONE set of Neutron API credentials and the call timeout, shared by every planner
    plugin (one connection). ``cloud`` (clouds.yaml) wins; else ``auth`` from the plugins'
    conffile (the L3Agent and DHCPAgent ones must agree). Both None = no credentials, which
    ``rpcdaemon.config.preflight`` refuses. ``source`` says where they came from, for humans."""

    cloud: str | None
    auth: KeystoneAuth | None
    source: str
    timeout: float = 20.0


@dataclass(frozen=True)
class DaemonSettings:
    plugins: tuple[str, ...] = ("L3Agent", "DHCPAgent")
    rpchost: str = "127.0.0.1"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"  # derived from rpchost
    pidfile: str = "/var/run/rpcdaemon.pid"
    logfile: str = "/var/log/rpcdaemon.log"
    loglevel: str = "INFO"
    log_format: str = "text"  # "text" or "json" (one object a line); see rpcdaemon.logsetup
    check_interval: float = 1.0
    cloud: str | None = None  # clouds.yaml cloud name; wins over conffile credentials
    dry_run: bool = False
    max_concurrency: int = 8
    resync_interval: float = 60.0
    full_resync_interval: float = 1800.0  # read every binding at least this often
    metrics_address: str | None = None  # "host:port" for /metrics and /healthz; None = off
    coordination_url: str | None = None  # tooz backend URL; None = single instance
    pause_file: str = "/var/lib/rpcdaemon/pause.json"  # rpcdaemon pause, without Redis
    reconnect_max_backoff: float = 30.0
    prefetch: int = 100
    # the node-death fast path ([Daemon] fast_failover, probe_timeout, suspect_multiple,
    # node_min_agents, disruption_hosts, disruption_fraction); its agent_down_time is the
    # runtime's to fill from the planners' policies, not the config's
    detection: DetectorPolicy = DetectorPolicy()
    # -d / dump subcommand: no detach, logs to stderr, Dump prints to stdout
    foreground: bool = False


@dataclass(frozen=True)
class AgentPluginSettings:
    """[L3Agent] and [DHCPAgent]."""

    name: str
    conffile: str | None = "/etc/neutron/neutron.conf"
    loglevel: str = "INFO"
    timeout: float = 20.0
    queue_expire: float = 60.0
    neutron: NeutronConf = field(default_factory=lambda: NeutronConf(path=None))
    exchange: str = "neutron"  # option, else neutron.conf control_exchange, else neutron
    agent_down_time: float = 75.0  # option, else neutron.conf, else 75
    routing_keys: tuple[str, ...] = ("q-reports-plugin", "q-plugin")
    max_dead_fraction: float = 0.5
    max_moves_per_pass: int = 100
    confirm_with_api: bool = True
    restore_ha_redundancy: bool = False  # L3 only
    agents_per_network: int | None = None  # DHCP only; None = all
    notifications: bool = True  # DHCP: also bind notifications.info
    notification_topic: str = "notifications"


@dataclass(frozen=True)
class DumpSettings:
    loglevel: str = "DEBUG"
    queue: str = "neutron"  # the exchange to dump (the 2014 name for the option)
    routing_key: str = "#"
    filter: str | None = None  # a JMESPath expression, truthy = print
    output: str | None = None  # a file: JSON lines; None = pretty JSON to the log/stdout
    redact: tuple[str, ...] = ("token", "password", "secret", "passwd", "credential")
    queue_expire: float = 60.0


@dataclass(frozen=True)
class Settings:
    path: str
    daemon: DaemonSettings
    l3: AgentPluginSettings | None = None
    dhcp: AgentPluginSettings | None = None
    dump: DumpSettings | None = None
    api: NeutronApiSettings | None = None  # None when no planner plugin (L3Agent/DHCPAgent)
    warnings: tuple[str, ...] = ()  # non-fatal findings of the loader (e.g. conffile missing)
