"""A real neutron-server 29 for the peer suite: ``python -m tests.peer.rig up|down|status|agent``.

What ``up`` brings up (all on 127.0.0.1, every process recorded by PID in the run directory):

* MariaDB (started with mysqld_safe if it is down; installed with apt-get when missing and we
  are root) holding a private database ``rpcdaemon_peer``, reloaded from a cached schema dump at
  every start, so each rig starts empty;
* RabbitMQ (started if down) with a private vhost ``rpcdaemon-peer``, dropped at ``down``, so
  Neutron's exchanges and queues never meet other tests' on the shared broker;
* neutron 29 from PyPI in a cached venv ($RPCDAEMON_PEER_CACHE, default ~/.cache/rpcdaemon-peer):
  ``neutron-rpc-server`` plus the API (``neutron.wsgi.api:application``) under uWSGI on a free
  port, ``auth_strategy = noauth``, ML2/OVS, the ``router`` service plugin, notifications
  ``messagingv2``, Neutron's own failover off (on with ``--neutron-failover``, which also starts
  ``neutron-periodic-workers``);
* fake agents (tests/peer/fake_agents.py, run by the neutron venv's Python), ONE process per
  host: L3, DHCP, Open vSwitch and Metadata agents on the network nodes net1..net3, Open vSwitch
  and Metadata agents on the compute nodes comp1, comp2 ("the rest of the cloud"). They
  heartbeat with neutron's own PluginReportStateAPI and answer server->agent RPC. One agent is
  steered through a file (``agent KIND HOST alive|soft|hard``), a whole host through its
  process (``node HOST freeze|crash|slow|revive``: SIGSTOP, SIGKILL, no reports, back).

Timers: ``up --report-interval S --agent-down-time S`` (defaults 2.5 s and 10 s; Neutron's own
are 30 s and 75 s); ``rig.json`` records them for ``Rig.load()`` users.

``down`` stops them by PID (never by name) and drops the vhost. Timings of each step are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
FAKE_AGENTS = HERE / "fake_agents.py"
VHOST = "rpcdaemon-peer"
DATABASE = "rpcdaemon_peer"
DB_USER = "rpcdaemon_peer"
DB_PASSWORD = "rpcdaemon_peer"
AGENT_DOWN_TIME = 10  # the rig's default timers (the fast rig); Neutron's are 75 / 30
REPORT_INTERVAL = 2.5
HOSTS = ("net1", "net2", "net3")  # network nodes: l3, dhcp, ovs, metadata
COMPUTE_HOSTS = ("comp1", "comp2")  # the rest of the cloud: ovs, metadata
ALL_HOSTS = HOSTS + COMPUTE_HOSTS
NETWORK_KINDS = ("l3", "dhcp", "ovs", "metadata")
COMPUTE_KINDS = ("ovs", "metadata")
AGENT_TYPES = {
    "l3": "L3 agent",
    "dhcp": "DHCP agent",
    "ovs": "Open vSwitch agent",
    "metadata": "Metadata agent",
}
KILL_HOW = ("freeze", "crash")


class RigError(RuntimeError):
    """The rig could not come up; the message says which step and why."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "rpcdaemon-peer"
    return Path(os.environ.get("RPCDAEMON_PEER_CACHE", str(default))).expanduser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    for child in _children(pid):
        out += [child, *_descendants(child)]
    return out


