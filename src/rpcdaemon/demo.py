"""``rpcdaemon demo``: a simulated cloud, a network node that dies, a failover you can watch.

Everything runs in this process: the simulated Neutron API (real HTTP on 127.0.0.1), the
simulated agents heartbeating over a broker and answering RPC on their own queues, and the
real daemon (the same ``runtime.app.run`` as ``rpcdaemon run``) pointed at them through a
clouds.yaml with ``auth_type: none``. The broker is the local RabbitMQ when it answers (or
``--amqp URL``; on a private exchange, deleted afterwards), else kombu's in-process
``memory://``, where the daemon cannot probe agents and every death waits for
``agent_down_time`` (today's rule).

Three network nodes run an L3, a DHCP, an Open vSwitch and a metadata agent each; compute
hosts run the last two. Once the daemon has listened for a full ``agent_down_time``:

* ``--kill node`` (default): the network node hosting the most routers dies, every agent of
  it at once. The daemon sees the whole host fall silent while the others report, probes its
  agents' queues (unanswered, while another host's answer) and moves its routers and DHCP
  networks within seconds: the NODE DOWN verdict.
* ``--kill agent``: only that node's L3 agent process crashes; its other agents keep
  reporting. A crashed process leaves its routers serving, so the daemon waits for
  ``agent_down_time`` and the API (today's rule) before it moves them.

It prints the timeline (``--json``: as JSON at the end) and the final table; exit 0 when
converged.
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
from typing import Any

from rpcdaemon.core.actions import Plan
from rpcdaemon.core.detection import DetectorPolicy
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
from rpcdaemon.sim.demoview import (
    DaemonTap,
    Names,
    Timeline,
    converged,
    masked_url,
    pick_amqp,
    table,
)
from rpcdaemon.sim.resources import L3_AGENT
from rpcdaemon.sim.scenario import build_cloud

logger = logging.getLogger(__name__)
CLOUD = "rpcdaemon-demo"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rpcdaemon demo",
        description="Run a simulated Neutron cloud and the real daemon against it, kill a "
        "network node, and watch its routers and DHCP networks fail over.",
    )
    p.add_argument(
        "--amqp",
        default=None,
        help="broker URL (default: the local RabbitMQ if it answers, else in-process memory://)",
    )
    p.add_argument(
        "--kill",
        choices=("node", "agent"),
        default="node",
        help="node: a network node dies, all its agents (default); agent: only its L3 "
        "agent process crashes (today's rule: wait agent_down_time)",
    )
    p.add_argument("--l3", type=int, default=3, help="network nodes with an L3 agent (default 3)")
    p.add_argument("--dhcp", type=int, default=3, help="... and a DHCP agent (default 3)")
    p.add_argument("--computes", type=int, default=2, help="compute hosts (default 2)")
    p.add_argument("--routers", type=int, default=12, help="legacy routers (default 12)")
    p.add_argument("--networks", type=int, default=4, help="DHCP networks (default 4)")
    p.add_argument(
        "--agent-down-time", type=float, default=6.0, help="seconds (default 6; Neutron's is 75)"
    )
    p.add_argument("--report-interval", type=float, default=1.0, help="heartbeat period (s)")
    p.add_argument(
        "--probe-timeout", type=float, default=0.5, help="seconds a probed queue has to answer"
    )
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


def _settings(url: str, exchange: str, adt: float, detection: DetectorPolicy) -> Settings:
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
            detection=detection,
        ),
        l3=section("L3Agent"),
        dhcp=section("DHCPAgent"),
    )


def _delete_exchange(url: str, name: str) -> None:
    """Remove the demo's private exchange from a real broker on the way out."""
    import kombu

    kombu_: Any = kombu  # untyped
    try:
        with kombu_.Connection(url, connect_timeout=5) as conn:
            kombu_.Exchange(name, type="topic")(conn.default_channel).delete()
    except Exception as exc:  # best effort: the demo's result does not depend on it
        logger.warning("could not delete the demo exchange %s: %s", name, exc)


