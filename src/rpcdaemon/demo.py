"""``rpcdaemon demo``: a simulated cloud, a network node that dies, a failover you can watch.

Everything runs in this process: the simulated Neutron API (real HTTP on 127.0.0.1), the
simulated agents heartbeating over a broker (kombu's in-memory transport by default;
``--amqp URL`` for a real RabbitMQ, on a private exchange), and the real daemon (the same
``runtime.app.run`` as ``rpcdaemon run``) pointed at them through a clouds.yaml with
``auth_type: none``. The demo waits until the daemon has listened for a full
``agent_down_time``, kills both agents of the network node hosting the most routers, and
prints the death, the plan, every move and the final table. Exit 0 when converged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.liveness import Transition
from rpcdaemon.runtime import app
from rpcdaemon.runtime.executor import ActionResult, Outcome
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT
from rpcdaemon.sim.scenario import build_cloud

logger = logging.getLogger(__name__)
CLOUD = "rpcdaemon-demo"


@dataclass
class Timeline:
    """Timestamped events, printed live (or kept for ``--json``)."""

    out: TextIO | None
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, text: str, **data: Any) -> None:
        at = time.monotonic() - self.started
        with self.lock:
            self.events.append({"t": round(at, 3), "kind": kind, "text": text, **data})
            if self.out is not None:
                print(f"[{at:6.2f}s] {text}", file=self.out, flush=True)


class Names:
    """Replace the simulated cloud's UUIDs by readable names in demo output."""

    def __init__(self, cloud: SimCloud) -> None:
        self._map: dict[str, str] = {}
        for agent in cloud.agents():
            kind = "L3" if agent["agent_type"] == L3_AGENT else "DHCP"
            self._map[agent["id"]] = f"{kind}@{agent['host']}"
        for router in cloud.routers():
            self._map[router["id"]] = router["name"] or router["id"][:8]
        for network in cloud.networks():
            self._map[network["id"]] = network["name"] or network["id"][:8]

    def of(self, text: str) -> str:
        for ident, name in self._map.items():
            if ident in text:
                text = text.replace(ident, name)
        return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rpcdaemon demo",
        description="Run a simulated Neutron cloud and the real daemon against it, kill a "
        "network node, and watch its routers and DHCP networks fail over.",
    )
    p.add_argument("--amqp", default="memory://", help="broker URL (default: in-process memory://)")
    p.add_argument("--l3", type=int, default=3, help="L3 agents (default 3)")
    p.add_argument("--dhcp", type=int, default=3, help="DHCP agents (default 3)")
    p.add_argument("--routers", type=int, default=12, help="legacy routers (default 12)")
    p.add_argument("--networks", type=int, default=4, help="DHCP networks (default 4)")
    p.add_argument(
        "--agent-down-time", type=float, default=6.0, help="seconds (default 6; Neutron's is 75)"
    )
    p.add_argument("--report-interval", type=float, default=1.0, help="heartbeat period (s)")
    p.add_argument("--latency", type=float, default=0.0, help="added to every API call (s)")
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this long (s)")
    p.add_argument("--json", action="store_true", help="print the timeline as JSON at the end")
    p.add_argument("-v", "--verbose", action="store_true", help="show the daemon's own log")
    return p


def _write_clouds_yaml(directory: str, url: str) -> str:
    path = os.path.join(directory, "clouds.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(
            "clouds:\n"
            f"  {CLOUD}:\n"
            "    auth_type: none\n"
            "    auth:\n"
            f"      endpoint: {url}\n"
            f"    network_endpoint_override: {url}\n"
        )
    return path


def _settings(url: str, exchange: str, adt: float) -> Settings:
    def section(name: str) -> AgentPluginSettings:
        return AgentPluginSettings(
            name=name,
            conffile=None,
            exchange=exchange,
            agent_down_time=adt,
            timeout=10.0,
            max_moves_per_pass=1000,
        )

    return Settings(
        path="<demo>",
        daemon=DaemonSettings(
            plugins=("L3Agent", "DHCPAgent"),
            rpchost=url,
            amqp_url=url,
            cloud=CLOUD,
            foreground=True,
            check_interval=0.25,
            resync_interval=30.0,
            reconnect_max_backoff=2.0,
        ),
        l3=section("L3Agent"),
        dhcp=section("DHCPAgent"),
    )