def _state(pid: int) -> str:
    """The process state letter from /proc (``T`` = stopped, ``Z`` = zombie), ``""`` if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return ""


def _agents_name(host: str) -> str:
    return f"agents-{host}"


def kinds_of(host: str) -> tuple[str, ...]:
    """The fake agents a host runs: all four on a network node, OVS + metadata elsewhere."""
    return NETWORK_KINDS if host in HOSTS else COMPUTE_KINDS


def _run(cmd: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RigError(f"{what}: {' '.join(cmd[:3])} exited {proc.returncode}: {tail}")
    return proc


def wait_until(what: str, check: Callable[[], bool], timeout: float, step: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise RigError(f"timed out after {timeout:g}s waiting for {what}")


@dataclass
class Rig:
    """One rig, described by ``<cache>/run/rig.json`` while it is up."""

    cache: Path = field(default_factory=cache_dir)
    api_port: int = 0
    neutron_failover: bool = False
    report_interval: float = REPORT_INTERVAL
    agent_down_time: int = AGENT_DOWN_TIME
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # the processes this Python process spawned, so a crashed node's process is reaped
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    # -- paths and URLs ------------------------------------------------------------------------

    @property
    def venv(self) -> Path:
        return self.cache / "venv"

    @property
    def run_dir(self) -> Path:
        return self.cache / "run"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def agents_dir(self) -> Path:
        return self.run_dir / "agents"

    @property
    def nodes_dir(self) -> Path:
        """``<host>.json`` per killed node: how, the kill time, the last heartbeat before it."""
        return self.agents_dir / "nodes"

    @property
    def neutron_conf(self) -> Path:
        return self.run_dir / "neutron.conf"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def amqp_url(self) -> str:
        """The kombu URL of the rig's vhost."""
        return f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"

    def amqp_url_via(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}/{VHOST}"

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    # -- state file ----------------------------------------------------------------------------

    def _save(self) -> None:
        state = {
            "api_port": self.api_port,
            "failover": self.neutron_failover,
            "report_interval": self.report_interval,
            "agent_down_time": self.agent_down_time,
            "pids": self.pids,
        }
        tmp = self.run_dir / "rig.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.run_dir / "rig.json")

    @classmethod
    def load(cls, cache: Path | None = None) -> Rig:
        rig = cls(cache=cache or cache_dir())
        path = rig.run_dir / "rig.json"
        if path.exists():
            state = json.loads(path.read_text())
            rig.api_port = int(state["api_port"])
            rig.neutron_failover = bool(state.get("failover", False))
            rig.report_interval = float(state.get("report_interval", REPORT_INTERVAL))
            rig.agent_down_time = int(state.get("agent_down_time", AGENT_DOWN_TIME))
            rig.pids = {k: int(v) for k, v in state["pids"].items()}
        return rig

    def ours(self, pid: int) -> bool:
        """A live process started from this rig's venv (a recycled PID is not ours)."""
        return _alive(pid) and str(self.venv) in _cmdline(pid)

    def running(self) -> bool:
        """Every process up (a frozen node's is up; a crashed node's is not)."""
        names = {"rpc-server", "api", *(_agents_name(h) for h in ALL_HOSTS)}
        return names <= set(self.pids) and all(self.ours(self.pids[n]) for n in names)

    def _reusable(
        self, neutron_failover: bool, report_interval: float, agent_down_time: int
    ) -> bool:
        """Neutron up with these settings and every host's agent process known (a crashed or
        frozen node is revived, not a reason to start over)."""
        names = {"rpc-server", "api", *(_agents_name(h) for h in ALL_HOSTS)}
        return (
            names <= set(self.pids)
            and self.ours(self.pids["rpc-server"])
            and self.ours(self.pids["api"])
            and self.neutron_failover == neutron_failover
            and self.report_interval == report_interval
            and self.agent_down_time == agent_down_time
        )

    # -- the REST API --------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 120
    ) -> tuple[int, Any]:
        resp = requests.request(
            method,
            f"{self.api_url}/v2.0{path}",
            json=body,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
        return resp.status_code, (resp.json() if resp.content else None)

    def agents(self, agent_type: str | None = None) -> list[dict[str, Any]]:
        query = "?" + urllib.parse.urlencode({"agent_type": agent_type}) if agent_type else ""
        status, body = self.call("GET", f"/agents{query}")
        if status != 200:
            raise RigError(f"GET /agents: {status} {body}")
        return list(body["agents"])

    def agent_id(self, agent_type: str, host: str) -> str:
        for agent in self.agents(agent_type):
            if agent["host"] == host:
                return str(agent["id"])
        raise KeyError(f"{agent_type}@{host}")

    # -- agent control -------------------------------------------------------------------------

    def set_agent(self, kind: str, host: str, mode: str) -> None:
        """``alive``; ``soft`` = no heartbeats, still answers RPC; ``hard`` = no heartbeats and
        no RPC consumer (a crashed agent). The agent reads it at its next report interval."""
        if kind not in kinds_of(host) or mode not in ("alive", "soft", "hard"):
            raise ValueError(f"{kind} {host} {mode}")
        self._control(f"{kind}-{host}", mode)

    def _control(self, name: str, mode: str) -> None:
        path = self.agents_dir / name
        if mode == "alive":
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(mode)
            tmp.replace(path)

    def last_heartbeat(self, kind: str, host: str) -> float:
        """Wall-clock time of the agent's last heartbeat that went through (a call answered by
        neutron-server; for the metadata agent after its first report, a cast published)."""
        return float((self.agents_dir / "beats" / f"{kind}-{host}").read_text())

    def last_host_heartbeat(self, host: str) -> float:
        """The latest heartbeat of ANY agent of the host (a node is silent from there on)."""
        beats = []
        for kind in kinds_of(host):
            with contextlib.suppress(FileNotFoundError, ValueError):
                beats.append(self.last_heartbeat(kind, host))
        if not beats:
            raise RigError(f"no heartbeat recorded for any agent of {host}")
        return max(beats)

    # -- whole nodes ---------------------------------------------------------------------------

    def kill_node(self, host: str, how: str = "freeze") -> float:
        """Every agent of ``host`` stops at once, heartbeats AND RPC consumers; returns the kill
        time (wall clock), also kept for :meth:`killed_at`.

        ``freeze`` (the default) SIGSTOPs the host's process: its TCP connections stay open and
        the broker keeps its consumers, but nothing answers, as a powered-off node until the
        broker's heartbeat timeout. ``crash`` SIGKILLs it: the kernel closes its sockets and the
        broker drops its consumers at once, as a crashed host kernel or a killed container.
        """
        if how not in KILL_HOW:
            raise ValueError(f"kill how={how!r}: one of {KILL_HOW}")
        name = _agents_name(host)
        pid = self.pids.get(name)
        if pid is None or not self.ours(pid):
            raise RigError(f"{host}: its agents process is not running")
        os.kill(pid, signal.SIGSTOP if how == "freeze" else signal.SIGKILL)
        killed_at = time.time()
        if how == "freeze":
            wait_until(f"{host} stopped", lambda: _state(pid) == "T", 5, step=0.01)
        else:
            self._reap(name, pid)
        last_beat = self.last_host_heartbeat(host)  # read once nothing can write it
        self.nodes_dir.mkdir(parents=True, exist_ok=True)
        record = {"how": how, "killed_at": killed_at, "last_beat": last_beat}
        (self.nodes_dir / f"{host}.json").write_text(json.dumps(record))
        logger.info("rig: %s %s at %.3f (last beat %.3f)", how, host, killed_at, last_beat)
        return killed_at

    def killed_at(self, host: str) -> float:
        """Wall-clock time of the host's last :meth:`kill_node`, while it is down."""
        return float(json.loads((self.nodes_dir / f"{host}.json").read_text())["killed_at"])

    def slow_node(self, host: str) -> float:
        """Every agent of ``host`` stops reporting but keeps answering RPC (each reads it at its
        next report interval); returns the time it was asked (wall clock)."""
        if host not in ALL_HOSTS:
            raise ValueError(host)
        self._control(f"node-{host}", "soft")
        return time.time()

    def node_state(self, host: str) -> str:
        """``alive``, ``frozen``, ``crashed`` or ``slow`` (as the rig left it)."""
        pid = self.pids.get(_agents_name(host))
        if pid is None or not self.ours(pid):
            return "crashed"
        if _state(pid) == "T":
            return "frozen"
        return "slow" if (self.agents_dir / f"node-{host}").exists() else "alive"

    def revive_node(self, host: str, *, wait: bool = True, timeout: float = 60) -> None:
        """Undo :meth:`kill_node` (SIGCONT, or a new process after a crash) and
        :meth:`slow_node`; with ``wait``, until the API shows every agent of the host alive.
        Per-agent files (:meth:`set_agent`) stay as they are."""
        if host not in ALL_HOSTS:
            raise ValueError(host)
        self._control(f"node-{host}", "alive")
        name = _agents_name(host)
        pid = self.pids.get(name)
        if pid is not None and self.ours(pid):
            os.kill(pid, signal.SIGCONT)  # harmless when it was not stopped
        else:
            self._spawn_agents(host)
        (self.nodes_dir / f"{host}.json").unlink(missing_ok=True)
        if wait:
            self.wait_host_alive(host, True, timeout)

    def revive_all(self, timeout: float = 60) -> None:
        """Every agent and every node back to alive, until the API agrees."""
        for path in self.agents_dir.glob("*-*"):
            if path.is_file():
                path.unlink()
        for host in ALL_HOSTS:
            self.revive_node(host, wait=False)
        self.wait_agents_alive(timeout)

    def host_agents(self, host: str) -> dict[str, bool]:
        """Agent type -> alive, as the API shows the host's agents."""
        return {a["agent_type"]: bool(a["alive"]) for a in self.agents() if a["host"] == host}

    def wait_host_alive(self, host: str, alive: bool, timeout: float = 60) -> None:
        """Until the API shows every agent of ``host`` with ``alive``."""
        want = {AGENT_TYPES[k] for k in kinds_of(host)}

        def ok() -> bool:
            try:
                got = self.host_agents(host)
            except (requests.RequestException, RigError):
                return False
            return want <= set(got) and all(got[t] is alive for t in want)

        wait_until(f"every agent of {host} alive={alive}", ok, timeout)

    def probe(self, targets: list[str], timeout: float = 3.0) -> dict[str, str]:
        """An RPC call of a private method to each ``topic.host`` (e.g. ``l3_agent.net1``), by
        oslo.messaging in the neutron venv: ``answered: ...`` (a live consumer replied, a real
        agent with ``NoSuchMethod``) or ``timeout``."""
        cmd = [
            self._bin("python"),
            str(FAKE_AGENTS),
            "probe",
            "--config-file",
            str(self.neutron_conf),
            "--timeout",
            f"{timeout:g}",
            *targets,
        ]
        out = _run(cmd, "probe", timeout=timeout + 60).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def queue_consumers(self, queues: list[str]) -> dict[str, int]:
        """The broker's consumer count of each named queue in the rig's vhost (-1: no such
        queue): a frozen node keeps its consumers, a crashed one has none."""
        out = _run(
            ["rabbitmqctl", "-q", "list_queues", "-p", VHOST, "name", "consumers"],
            "rabbitmqctl list_queues",
        ).stdout
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
        return {q: counts.get(q, -1) for q in queues}

    def wait_agents_alive(self, timeout: float = 60) -> None:
        want = {(AGENT_TYPES[k], h) for h in ALL_HOSTS for k in kinds_of(h)}

        def ok() -> bool:
            try:
                got = {(a["agent_type"], a["host"]) for a in self.agents() if a["alive"]}
            except (requests.RequestException, RigError):
                return False
            return want <= got

        wait_until("all fake agents alive in the API", ok, timeout)

    def wait_agent_alive(self, agent_id: str, alive: bool, timeout: float = 60) -> None:
        def ok() -> bool:
            status, body = self.call("GET", f"/agents/{agent_id}")
            return status == 200 and body["agent"]["alive"] is alive

        wait_until(f"agent {agent_id} alive={alive}", ok, timeout)

    # -- up ------------------------------------------------------------------------------------

    def up(
        self,
        *,
        neutron_failover: bool = False,
        report_interval: float = REPORT_INTERVAL,
        agent_down_time: int = AGENT_DOWN_TIME,
    ) -> dict[str, float]:
        """Bring everything up (reuse a running rig with the same failover setting and timers;
        nodes an earlier user left frozen, crashed or slow are revived)."""
        started = time.monotonic()
        if report_interval <= 0 or agent_down_time <= 0:
            raise ValueError(f"timers {report_interval} / {agent_down_time}")
        if self._reusable(neutron_failover, report_interval, agent_down_time):
            self.revive_all(timeout=max(60.0, 3 * report_interval + 30))
            self.timings = {"reused": time.monotonic() - started}
            return self.timings
        self.down()
        self.neutron_failover = neutron_failover
        self.report_interval, self.agent_down_time = report_interval, agent_down_time
        for d in (self.logs, self.agents_dir, self.run_dir / "lock"):
            d.mkdir(parents=True, exist_ok=True)
        for stale in [*self.agents_dir.glob("*-*"), *self.nodes_dir.glob("*.json")]:
            if stale.is_file():
                stale.unlink()
        self._step("packages", self._ensure_packages)
        self._step("rabbitmq + vhost", self._ensure_rabbitmq)
        self._step("mariadb", self._ensure_mariadb)
        self._step("venv (neutron)", self._ensure_venv)
        self.api_port = _free_port()
        self._write_configs()
        self._step("database (fresh, from cached schema)", self._load_database)
        for attempt in (1, 2):
            try:
                self._step("neutron + agents up", self._start_processes)
                break
            except RigError as exc:
                # Seen once in CI under load: a server process judged gone seconds after
                # start. One clean retry; a second failure is real.
                self._stop_processes()
                if attempt == 2:
                    self.down()
                    raise
                logger.warning("neutron did not come up (%s); retrying once", exc)
                self.api_port = _free_port()
                self._write_configs()
            except BaseException:
                self.down()
                raise
        self.timings["total"] = time.monotonic() - started
        return self.timings

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t
        logger.info("rig: %s took %.1fs", name, self.timings[name])

    def _ensure_packages(self) -> None:
        missing = [
            pkg
            for pkg, probe in (
                ("mariadb-server", "mysqld_safe"),
                ("rabbitmq-server", "rabbitmqctl"),
            )
            if shutil.which(probe) is None
        ]
        if not missing:
            return
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise RigError(f"missing {', '.join(missing)} and cannot apt-get install them")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-q"], "apt-get update", env=env)
        _run(["apt-get", "install", "-y", "-q", *missing], "apt-get install", env=env)

    def _ensure_rabbitmq(self) -> None:
        if not _port_open(5672):
            # loopback only; epmd first, or the Erlang CLI starts one on every address
            if subprocess.run(["epmd", "-names"], capture_output=True, check=False).returncode:
                _run(["epmd", "-address", "127.0.0.1", "-daemon"], "epmd")
            conf = self.run_dir / "rabbitmq.conf"
            conf.write_text("listeners.tcp.default = 127.0.0.1:5672\nloopback_users.guest = true\n")
            env = {
                **os.environ,
                "RABBITMQ_CONFIG_FILE": str(conf),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            }
            _run(["rabbitmq-server", "-detached"], "rabbitmq-server", env=env)
            wait_until("RabbitMQ on 127.0.0.1:5672", lambda: _port_open(5672), 120)
        ctl = ["rabbitmqctl", "-q"]
        vhosts = _run([*ctl, "list_vhosts"], "rabbitmqctl list_vhosts").stdout.split()
        if VHOST not in vhosts:
            _run([*ctl, "add_vhost", VHOST], "rabbitmqctl add_vhost")
        _run([*ctl, "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"], "permissions")

    def _mysql(self, sql: str, what: str, database: str | None = None) -> str:
        cmd = ["mysql", "-uroot", "-N", "-B", *([database] if database else []), "-e", sql]
        return _run(cmd, what).stdout

    def _ensure_mariadb(self) -> None:
        ping = ["mysqladmin", "-uroot", "ping"]
        if subprocess.run(ping, capture_output=True, check=False).returncode != 0:
            Path("/run/mysqld").mkdir(exist_ok=True)
            shutil.chown("/run/mysqld", "mysql", "mysql")
            log = (self.logs / "mysqld_safe.log").open("ab")
            subprocess.Popen(
                ["mysqld_safe", "--bind-address=127.0.0.1", "--port=3306"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            wait_until(
                "MariaDB",
                lambda: subprocess.run(ping, capture_output=True, check=False).returncode == 0,
                60,
            )
        self._mysql(
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
            f"GRANT ALL ON {DATABASE}.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;",
            "create the database user",
        )

    def _requirements_hash(self) -> str:
        return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]

    def _ensure_venv(self) -> None:
        marker = self.venv / ".rpcdaemon-peer"
        if marker.exists() and marker.read_text() == self._requirements_hash():
            return
        shutil.rmtree(self.venv, ignore_errors=True)
        python = shutil.which("python3.11") or sys.executable
        _run([python, "-m", "venv", str(self.venv)], "python -m venv")
        pip = [self._bin("python"), "-m", "pip", "install", "-q"]
        _run([*pip, "-U", "pip", "setuptools", "wheel"], "pip install -U pip")
        _run([*pip, "-r", str(REQUIREMENTS)], "pip install neutron")
        marker.write_text(self._requirements_hash())

    def _write_configs(self) -> None:
        run, logs = self.run_dir, self.logs
        paste = (self.venv / "etc" / "neutron" / "api-paste.ini").read_text()
        paste = paste.replace("/var/lib/neutron/healthcheck_disable", str(run / "healthcheck_off"))
        (run / "api-paste.ini").write_text(paste)
        failover = str(self.neutron_failover)
        self.neutron_conf.write_text(
            f"""# written by tests/peer/rig.py
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = noauth
transport_url = rabbit://guest:guest@127.0.0.1:5672/{VHOST}
api_paste_config = {run}/api-paste.ini
state_path = {run}
host = peer-controller
log_dir = {logs}
debug = False
agent_down_time = {self.agent_down_time}
allow_automatic_l3agent_failover = {failover}
allow_automatic_dhcp_failover = False
router_auto_schedule = False
network_auto_schedule = False
dhcp_agents_per_network = 1
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 0
notify_nova_on_port_status_changes = False
notify_nova_on_port_data_changes = False
rpc_response_timeout = 10
# a test rig: stop fast (oslo.service waits this long for its workers)
graceful_shutdown_timeout = 2

[agent]
report_interval = {self.report_interval:g}

[database]
connection = mysql+pymysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:3306/{DATABASE}?charset=utf8mb4

[quotas]
quota_router = -1
quota_network = -1
quota_subnet = -1
quota_port = -1

[oslo_concurrency]
lock_path = {run}/lock

[oslo_messaging_notifications]
driver = messagingv2
topics = notifications
"""
        )
        (run / "ml2_conf.ini").write_text(
            "[ml2]\ntype_drivers = flat,vlan,vxlan\nproject_network_types = vxlan\n"
            "mechanism_drivers = openvswitch\nextension_drivers = port_security\n"
            "[ml2_type_flat]\nflat_networks = *\n"
            "[ml2_type_vxlan]\nvni_ranges = 1:5000\n"
            "[securitygroup]\nenable_security_group = True\n"
        )
        (run / "uwsgi.ini").write_text(
            f"""[uwsgi]
module = neutron.wsgi.api:application
http-socket = 127.0.0.1:{self.api_port}
master = true
processes = 1
threads = 4
enable-threads = true
lazy-apps = true
buffer-size = 65535
add-header = Connection: close
die-on-term = true
need-app = true
worker-reload-mercy = 5
env = OS_NEUTRON_CONFIG_DIR={run}
env = OS_NEUTRON_CONFIG_FILES=neutron.conf;ml2_conf.ini
pyargv = --log-file {logs}/neutron-api.log
"""
        )

    def _config_args(self) -> list[str]:
        return [
            "--config-file",
            str(self.neutron_conf),
            "--config-file",
            str(self.run_dir / "ml2_conf.ini"),
        ]

    def _load_database(self) -> None:
        schema = self.cache / f"schema-{self._requirements_hash()}.sql"
        self._mysql(
            f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4;",
            "create the database",
        )
        if schema.exists():
            with schema.open() as fh:
                proc = subprocess.run(
                    ["mysql", "-uroot", DATABASE],
                    stdin=fh,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if proc.returncode == 0:
                return
            logger.warning("rig: cached schema did not load (%s); migrating", proc.stderr[-300:])
            schema.unlink()
            self._mysql(f"DROP DATABASE {DATABASE}; CREATE DATABASE {DATABASE};", "recreate db")
        with (self.logs / "db-manage.log").open("w") as log:
            rc = subprocess.run(
                [self._bin("neutron-db-manage"), *self._config_args(), "upgrade", "heads"],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc != 0:
            raise RigError(f"neutron-db-manage upgrade heads failed, see {self.logs}/db-manage.log")
        dump = _run(["mysqldump", "-uroot", "--skip-comments", DATABASE], "mysqldump")
        tmp = schema.with_suffix(".tmp")
        tmp.write_text(dump.stdout)
        tmp.replace(schema)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.out").open("ab")
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.run_dir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.pids[name] = proc.pid
        self._procs[name] = proc
        self._save()

    def _spawn_agents(self, host: str) -> None:
        """The host's one fake-agents process: every agent of the host lives and dies in it."""
        self._spawn(
            _agents_name(host),
            [
                self._bin("python"),
                str(FAKE_AGENTS),
                "--config-file",
                str(self.neutron_conf),
                "--hosts",
                host,
                "--kinds",
                ",".join(kinds_of(host)),
                "--interval",
                f"{self.report_interval:g}",
                "--control-dir",
                str(self.agents_dir),
                "--inbox",
                str(self.logs / "agent-inbox.jsonl"),
            ],
            {"PYTHONUNBUFFERED": "1"},
        )

    def _reap(self, name: str, pid: int) -> None:
        """Wait for a killed process (ours to reap if this Python spawned it)."""
        proc = self._procs.pop(name, None)
        if proc is not None and proc.pid == pid:
            proc.wait(timeout=10)
        else:
            wait_until(f"{name} gone", lambda: not _alive(pid), 10, step=0.01)

    def _start_processes(self) -> None:
        env = {"PYTHONUNBUFFERED": "1"}
        self._spawn("rpc-server", [self._bin("neutron-rpc-server"), *self._config_args()], env)
        self._spawn("api", [self._bin("uwsgi"), "--ini", str(self.run_dir / "uwsgi.ini")], env)
        if self.neutron_failover:
            self._spawn(
                "periodic-workers",
                [self._bin("neutron-periodic-workers"), *self._config_args()],
                env,
            )
        for host in ALL_HOSTS:
            self._spawn_agents(host)

        def api_up() -> bool:
            for name in self.pids:
                if not _alive(self.pids[name]):
                    raise RigError(f"{name} exited; see {self.logs}/{name}.out")
            try:
                return requests.get(f"{self.api_url}/v2.0/networks", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until("the neutron API", api_up, 120)
        self.wait_agents_alive(120)

    # -- down ----------------------------------------------------------------------------------

    def _stop_processes(self) -> None:
        agents = sorted(n for n in self.pids if n.startswith("agents"))
        ours = {}
        for name in (*agents, "periodic-workers", "api", "rpc-server"):
            pid = self.pids.pop(name, None)
            self._procs.pop(name, None)
            if pid is not None and self.ours(pid):
                ours[name] = pid
        _stop(ours)

    def down(self) -> None:
        """Stop every process we started, by PID, children too; drop the vhost."""
        self._stop_processes()
        if self.run_dir.exists():
            self._save()
        if shutil.which("rabbitmqctl") and _port_open(5672):
            subprocess.run(
                ["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True, check=False
            )


def _stop(pids: dict[str, int], grace: float = 15.0) -> None:
    """SIGTERM every process at once (each stops on its own in a few seconds), then SIGKILL
    whatever of them and their children is still up after ``grace``."""
    families = {name: [pid, *_descendants(pid)] for name, pid in pids.items() if _alive(pid)}
    for name in families:
        # uWSGI (die-on-term) and oslo.service masters stop their workers on SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[name], signal.SIGTERM)
            os.kill(pids[name], signal.SIGCONT)  # a frozen node's process acts on it only then
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pids[n]) for n in families):
        time.sleep(0.1)
    for name, family in families.items():
        for p in family:
            if _alive(p):
                logger.warning("rig: %s pid %d still up, SIGKILL", name, p)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)


@contextlib.contextmanager
def rig_up(
    *,
    neutron_failover: bool = False,
    keep: bool = False,
    report_interval: float = REPORT_INTERVAL,
    agent_down_time: int = AGENT_DOWN_TIME,
) -> Iterator[Rig]:
    rig = Rig.load()
    rig.up(
        neutron_failover=neutron_failover,
        report_interval=report_interval,
        agent_down_time=agent_down_time,
    )
    try:
        yield rig
    finally:
        if not keep:
            rig.down()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.peer.rig", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring the rig up (reuse it if running with the same settings)")
    up.add_argument("--neutron-failover", action="store_true")
    up.add_argument("--report-interval", type=float, default=REPORT_INTERVAL, metavar="S")
    up.add_argument("--agent-down-time", type=int, default=AGENT_DOWN_TIME, metavar="S")
    sub.add_parser("down", help="stop everything the rig started, by PID")
    sub.add_parser("status", help="print the rig's URLs, PIDs, timers and nodes")
    ag = sub.add_parser("agent", help="steer one fake agent")
    ag.add_argument("kind", choices=sorted(AGENT_TYPES))
    ag.add_argument("host", choices=ALL_HOSTS)
    ag.add_argument("mode", choices=["alive", "soft", "hard"])
    nd = sub.add_parser("node", help="kill (freeze|crash), slow or revive every agent of a host")
    nd.add_argument("host", choices=ALL_HOSTS)
    nd.add_argument("action", choices=[*KILL_HOW, "slow", "revive"])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rig = Rig.load()
    try:
        if args.cmd == "up":
            timings = rig.up(
                neutron_failover=args.neutron_failover,
                report_interval=args.report_interval,
                agent_down_time=args.agent_down_time,
            )
            for name, seconds in timings.items():
                print(f"  {name:<40} {seconds:6.1f}s")
        elif args.cmd == "down":
            rig.down()
        elif args.cmd == "agent":
            rig.set_agent(args.kind, args.host, args.mode)
        elif args.cmd == "status":
            pass
        elif args.action in KILL_HOW:
            print(f"{args.host} {args.action} at {rig.kill_node(args.host, args.action):.3f}")
        elif args.action == "slow":
            rig.slow_node(args.host)
        else:
            rig.revive_node(args.host)
    except RigError as exc:
        print(f"rig: {exc}", file=sys.stderr)
        return 1
    if args.cmd in ("up", "status"):
        print(f"API {rig.api_url}  AMQP {rig.amqp_url}  logs {rig.logs}")
        print(
            f"timers: report_interval {rig.report_interval:g} s, agent_down_time "
            f"{rig.agent_down_time} s, Neutron failover {rig.neutron_failover}"
        )
        print(f"PIDs {rig.pids}  running={rig.running()}")
        if rig.pids:
            print("nodes: " + ", ".join(f"{h} {rig.node_state(h)}" for h in ALL_HOSTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