def _logging(verbose: bool) -> logging.Handler:
    """The daemon's log on stderr: everything with -v, errors only without."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.INFO if verbose else logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.ERROR)
    return handler


class _Observer:
    """The daemon's hooks, as timeline events."""

    def __init__(self, timeline: Timeline, names: Names) -> None:
        self.timeline = timeline
        self.names = names
        self.reactors: list[Reactor] = []

    def transition(self, change: Transition) -> None:
        if change.new is Liveness.DEAD:
            self.timeline.add(
                "dead",
                f"daemon: {change.key} declared DEAD ({change.reason})",
                agent=str(change.key),
            )
        elif change.new is Liveness.ALIVE and change.old is Liveness.DEAD:
            self.timeline.add("alive", f"daemon: {change.key} is back", agent=str(change.key))

    def plan(self, plan: Plan) -> None:
        if plan.tasks:
            self.timeline.add(
                "plan",
                f"daemon: {plan.plugin} plan: {len(plan.tasks)} task(s)",
                plugin=plan.plugin,
                tasks=[self.names.of(t.reason) for t in plan.tasks],
            )
        for note in plan.held:
            self.timeline.add("held", f"daemon: {plan.plugin} held: {self.names.of(note)}")

    def passed(self, report: PassReport) -> None:
        if report.error:
            self.timeline.add("error", f"daemon: pass failed: {report.error}")

    def action(self, result: ActionResult) -> None:
        what = self.names.of(result.action.describe())
        if result.outcome in (Outcome.OK, Outcome.ALREADY):
            self.timeline.add("action", f"daemon:   {what}", outcome=result.outcome.value)
        else:
            detail = self.names.of(result.detail)
            self.timeline.add("action", f"daemon:   {result.outcome.value}: {what} ({detail})")

    def hooks(self) -> app.Hooks:
        return app.Hooks(
            on_pass=self.passed,
            on_transition=self.transition,
            on_action=self.action,
            on_reactor=self.reactors.append,
            on_plan=self.plan,
        )


def _wait_ready(
    observer: _Observer, daemon: threading.Thread, adt: float, fast: bool, deadline: float
) -> None:
    """Until the daemon has listened a full agent_down_time (and, with the fast path, its
    detector has learned every agent's rhythm and holds no brake)."""
    while time.monotonic() < deadline and daemon.is_alive():
        reactor = observer.reactors[0] if observer.reactors else None
        if reactor is not None and reactor.bus.listened_for(time.monotonic()) >= adt:
            if not fast or reactor.detection.brake_kind is None:
                return
        time.sleep(0.2)