def converged(cloud: SimCloud, dead_hosts: set[str]) -> tuple[bool, list[str]]:
    """Every router on a live L3 agent; every DHCP network on every live DHCP agent."""
    problems: list[str] = []
    agents = cloud.agents()
    live_l3 = {
        a["id"] for a in agents if a["agent_type"] == L3_AGENT and a["host"] not in dead_hosts
    }
    live_dhcp = {
        a["id"] for a in agents if a["agent_type"] == DHCP_AGENT and a["host"] not in dead_hosts
    }
    for router in cloud.routers():
        if not cloud.router_agents(router["id"]) & live_l3:
            problems.append(f"router {router['name'] or router['id']} has no live L3 agent")
    dead_ids = {a["id"] for a in agents if a["host"] in dead_hosts}
    for network in cloud.networks():
        hosts = cloud.network_agents(network["id"])
        if hosts & dead_ids:
            problems.append(f"network {network['name']} still on a dead DHCP agent")
        if cloud.is_dhcp_network(network["id"]) and not live_dhcp <= hosts:
            problems.append(f"network {network['name']} missing from a live DHCP agent")
    return not problems, problems


def table(cloud: SimCloud, dead_hosts: set[str]) -> list[str]:
    rows = []
    names = {r["id"]: r["name"] for r in cloud.routers()}
    nets = {n["id"]: n["name"] for n in cloud.networks()}
    for agent in sorted(cloud.agents(), key=lambda a: (a["agent_type"], a["host"])):
        if agent["agent_type"] == L3_AGENT:
            hosted = sorted(names.get(r, r) for r in cloud.routers_on(agent["id"]))
        else:
            hosted = sorted(nets.get(n, n) for n in cloud.networks_on(agent["id"]))
        state = "DEAD" if agent["host"] in dead_hosts else "alive"
        rows.append(
            f"  {agent['agent_type']:<11} {agent['host']:<6} {state:<5} "
            f"{len(hosted):>3}  {' '.join(hosted)}"
        )
    return rows


