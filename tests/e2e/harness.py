"""The end-to-end rig: a simulated Neutron (real HTTP), simulated agents on the real RabbitMQ,
and the real daemon as a process (``python -m rpcdaemon -d -c FILE``) pointed at both.

``Rig`` owns the cloud, the API server and the bus; ``Rig.start_daemon(...)`` writes
rpcdaemon.conf, neutron.conf and clouds.yaml into the test's directory and starts the
daemon with stderr captured to a file; ``DaemonProcess`` reads that log and stops the
daemon with SIGTERM (exit status 0 expected). Timings are short (agent_down_time a few
seconds, heartbeats every 0.5 s) so that the suite runs in minutes; every wait has a
generous deadline and the assertions are on behaviour.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT
from rpcdaemon.sim.scenario import build_cloud
from tests.tcpproxy import TcpProxy

CLOUD = "e2e"
REPORT_INTERVAL = 0.5
CHECK_INTERVAL = 0.25
STOP_WITHIN = 10.0  # the spec says 5 s; the margin is for a loaded CI machine

ADD_ROUTER = ("POST", "/v2.0/agents/{agent_id}/l3-routers")
REMOVE_ROUTER = ("DELETE", "/v2.0/agents/{agent_id}/l3-routers/{router_id}")
ADD_NETWORK = ("POST", "/v2.0/agents/{agent_id}/dhcp-networks")
REMOVE_NETWORK = ("DELETE", "/v2.0/agents/{agent_id}/dhcp-networks/{network_id}")
LIST_AGENTS = ("GET", "/v2.0/agents")


def wait_until(what: str, check: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Poll ``check`` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def measure(name: str, seconds: float | None = None, **extra: object) -> None:
    """Print measured numbers (run pytest with -s to see them)."""
    items = ([f"{seconds:.2f}s"] if seconds is not None else []) + [
        f"{k}={v}" for k, v in extra.items()
    ]
    print(f"\nE2E-MEASURE {name} {' '.join(items)}", flush=True)


class RecordingCloud(SimCloud):
    """The simulated cloud, remembering when (our monotonic clock) the simulated
    neutron-server received each agent's last report_state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seen_lock = threading.Lock()
        self._last_report: dict[tuple[str, str], float] = {}

    def heartbeat(
        self, host: str, agent_type: str, *, state: Mapping[str, Any] | None = None
    ) -> str:
        status = super().heartbeat(host, agent_type, state=state)
        with self._seen_lock:
            self._last_report[(agent_type, host)] = time.monotonic()
        return status

    def last_report(self, agent_id: str) -> float:
        agent = self.agent(agent_id)
        with self._seen_lock:
            return self._last_report[(str(agent["agent_type"]), str(agent["host"]))]


class DaemonProcess:
    """``python -m rpcdaemon -d -c FILE`` with its stderr (the log) in a file."""

    def __init__(self, directory: Path, config: Path, env: Mapping[str, str], args: Sequence[str]):
        self.log_path = directory / "daemon.log"
        self.out_path = directory / "daemon.out"
        self._err = self.log_path.open("wb")
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(config), *args],
            cwd=directory,
            env=dict(env),
            stdout=self._out,
            stderr=self._err,
        )
        self.returncode: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, level: str | None = None) -> list[str]:
        lines = self.log().splitlines()
        if level is None:
            return lines
        return [line for line in lines if len(line.split(None, 3)) > 2 and line.split()[2] == level]

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, timeout: float = 30.0, count: int = 1) -> float:
        """Wait until ``pattern`` (a regex) occurs ``count`` times in the log."""

        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.proc.returncode}) while waiting for "
                    f"{pattern!r}:\n{self.log()[-3000:]}"
                )
            return self.count(pattern) >= count

        return wait_until(f"{pattern!r} in the daemon log", seen, timeout)

    def wait_ready(self, agent_down_time: float, timeout: float = 30.0) -> None:
        """Until the daemon has consumed for a full ``agent_down_time`` (it may judge deaths)."""
        seen = self.wait_log(r"listening on the bus", timeout)
        time.sleep(max(0.0, seen + agent_down_time + 0.5 - time.monotonic()))

    def stop(self) -> int:
        """SIGTERM; the daemon must exit 0. Returns the exit status."""
        if self.returncode is not None:
            return self.returncode
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self.returncode = self.proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.returncode = -9
        finally:
            self._err.close()
            self._out.close()
        return self.returncode

    def assert_clean_exit(self) -> None:
        status = self.stop()
        assert status == 0, f"daemon exit status {status}:\n{self.log()[-3000:]}"
        assert "Traceback" not in self.log(), self.log()[-3000:]


def _ini(sections: Mapping[str, Mapping[str, object]]) -> str:
    out: list[str] = []
    for name, options in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)