def _strike(args: argparse.Namespace, cloud: SimCloud, bus: SimBus, timeline: Timeline) -> set[str]:
    """Kill the node (or its L3 agent) hosting the most routers; returns the dead agent ids."""
    victim = max(
        (a for a in cloud.agents() if a["agent_type"] == L3_AGENT),
        key=lambda a: (len(cloud.routers_on(a["id"])), a["host"]),
    )
    host, routers = victim["host"], len(cloud.routers_on(victim["id"]))
    if args.kill == "node":
        dead = set(bus.kill_node(host))
        timeline.add(
            "kill",
            f"network node {host} dies: its {len(dead)} agents (L3, DHCP, OVS, metadata) fall "
            f"silent at once and stop consuming; its L3 agent hosted {routers} routers",
            host=host,
        )
    else:
        bus.kill(victim["id"])
        dead = {victim["id"]}
        timeline.add(
            "kill",
            f"the L3 agent process on {host} crashes ({routers} routers); {host}'s other "
            "agents keep reporting: its routers still serve, today's rule waits "
            f"agent_down_time {args.agent_down_time:g}s",
            host=host,
        )
    return dead


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    out = None if args.json else sys.stdout
    handler = _logging(args.verbose)
    adt = args.agent_down_time
    url, fallback = pick_amqp(args.amqp)
    timeline = Timeline(out)
    fast = not url.startswith("memory://")
    exchange = "neutron" if not fast else f"rpcdaemon-demo-{uuid.uuid4().hex[:8]}"
    cloud = build_cloud(
        l3_agents=args.l3,
        dhcp_agents=args.dhcp,
        routers=args.routers,
        networks=args.networks,
        node_agents=True,
        compute_hosts=args.computes,
        agent_down_time=adt,
        rpc_response_timeout=2.0,
        seed=7,
    )
    workdir = tempfile.mkdtemp(prefix="rpcdaemon-demo-")
    server = SimNeutronServer(cloud, auth="noauth", latency=args.latency)
    server.start()
    bus = SimBus(cloud, url, report_interval=args.report_interval, exchange=exchange, seed=7)
    bus.start()
    os.environ["OS_CLIENT_CONFIG_FILE"] = _write_clouds_yaml(workdir, server.network_url)
    nodes = max(args.l3, args.dhcp)
    timeline.add(
        "setup",
        f"simulated cloud: {nodes} network nodes (L3, DHCP, OVS, metadata agents), "
        f"{args.computes} compute hosts (OVS, metadata), {args.routers} routers, "
        f"{args.networks} networks; Neutron API {server.network_url}; bus {masked_url(url)}; "
        f"agent_down_time {adt:g}s, report_interval {args.report_interval:g}s",
        amqp=url,
    )
    if fast:
        timeline.add(
            "fast-path",
            "fast failover on: a host whose agents all fall silent is probed on its agents' "
            f"queues ({args.probe_timeout:g}s); unanswered while another host answers = "
            "node dead, moved at once",
        )
    else:
        timeline.add(
            "fast-path",
            f"{fallback or 'memory:// bus'}: in-process memory:// bus, where agents cannot be "
            "probed: fast failover OFF, every death waits agent_down_time (start RabbitMQ, "
            "or scripts/demo, to see it)",
        )
    stop = threading.Event()
    names = Names(cloud)
    observer = _Observer(timeline, names)
    tap = DaemonTap(timeline, names)
    tap.attach()
    detection = DetectorPolicy(enabled=fast, probe_timeout=args.probe_timeout)
    settings = _settings(url, exchange, adt, detection)
    exit_box: list[int] = []
    daemon = threading.Thread(
        target=lambda: exit_box.append(app.run(settings, stop=stop, hooks=observer.hooks())),
        name="rpcdaemon",
        daemon=True,
    )
    daemon.start()
    deadline = time.monotonic() + args.timeout
    status = 1
    dead: set[str] = set()
    took: float | None = None
    try:
        timeline.add("wait", f"daemon started; it listens {adt:g}s before it may declare any death")
        _wait_ready(observer, daemon, adt, fast, deadline)
        ok, _ = converged(cloud, ())
        timeline.add("ready", f"daemon has listened a full agent_down_time; converged: {ok}")
        tap.armed = True
        dead = _strike(args, cloud, bus, timeline)
        killed_at = time.monotonic()
        while time.monotonic() < deadline and daemon.is_alive():
            ok, _ = converged(cloud, dead)
            if ok:
                took = time.monotonic() - killed_at
                verdict = "node-death verdict" if timeline.first("node-dead") else "today's rule"
                timeline.add(
                    "converged",
                    f"converged {took:.2f}s after the {args.kill} died ({verdict}; "
                    f"agent_down_time {adt:g}s)",
                    seconds=took,
                )
                status = 0
                break
            time.sleep(0.05)
        else:
            _, problems = converged(cloud, dead)
            timeline.add("timeout", "NOT converged: " + "; ".join(problems[:5]))
    finally:
        stop.set()
        daemon.join(10)
        tap.detach()
        bus.stop()
        if exchange != "neutron":
            _delete_exchange(url, exchange)
        server.stop()
        cloud.close()
        logging.getLogger().removeHandler(handler)
    rows = table(cloud, dead)
    if args.json:
        report = {
            "converged": status == 0,
            "scenario": args.kill,
            "amqp": url,
            "fast_path": fast,
            "agent_down_time": adt,
            "seconds": took,
            "timeline": timeline.events,
            "table": rows,
        }
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print("\nagents and what they host:")
        print("\n".join(rows))
    return status
