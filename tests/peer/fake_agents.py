"""Fake neutron agents speaking the real wire format (run by the NEUTRON venv's Python).

The rig runs ONE process per host (``--hosts net1 --kinds l3,dhcp,ovs,metadata``), so that
stopping that process stops every agent of the host at once, as a node death does. Kinds:

* ``l3`` / ``dhcp``: ``report_state`` as an RPC call (neutron.agent.rpc.PluginReportStateAPI,
  as the real agents do) and an oslo.messaging RPC server on ``l3_agent`` / ``dhcp_agent``,
  server = host (queue ``<topic>.<host>``);
* ``ovs``: the Open vSwitch agent. In neutron 29 it reports with a call too (ovs_neutron_agent.py
  ``_report_state``), and its ``setup_rpc`` consumes, through neutron.agent.rpc.create_consumers
  with prefix ``q-agent-notifier``, the topics ``tunnel-update``, ``tunnel-delete`` and
  ``dvr-update`` (``l2population-update`` only with l2pop, off here), each an RPC server with
  server = host (queues ``q-agent-notifier-tunnel-update.<host>`` ...). Port updates reach a
  29 agent through its resource cache (``neutron-vo-*`` fanouts), not through
  ``q-agent-notifier-port-update``; those fanouts are not faked;
* ``metadata``: the Metadata agent (neutron/agent/metadata/agent.py): a call while its state
  still carries ``start_flag`` (the first report), casts afterwards; no RPC server.

Every RPC server accepts whatever public method neutron-server sends (``router_added_to_agent``
is a call and must be answered) and appends it to ``--inbox``. A private name (``_...``), as an
active liveness probe sends, is refused: the caller gets a ``NoSuchMethod`` failure at once, as
from a real agent.

Steering, files in ``--control-dir``, read by each agent once per report interval:
``<kind>-<host>`` (e.g. ``l3-net1``) steers one agent, ``node-<host>`` every agent of the host;
absent = alive; ``soft`` = no heartbeats, still answers RPC (a wedged or slow agent); ``hard`` =
no heartbeats and its RPC servers stopped (a crashed agent process). The harder of the two files
wins. ``beats/<kind>-<host>`` holds the wall-clock time of the agent's last heartbeat that went
through (a call answered, or a cast published). Reports carry a context auth token (``--token``)
so redaction of the real format can be checked. SIGTERM stops everything.

``probe TOPIC.HOST ...`` (same ``--config-file``) calls each target once, concurrently, with a
private method name, and prints JSON ``{target: "answered: ..." | "timeout"}``.
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
    "ovs": {
        "binary": "neutron-openvswitch-agent",
        "topic": "N/A",
        "agent_type": "Open vSwitch agent",
        "configurations": {
            "bridge_mappings": {},
            "integration_bridge": "br-int",
            "tunnel_types": ["vxlan"],
            "tunneling_ip": "127.0.0.1",
            "l2_population": False,
            "arp_responder_enabled": False,
            "enable_distributed_routing": False,
            "log_agent_heartbeats": False,
            "extensions": [],
            "datapath_type": "system",
            "ovs_hybrid_plug": False,
            "devices": 0,
        },
    },
    "metadata": {
        "binary": "neutron-metadata-agent",
        "topic": "N/A",
        "agent_type": "Metadata agent",
        "configurations": {
            "metadata_proxy_socket": "/var/lib/neutron/metadata_proxy",
            "nova_metadata_host": "127.0.0.1",
            "nova_metadata_port": 8775,
            "log_agent_heartbeats": False,
        },
    },
}

# the topics each kind's RPC servers consume (server = host); none for the metadata agent
RPC_TOPICS: dict[str, tuple[str, ...]] = {
    "l3": ("l3_agent",),
    "dhcp": ("dhcp_agent",),
    "ovs": (
        "q-agent-notifier-tunnel-update",
        "q-agent-notifier-tunnel-delete",
        "q-agent-notifier-dvr-update",
    ),
    "metadata": (),
}

# kinds whose report_state is a call only while start_flag is set (the metadata agent)
CAST_AFTER_START = frozenset({"metadata"})

PROBE_METHOD = "_rig_probe_ignore_errors"


class Inbox:
    """An RPC endpoint that accepts any public method from neutron-server and records it."""

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


def _read_mode(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return "hard" if "hard" in fh.read() else "soft"
    except FileNotFoundError:
        return "alive"
    except OSError:
        return "soft"


class Agent(threading.Thread):
    def __init__(
        self,
        kind: str,
        host: str,
        args: argparse.Namespace,
        stop: threading.Event,
        inbox_lock: threading.Lock,
    ) -> None:
        super().__init__(name=f"{kind}-{host}", daemon=True)
        self.kind, self.host, self.args, self.stop = kind, host, args, stop
        self.state = json.loads(json.dumps(STATES[kind]))
        self.state["host"] = host
        self.state["start_flag"] = True
        self.control = os.path.join(args.control_dir, self.name)
        self.node_control = os.path.join(args.control_dir, f"node-{host}")
        self.client = agent_rpc.PluginReportStateAPI("q-reports-plugin")
        self.context = n_context.get_admin_context_without_session()
        self.context.auth_token = args.token
        self.servers: list[Any] = []
        self.mode = "alive"
        self.inbox_lock = inbox_lock

    def beat(self) -> None:
        """Record the wall-clock time of the last heartbeat that went through (benchmarks
        start there)."""
        path = os.path.join(self.args.control_dir, "beats", self.name)
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(repr(time.time()))
        os.replace(path + ".tmp", path)

    def read_mode(self) -> str:
        """The harder of the agent's own file and its host's."""
        modes = {_read_mode(self.control), _read_mode(self.node_control)}
        return next(m for m in ("hard", "soft", "alive") if m in modes)

    def listen(self, on: bool) -> None:
        if on and not self.servers:
            endpoint = Inbox(self.name, self.args.inbox, self.inbox_lock)
            for topic in RPC_TOPICS[self.kind]:
                target = oslo_messaging.Target(topic=topic, server=self.host)
                server = oslo_messaging.get_rpc_server(
                    n_rpc.TRANSPORT, target, [endpoint], executor="threading"
                )
                server.start()
                self.servers.append(server)
        elif not on and self.servers:
            for server in self.servers:
                server.stop()
            for server in self.servers:
                server.wait()
            self.servers = []

    def report(self) -> None:
        use_call = self.kind not in CAST_AFTER_START or "start_flag" in self.state
        try:
            status = self.client.report_state(self.context, self.state, use_call=use_call)
        except Exception as exc:  # a real agent logs and retries next interval
            logger.warning("%s report_state failed: %s", self.name, exc)
            return
        if use_call and status != "alive":
            logger.info("%s report_state -> %s", self.name, status)
        self.state.pop("start_flag", None)
        self.beat()

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            mode = self.read_mode()
            if mode != self.mode:
                logger.info("%s: %s -> %s", self.name, self.mode, mode)
                self.mode = mode
            self.listen(mode != "hard")
            if mode == "alive":
                self.report()
            self.stop.wait(max(0.1, self.args.interval - (time.monotonic() - began)))


def setup(config_file: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("oslo.messaging", "oslo_messaging", "amqp", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    # neutron's processes use the 'neutron' control exchange; a client that does not say so
    # publishes to 'openstack', where nothing is bound, and every call times out.
    oslo_messaging.set_transport_defaults(control_exchange="neutron")
    cfg.CONF(["--config-file", config_file], project="neutron")
    n_rpc.init(cfg.CONF)


def probe(targets: list[str], timeout: float) -> dict[str, str]:
    """Call a private method on each ``topic.host``: any reply (a NoSuchMethod failure from
    a live consumer) is "answered", no reply within ``timeout`` is "timeout"."""
    context = n_context.get_admin_context_without_session()
    out: dict[str, str] = {}

    def one(target: str) -> None:
        topic, _, host = target.partition(".")
        client = n_rpc.get_client(oslo_messaging.Target(topic=topic, server=host or None))
        try:
            result = client.prepare(timeout=timeout).call(context, PROBE_METHOD)
            out[target] = f"answered: {result!r}"
        except oslo_messaging.MessagingTimeout:
            out[target] = "timeout"
        except Exception as exc:  # the remote end raised: a live process consumed the call
            out[target] = f"answered: {type(exc).__name__}"

    threads = [threading.Thread(target=one, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    return {t: out.get(t, "timeout") for t in targets}


def main() -> int:
    if sys.argv[1:2] == ["probe"]:
        pp = argparse.ArgumentParser(prog="fake_agents.py probe")
        pp.add_argument("--config-file", required=True)
        pp.add_argument("--timeout", type=float, default=3.0)
        pp.add_argument("targets", nargs="+", help="topic.host, e.g. l3_agent.net1")
        pargs = pp.parse_args(sys.argv[2:])
        setup(pargs.config_file)
        print(json.dumps(probe(pargs.targets, pargs.timeout)), flush=True)
        os._exit(0)  # never wait on the transport's threads
    p = argparse.ArgumentParser()
    p.add_argument("--config-file", required=True)
    p.add_argument("--hosts", default="net1,net2,net3")
    p.add_argument("--kinds", default="l3,dhcp")
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--control-dir", required=True)
    p.add_argument("--inbox", default=None)
    p.add_argument("--token", default="peer-secret-agent-token")
    args = p.parse_args()
    setup(args.config_file)
    os.makedirs(os.path.join(args.control_dir, "beats"), exist_ok=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    inbox_lock = threading.Lock()
    agents = [
        Agent(kind, host, args, stop, inbox_lock)
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
        for server in agent.servers:
            server.stop()
    logger.info("fake agents stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
