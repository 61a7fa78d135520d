"""Fake neutron L3 and DHCP agents speaking the real wire format (run by the NEUTRON venv's Python).

Each agent sends ``report_state`` with neutron's own client, neutron.agent.rpc.PluginReportStateAPI
(an RPC call, as the real L3 and DHCP agents do), and runs an oslo.messaging RPC server on its own
topic (``l3_agent`` / ``dhcp_agent``, server = host) that accepts whatever neutron-server sends
(``router_added_to_agent`` is a call and must be answered) and appends it to ``--inbox``.

Steering, one file per agent in ``--control-dir``, named ``<kind>-<host>`` (e.g. ``l3-net1``):
absent = alive; ``soft`` = no heartbeats, still answers RPC (a wedged agent); ``hard`` = no
heartbeats and its RPC server stopped (a crashed agent). ``beats/<kind>-<host>`` holds the
wall-clock time of the agent's last answered heartbeat. The reports carry a context auth token
(``--token``) so redaction of the real format can be checked. SIGTERM stops everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import oslo_messaging
from neutron.agent import rpc as agent_rpc
from neutron.conf.agent import common as agent_conf
from neutron_lib import context as n_context
from neutron_lib import rpc as n_rpc
from oslo_config import cfg

logger = logging.getLogger("fake_agents")

STATES: dict[str, dict[str, Any]] = {
    "l3": {
        "binary": "neutron-l3-agent",
        "topic": "l3_agent",
        "agent_type": "L3 agent",
        "availability_zone": "nova",
        "configurations": {
            "agent_mode": "legacy",
            "handle_internal_only_routers": True,
            "interface_driver": "openvswitch",
            "log_agent_heartbeats": False,
            "routers": 0,
        },
    },
    "dhcp": {
        "binary": "neutron-dhcp-agent",
        "topic": "dhcp_agent",
        "agent_type": "DHCP agent",
        "availability_zone": "nova",
        "configurations": {
            "dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq",
            "log_agent_heartbeats": False,
            "networks": 0,
        },
    },
}


class Inbox:
    """An RPC endpoint that accepts any method from neutron-server and records it."""

    target = oslo_messaging.Target(version="1.99")

    def __init__(self, name: str, path: str | None, lock: threading.Lock) -> None:
        self._name, self._path, self._lock = name, path, lock

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_") or method.startswith("oslo_"):
            raise AttributeError(method)

        def handler(ctxt: Any, **kwargs: Any) -> None:
            logger.info("%s <- %s", self._name, method)
            if self._path:
                line = json.dumps(
                    {"t": time.time(), "agent": self._name, "method": method, "args": kwargs},
                    default=str,
                )
                with self._lock, open(self._path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")

        return handler


class Agent(threading.Thread):
    def __init__(self, kind: str, host: str, args: argparse.Namespace, stop: threading.Event):
        super().__init__(name=f"{kind}-{host}", daemon=True)
        self.kind, self.host, self.args, self.stop = kind, host, args, stop
        self.state = json.loads(json.dumps(STATES[kind]))
        self.state["host"] = host
        self.state["start_flag"] = True
        self.control = os.path.join(args.control_dir, self.name)
        self.client = agent_rpc.PluginReportStateAPI("q-reports-plugin")
        self.context = n_context.get_admin_context_without_session()
        self.context.auth_token = args.token
        self.server: Any = None
        self.mode = "alive"
        self.inbox_lock = threading.Lock()

    def beat(self) -> None:
        """Record the wall-clock time of the last answered heartbeat (benchmarks start there)."""
        path = os.path.join(self.args.control_dir, "beats", self.name)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(repr(time.time()))
        os.replace(path + ".tmp", path)

    def read_mode(self) -> str:
        try:
            with open(self.control, encoding="utf-8") as fh:
                return "hard" if "hard" in fh.read() else "soft"
        except FileNotFoundError:
            return "alive"
        except OSError:
            return "soft"

    def listen(self, on: bool) -> None:
        if on and self.server is None:
            target = oslo_messaging.Target(topic=self.state["topic"], server=self.host)
            endpoint = Inbox(self.name, self.args.inbox, self.inbox_lock)
            self.server = oslo_messaging.get_rpc_server(
                n_rpc.TRANSPORT, target, [endpoint], executor="threading"
            )
            self.server.start()
        elif not on and self.server is not None:
            self.server.stop()
            self.server.wait()
            self.server = None

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            mode = self.read_mode()
            if mode != self.mode:
                logger.info("%s: %s -> %s", self.name, self.mode, mode)
                self.mode = mode
            self.listen(mode != "hard")
            if mode == "alive":
                try:
                    status = self.client.report_state(self.context, self.state, use_call=True)
                    if status != "alive":
                        logger.info("%s report_state -> %s", self.name, status)
                    self.state.pop("start_flag", None)
                    self.beat()
                except Exception as exc:  # a real agent logs and retries next interval
                    logger.warning("%s report_state failed: %s", self.name, exc)
            self.stop.wait(max(0.1, self.args.interval - (time.monotonic() - began)))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config-file", required=True)
    p.add_argument("--hosts", default="net1,net2,net3")
    p.add_argument("--kinds", default="l3,dhcp")
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--control-dir", required=True)
    p.add_argument("--inbox", default=None)
    p.add_argument("--token", default="peer-secret-agent-token")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("oslo.messaging", "oslo_messaging", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    # neutron's processes use the 'neutron' control exchange; a client that does not say so
    # publishes to 'openstack', where nothing is bound, and every call times out.
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    cfg.CONF(["--config-file", args.config_file], project="neutron")
    n_rpc.init(cfg.CONF)
    os.makedirs(os.path.join(args.control_dir, "beats"), exist_ok=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agents = [
        Agent(kind, host, args, stop)
        for kind in args.kinds.split(",")
        for host in args.hosts.split(",")
        if kind and host
    ]
    for agent in agents:
        agent.start()
    logger.info("fake agents up: %s", [a.name for a in agents])
    while not stop.is_set():
        stop.wait(1)
    # never let a stuck AMQP close keep us around
    watchdog = threading.Timer(2, lambda: os._exit(0))
    watchdog.daemon = True
    watchdog.start()
    for agent in agents:
        agent.join(timeout=3)
        if agent.server is not None:
            agent.server.stop()
    logger.info("fake agents stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
