"""``rpcdaemon sim``: a simulated Neutron cloud in the foreground, driven from stdin.

It starts the API (``SimNeutronServer``) and the agents on the bus (``SimBus``), writes a ready
rpcdaemon.conf, neutron.conf and clouds.yaml into ``--dir``, prints how to run a daemon against
it, then reads commands (``help`` lists them) until EOF or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, TextIO

from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.scenario import build_cloud

logger = logging.getLogger(__name__)

CLOUD_NAME = "rpcdaemon-sim"
HELP = """commands (an AGENT is an agent id or id prefix, TYPE:HOST like l3:net1 / dhcp:net1 /
ovs:net1 / metadata:net1, or a HOST, meaning every agent on that host):
  agents                 list agents: id, type, host, alive, state, routers/networks
  bindings               routers and networks per agent
  kill AGENT             process gone: no heartbeats, router adds to it block then 500
  freeze AGENT           no heartbeats, the process still answers RPC
  cut AGENT              cut off the bus: no heartbeats, RPC does not reach it
  revive AGENT           heartbeats again (start_flag on the first)
  kill-node HOST         the node dies: every agent of HOST at once (OVS, metadata too)
  stop-node HOST         every agent process of HOST exits; the host stays up (a restart)
  freeze-node HOST       every agent of HOST stops reporting; their RPC still answers
  cut-node HOST          HOST cut off the bus: no heartbeats, RPC does not reach it
  revive-node HOST       every agent of HOST reports again
  disable AGENT / enable AGENT   admin_state_up false / true
  calls                  API calls per endpoint
  help                   this text
  quit                   stop (EOF and Ctrl-C too)"""


NODE_COMMANDS = {
    "kill-node": "kill_node",
    "stop-node": "stop_node",
    "freeze-node": "freeze_node",
    "cut-node": "cut_node",
    "revive-node": "revive_node",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpcdaemon sim", description=__doc__.splitlines()[0])
    p.add_argument(
        "--amqp",
        default="amqp://guest:guest@127.0.0.1:5672//",
        help="broker URL (memory:// for no broker)",
    )
    p.add_argument("--exchange", default="neutron", help="control exchange (default neutron)")
    p.add_argument("--no-bus", action="store_true", help="API only: no agents on the bus")
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.add_argument("--auth", choices=("noauth", "keystone"), default="noauth")
    p.add_argument("--l3", type=int, default=3, help="L3 agents")
    p.add_argument("--dhcp", type=int, default=3, help="DHCP agents")
    p.add_argument("--routers", type=int, default=6)
    p.add_argument("--networks", type=int, default=6)
    p.add_argument("--ha-routers", type=int, default=0)
    p.add_argument("--dvr-routers", type=int, default=0)
    p.add_argument(
        "--computes", type=int, default=2, help="compute hosts (Open vSwitch + metadata agents)"
    )
    p.add_argument(
        "--no-node-agents",
        action="store_true",
        help="no Open vSwitch and metadata agents on the network nodes",
    )
    p.add_argument("--azs", default="nova", help="comma-separated availability zones")
    p.add_argument("--agent-down-time", type=float, default=75.0)
    p.add_argument("--report-interval", type=float, default=30.0)
    p.add_argument("--rpc-response-timeout", type=float, default=10.0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dir", default=None, help="where to write rpcdaemon.conf and clouds.yaml")
    return p


def write_configs(
    directory: str, server: SimNeutronServer, args: argparse.Namespace
) -> dict[str, str]:
    """rpcdaemon.conf + neutron.conf + clouds.yaml for a daemon pointed at this simulation."""
    os.makedirs(directory, exist_ok=True)
    paths = {
        name: os.path.join(directory, name)
        for name in ("rpcdaemon.conf", "neutron.conf", "clouds.yaml")
    }
    neutron = [
        "[DEFAULT]",
        f"agent_down_time = {args.agent_down_time:g}",
        f"control_exchange = {args.exchange}",
    ]
    if server.auth == "keystone":
        neutron += [
            "",
            "[keystone_authtoken]",
            f"auth_url = {server.auth_url}",
            "username = admin",
            "password = secret",
            "project_name = admin",
            "user_domain_name = Default",
            "project_domain_name = Default",
            "region_name = RegionOne",
        ]
    conf = [
        "# written by `rpcdaemon sim`",
        "[Daemon]",
        "plugins = L3Agent DHCPAgent",
        f"rpchost = {args.amqp}",
        f"cloud = {CLOUD_NAME}",
        f"pidfile = {os.path.join(directory, 'rpcdaemon.pid')}",
        f"logfile = {os.path.join(directory, 'rpcdaemon.log')}",
        "loglevel = INFO",
        "",
    ]
    for section in ("L3Agent", "DHCPAgent"):
        conf += [f"[{section}]", f"conffile = {paths['neutron.conf']}", "timeout = 20", ""]
    conf += ["[Dump]", f"queue = {args.exchange}", ""]
    if server.auth == "keystone":
        cloud = [
            "    auth:",
            f"      auth_url: {server.auth_url}",
            "      username: admin",
            "      password: secret",
            "      project_name: admin",
            "      user_domain_name: Default",
            "      project_domain_name: Default",
            "    region_name: RegionOne",
        ]
    else:
        cloud = ["    auth_type: none", "    auth:", f"      endpoint: {server.network_url}/"]
    clouds = ["clouds:", f"  {CLOUD_NAME}:", *cloud, ""]
    for name, lines in (
        ("rpcdaemon.conf", conf),
        ("neutron.conf", neutron + [""]),
        ("clouds.yaml", clouds),
    ):
        with open(paths[name], "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines))
    return paths


def _resolve(cloud: SimCloud, ref: str) -> list[dict[str, Any]]:
    agents = cloud.agents()
    if ":" in ref:
        kind, host = ref.split(":", 1)
        want = {
            "l3": "L3 agent",
            "dhcp": "DHCP agent",
            "ovs": "Open vSwitch agent",
            "metadata": "Metadata agent",
        }.get(kind.lower(), kind)
        return [a for a in agents if a["host"] == host and a["agent_type"] == want]
    by_id = [a for a in agents if str(a["id"]).startswith(ref)]
    return by_id or [a for a in agents if a["host"] == ref]


def run_command(
    line: str, cloud: SimCloud, bus: SimBus | None, server: SimNeutronServer, out: TextIO
) -> bool:
    """Execute one stdin command; False means quit."""
    words = line.split()
    if not words:
        return True
    cmd, rest = words[0].lower(), words[1:]
    if cmd in ("quit", "exit"):
        return False
    if cmd == "help":
        print(HELP, file=out)
    elif cmd == "agents":
        for a in sorted(cloud.agents(), key=lambda a: (a["host"], a["agent_type"])):
            state = bus.state(str(a["id"])).value if bus else "-"
            aid = str(a["id"])
            held = (
                len(cloud.routers_on(aid))
                if a["agent_type"] == "L3 agent"
                else len(cloud.networks_on(aid))
            )
            print(
                f"{aid}  {a['agent_type']:<18} {a['host']:<8} alive={str(a['alive']).lower():<5} "
                f"admin={str(a['admin_state_up']).lower():<5} {state:<7} hosts={held}",
                file=out,
            )
    elif cmd == "bindings":
        for a in sorted(cloud.agents(), key=lambda a: (a["host"], a["agent_type"])):
            aid = str(a["id"])
            ids = cloud.routers_on(aid) if a["agent_type"] == "L3 agent" else cloud.networks_on(aid)
            print(f"{a['agent_type']:<11} {a['host']:<8} {' '.join(sorted(ids)) or '-'}", file=out)
    elif cmd == "calls":
        for (method, template), n in sorted(server.calls.snapshot().items()):
            print(f"{n:6d}  {method:<6} {template}", file=out)
    elif cmd in NODE_COMMANDS and rest:
        if bus is None:
            print("no bus (--no-bus): heartbeats are not simulated", file=out)
            return True
        try:
            ids = getattr(bus, NODE_COMMANDS[cmd])(rest[0])
        except KeyError:
            print(f"no agent on host {rest[0]!r}", file=out)
            return True
        print(f"{cmd} {rest[0]}: {len(ids)} agent(s)", file=out)
    elif cmd in ("kill", "freeze", "cut", "revive", "disable", "enable") and rest:
        targets = _resolve(cloud, rest[0])
        if not targets:
            print(f"no agent matches {rest[0]!r}", file=out)
        for a in targets:
            aid = str(a["id"])
            if cmd in ("disable", "enable"):
                cloud.update_agent(aid, admin_state_up=cmd == "enable")
            elif bus is None:
                print("no bus (--no-bus): heartbeats are not simulated", file=out)
                break
            else:
                getattr(bus, cmd)(aid)
            print(f"{cmd} {a['agent_type']} on {a['host']} ({aid})", file=out)
    else:
        print(f"unknown command {line.strip()!r}; try help", file=out)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cloud = build_cloud(
        l3_agents=args.l3,
        dhcp_agents=args.dhcp,
        routers=args.routers,
        networks=args.networks,
        ha_routers=args.ha_routers,
        dvr_routers=args.dvr_routers,
        node_agents=not args.no_node_agents,
        compute_hosts=args.computes,
        azs=tuple(z.strip() for z in args.azs.split(",") if z.strip()) or ("nova",),
        seed=args.seed,
        agent_down_time=args.agent_down_time,
        rpc_response_timeout=args.rpc_response_timeout,
    )
    server = SimNeutronServer(cloud, port=args.port, auth=args.auth, latency=args.latency)
    bus = (
        None
        if args.no_bus
        else SimBus(cloud, args.amqp, report_interval=args.report_interval, exchange=args.exchange)
    )
    directory = args.dir or tempfile.mkdtemp(prefix="rpcdaemon-sim-")
    server.start()
    try:
        if bus is not None:
            bus.start()
        paths = write_configs(directory, server, args)
        print(f"simulated Neutron API: {server.network_url}/v2.0  (auth: {args.auth})")
        if args.auth == "keystone":
            print(f"keystone: {server.auth_url}  user admin / secret, project admin")
        print(f"bus: {'none' if bus is None else args.amqp} exchange {args.exchange}")
        for name, path in paths.items():
            print(f"wrote {name}: {path}")
        print(
            f"run a daemon:  OS_CLIENT_CONFIG_FILE={paths['clouds.yaml']} rpcdaemon -d -c {paths['rpcdaemon.conf']}"
        )
        print("type help for commands")
        sys.stdout.flush()
        for line in sys.stdin:
            if not run_command(line, cloud, bus, server, sys.stdout):
                break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if bus is not None:
            bus.stop()
        cloud.close()
        server.stop()
    return 0