def _delete_exchange(url: str, name: str) -> None:
    """Remove the demo's private exchange from a real broker on the way out."""
    import kombu

    kombu_: Any = kombu  # untyped
    try:
        with kombu_.Connection(url, connect_timeout=5) as conn:
            kombu_.Exchange(name, type="topic")(conn.default_channel).delete()
    except Exception as exc:  # best effort: the demo's result does not depend on it
        logger.warning("could not delete the demo exchange %s: %s", name, exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    out = None if args.json else sys.stdout
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    timeline = Timeline(out)
    adt = args.agent_down_time
    exchange = (
        "neutron" if args.amqp.startswith("memory://") else f"rpcdaemon-demo-{uuid.uuid4().hex[:8]}"
    )
    cloud = build_cloud(
        l3_agents=args.l3,
        dhcp_agents=args.dhcp,
        routers=args.routers,
        networks=args.networks,
        agent_down_time=adt,
        rpc_response_timeout=2.0,
        seed=7,
    )
    workdir = tempfile.mkdtemp(prefix="rpcdaemon-demo-")
    server = SimNeutronServer(cloud, auth="noauth", latency=args.latency)
    server.start()
    bus = SimBus(cloud, args.amqp, report_interval=args.report_interval, exchange=exchange, seed=7)
    bus.start()
    os.environ["OS_CLIENT_CONFIG_FILE"] = _write_clouds_yaml(workdir, server.network_url)
    timeline.add(
        "setup",
        f"simulated cloud: {args.l3} L3 + {args.dhcp} DHCP agents, {args.routers} routers, "
        f"{args.networks} networks; Neutron API {server.network_url}; bus {args.amqp}; "
        f"agent_down_time {adt:g}s",
    )
    stop = threading.Event()
    reactors: list[Reactor] = []
    dead_hosts: set[str] = set()
    killed_at: list[float] = []

    def on_transition(change: Transition) -> None:
        if change.new is Liveness.DEAD:
            timeline.add(
                "dead",
                f"daemon: {change.key} declared DEAD ({change.reason})",
                agent=str(change.key),
            )
        elif change.new is Liveness.ALIVE and change.old is Liveness.DEAD:
            timeline.add("alive", f"daemon: {change.key} is back", agent=str(change.key))

    names = Names(cloud)

    def on_plan(plan: Plan) -> None:
        if plan.tasks:
            timeline.add(
                "plan",
                f"daemon: {plan.plugin} plan: {len(plan.tasks)} task(s)",
                plugin=plan.plugin,
                tasks=[names.of(t.reason) for t in plan.tasks],
            )
        for note in plan.held:
            timeline.add("held", f"daemon: {plan.plugin} held: {names.of(note)}")

    def on_pass(report: PassReport) -> None:
        if report.error:
            timeline.add("error", f"daemon: pass failed: {report.error}")

    def on_action(result: ActionResult) -> None:
        what = names.of(result.action.describe())
        if result.outcome in (Outcome.OK, Outcome.ALREADY):
            timeline.add("action", f"daemon:   {what}", outcome=result.outcome.value)
        else:
            detail = names.of(result.detail)
            timeline.add("action", f"daemon:   {result.outcome.value}: {what} ({detail})")

    hooks = app.Hooks(
        on_pass=on_pass,
        on_transition=on_transition,
        on_action=on_action,
        on_reactor=reactors.append,
        on_plan=on_plan,
    )
    settings = _settings(args.amqp, exchange, adt)
    exit_box: list[int] = []
    daemon = threading.Thread(
        target=lambda: exit_box.append(app.run(settings, stop=stop, hooks=hooks)),
        name="rpcdaemon",
        daemon=True,
    )
    daemon.start()
    deadline = time.monotonic() + args.timeout
    status = 1
    try:
        timeline.add("wait", f"daemon started; it listens {adt:g}s before it may declare any death")
        while time.monotonic() < deadline and daemon.is_alive():
            reactor = reactors[0] if reactors else None
            if reactor is not None and reactor.bus.listened_for(time.monotonic()) >= adt:
                break
            time.sleep(0.2)
        ok, _ = converged(cloud, set())
        timeline.add("ready", f"daemon has listened a full agent_down_time; converged: {ok}")
        victim = max(
            (a for a in cloud.agents() if a["agent_type"] == L3_AGENT),
            key=lambda a: (len(cloud.routers_on(a["id"])), a["host"]),
        )
        host = victim["host"]
        for agent in cloud.agents():
            if agent["host"] == host:
                bus.kill(agent["id"])
        dead_hosts.add(host)
        killed_at.append(time.monotonic())
        timeline.add(
            "kill",
            f"network node {host} dies: its L3 agent hosted {len(cloud.routers_on(victim['id']))} "
            f"routers; no more heartbeats from {host}",
            host=host,
        )
        while time.monotonic() < deadline and daemon.is_alive():
            ok, _ = converged(cloud, dead_hosts)
            if ok:
                took = time.monotonic() - killed_at[0]
                timeline.add(
                    "converged", f"converged {took:.2f}s after the node died", seconds=took
                )
                status = 0
                break
            time.sleep(0.1)
        else:
            _, problems = converged(cloud, dead_hosts)
            timeline.add("timeout", "NOT converged: " + "; ".join(problems[:5]))
    finally:
        stop.set()
        daemon.join(10)
        bus.stop()
        if exchange != "neutron":
            _delete_exchange(args.amqp, exchange)
        server.stop()
        cloud.close()
    rows = table(cloud, dead_hosts)
    if args.json:
        json.dump(
            {"converged": status == 0, "timeline": timeline.events, "table": rows},
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print("\nagents and what they host:")
        print("\n".join(rows))
    return status