class Rig:
    """A simulated cloud (API + agents on the bus) and, once started, the daemon."""

    def __init__(
        self,
        directory: Path,
        amqp_url: str,
        exchange: str,
        *,
        l3: int = 3,
        dhcp: int = 0,
        routers: int = 6,
        networks: int = 0,
        agent_down_time: float = 3.0,
        latency: float = 0.0,
        auth: str = "noauth",
        bind: bool = True,
        seed: int = 1,
        dhcp_agents_per_network: int = 1,
    ) -> None:
        self.dir = directory
        self.amqp_url = amqp_url
        self.exchange = exchange
        self.agent_down_time = agent_down_time
        self.cloud = RecordingCloud(agent_down_time=agent_down_time, rpc_response_timeout=2.0)
        build_cloud(
            l3_agents=l3,
            dhcp_agents=dhcp,
            routers=routers,
            networks=networks,
            bind=bind,
            seed=seed,
            dhcp_agents_per_network=dhcp_agents_per_network,
            cloud=self.cloud,
        )
        self.server = SimNeutronServer(self.cloud, auth=auth, latency=latency)
        self.bus = SimBus(self.cloud, amqp_url, report_interval=REPORT_INTERVAL, exchange=exchange)
        self.daemons: list[DaemonProcess] = []
        self.http = requests.Session()
        self._token: str | None = None

    def start(self) -> Rig:
        self.server.start()
        self.bus.start()
        return self

    def close(self) -> None:
        try:
            for daemon in self.daemons:
                daemon.stop()
        finally:
            self.bus.stop()
            self.cloud.close()
            self.server.stop()
            self.http.close()

    # -- the daemon ------------------------------------------------------------------------

    def write_configs(
        self,
        *,
        plugins: str = "L3Agent",
        rpchost: str | None = None,
        use_cloud: bool = True,
        clouds_auth: str = "none",
        daemon: Mapping[str, object] | None = None,
        l3: Mapping[str, object] | None = None,
        dhcp: Mapping[str, object] | None = None,
        dump: Mapping[str, object] | None = None,
        neutron_auth: Mapping[str, object] | None = None,
        neutron_auth_section: str = "keystone_authtoken",
    ) -> Path:
        neutron_conf = self.dir / "neutron.conf"
        neutron: dict[str, dict[str, object]] = {
            "DEFAULT": {
                "agent_down_time": f"{self.agent_down_time:g}",
                "control_exchange": self.exchange,
            }
        }
        if neutron_auth is not None:
            neutron.setdefault(neutron_auth_section, {}).update(neutron_auth)
        neutron_conf.write_text(_ini(neutron))
        clouds = self.dir / "clouds.yaml"
        if clouds_auth == "none":
            body = (
                "    auth_type: none\n"
                "    auth:\n"
                f"      endpoint: {self.server.network_url}\n"
                f"    network_endpoint_override: {self.server.network_url}\n"
            )
        else:
            body = (
                "    auth:\n"
                f"      auth_url: {self.server.auth_url}\n"
                "      username: admin\n"
                "      password: secret\n"
                "      project_name: admin\n"
                "      user_domain_name: Default\n"
                "      project_domain_name: Default\n"
                "    region_name: RegionOne\n"
            )
        clouds.write_text(f"clouds:\n  {CLOUD}:\n{body}")
        base: dict[str, object] = {
            "plugins": plugins,
            "rpchost": rpchost or self.amqp_url,
            "loglevel": "INFO",
            "check_interval": CHECK_INTERVAL,
            "resync_interval": 30,
            "reconnect_max_backoff": 1,
        }
        if use_cloud:
            base["cloud"] = CLOUD
        base.update(daemon or {})
        agent_common: dict[str, object] = {
            "conffile": neutron_conf,
            "exchange": self.exchange,
            "agent_down_time": f"{self.agent_down_time:g}",
            "queue_expire": 30,
            "timeout": 10,
        }
        sections: dict[str, Mapping[str, object]] = {
            "Daemon": base,
            "L3Agent": {**agent_common, **(l3 or {})},
            "DHCPAgent": {**agent_common, **(dhcp or {})},
            "Dump": {"queue": self.exchange, "queue_expire": 30, **(dump or {})},
        }
        config = self.dir / "rpcdaemon.conf"
        config.write_text(_ini(sections))
        return config

    def start_daemon(self, *, args: Sequence[str] = (), **config: Any) -> DaemonProcess:
        path = self.write_configs(**config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.dir / "clouds.yaml")
        env["PYTHONUNBUFFERED"] = "1"
        daemon = DaemonProcess(self.dir, path, env, args)
        self.daemons.append(daemon)
        return daemon

    # -- the cloud as a test sees it --------------------------------------------------------

    def agents(self, agent_type: str) -> list[dict[str, Any]]:
        return sorted(
            (a for a in self.cloud.agents() if a["agent_type"] == agent_type),
            key=lambda a: str(a["host"]),
        )

    def l3_ids(self) -> list[str]:
        return [str(a["id"]) for a in self.agents(L3_AGENT)]

    def dhcp_ids(self) -> list[str]:
        return [str(a["id"]) for a in self.agents(DHCP_AGENT)]

    def routers_on(self, agent_id: str) -> set[str]:
        return set(self.cloud.routers_on(agent_id))

    def networks_on(self, agent_id: str) -> set[str]:
        return set(self.cloud.networks_on(agent_id))

    def router_hosts(self) -> dict[str, set[str]]:
        return {
            str(r["id"]): set(self.cloud.router_agents(str(r["id"]))) for r in self.cloud.routers()
        }

    def dhcp_network_ids(self) -> set[str]:
        return {
            str(n["id"]) for n in self.cloud.networks() if self.cloud.is_dhcp_network(str(n["id"]))
        }

    def busiest_l3(self) -> str:
        return max(self.l3_ids(), key=lambda a: (len(self.routers_on(a)), a))

    def every_router_on_one_of(self, agents: Iterable[str]) -> bool:
        """Every router hosted exactly once, on one of ``agents``."""
        allowed = set(agents)
        return all(len(h) == 1 and h <= allowed for h in self.router_hosts().values())

    def every_dhcp_network_on(self, agents: Iterable[str]) -> bool:
        wanted = set(agents)
        return all(set(self.cloud.network_agents(n)) >= wanted for n in self.dhcp_network_ids())

    def calls(self, *keys: tuple[str, str]) -> int:
        return sum(self.server.calls.get(method, template) for method, template in keys)

    def router_moves(self) -> int:
        return self.calls(ADD_ROUTER, REMOVE_ROUTER)

    def network_changes(self) -> int:
        return self.calls(ADD_NETWORK, REMOVE_NETWORK)

    def kill(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            self.bus.kill(agent_id)

    # -- the Neutron API over HTTP, as another client would use it ---------------------------

    def api(self, method: str, path: str, body: object | None = None) -> requests.Response:
        response = self.http.request(
            method, f"{self.server.network_url}{path}", json=body, timeout=30
        )
        return response

    def create_network(self, name: str, *, dhcp: bool = True, cidr: str = "10.200.0.0/24") -> str:
        net = self.api("POST", "/v2.0/networks", {"network": {"name": name}})
        assert net.status_code == 201, net.text
        network_id = str(net.json()["network"]["id"])
        sub = self.api(
            "POST",
            "/v2.0/subnets",
            {
                "subnet": {
                    "network_id": network_id,
                    "cidr": cidr,
                    "ip_version": 4,
                    "enable_dhcp": dhcp,
                    "name": f"{name}-subnet",
                }
            },
        )
        assert sub.status_code == 201, sub.text
        return network_id


def proxy_url(proxy: TcpProxy, amqp_url: str) -> str:
    """``amqp_url`` with its host and port replaced by the proxy's."""
    parts = urllib.parse.urlsplit(amqp_url)
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "guest:guest"
    return urllib.parse.urlunsplit(
        (parts.scheme, f"{userinfo}@127.0.0.1:{proxy.port}", parts.path, "", "")
    )


# -- several daemons on one rig, and their metrics endpoint ---------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the daemon binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon_in(
    rig: Rig, name: str, *, args: Sequence[str] = (), **config: Any
) -> DaemonProcess:
    """Like ``Rig.start_daemon``, but with its own directory ``rig.dir / name`` (its own
    rpcdaemon.conf, log and working directory), so several daemons can share one rig.
    neutron.conf and clouds.yaml stay shared in ``rig.dir``."""
    directory = rig.dir / name
    directory.mkdir()
    config_path = directory / "rpcdaemon.conf"
    config_path.write_text(rig.write_configs(**config).read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(rig.dir / "clouds.yaml")
    env["PYTHONUNBUFFERED"] = "1"
    daemon = DaemonProcess(directory, config_path, env, args)
    rig.daemons.append(daemon)
    return daemon


class MetricsEndpoint:
    """A client of a daemon's ``metrics_address``: /metrics parsed, /healthz, /readyz."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.base}{path}", timeout=10)

    def answers(self) -> bool:
        try:
            return self.get("/healthz").status_code in (200, 503)
        except requests.ConnectionError:
            return False

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        response = self.get("/metrics")
        response.raise_for_status()
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples called ``name`` whose labels include ``labels``;
        None if there is no such sample."""
        found = [
            value
            for sample, have, value in self.samples()
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        ]
        return sum(found) if found else None

    def close(self) -> None:
        self.http.close()
