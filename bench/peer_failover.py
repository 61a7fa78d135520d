"""A network node dies on a real neutron-server 29: how long until its routers run elsewhere.

    .venv/bin/python -m bench.peer_failover [--routers 20 50] [--timers fast|default|both]
        [--only rpcdaemon|neutron] [--runs 3] [--how freeze|crash] [--json FILE] [--write]
    .venv/bin/python -m bench.peer_failover --from-json A.json B.json [--write]

The rig is tests/peer/rig.py: L3, DHCP, OVS and metadata agents on net1..net3, OVS and metadata
agents on comp1, comp2, one process per host. Timers: ``fast`` = report_interval 2.5 s /
agent_down_time 10 s (issue 12's rig), ``default`` = Neutron's own 30 s / 75 s. Contenders:

(a) ``rpcdaemon``: ``python -m rpcdaemon -d`` with the L3Agent plugin (its defaults), Neutron's
    own failover off;
(b) ``neutron``: ``allow_automatic_l3agent_failover = True`` with ``neutron-periodic-workers``
    (where neutron 29 runs the rescheduling loop), rpcdaemon off.

Each run: N new routers bound to L3 agent net1, then node net1 dies (``rig.kill_node``; the
default ``freeze`` is a powered-off node: every agent of the host silent at once, its broker
connections still open, nothing answering). The clock starts at the kill (also reported from
net1's last heartbeat of any kind that went through) and stops at the first poll (every 0.2 s)
where all N routers are on live L3 agents (net2, net3). Then the routers are deleted and net1 is
revived. The kill falls at a random (seeded) moment of the report cycle. Nothing here asserts a
duration: numbers are printed, ``--json`` keeps them, ``--write``
puts the table in bench/RESULTS.md between this benchmark's markers. Parts can be run apart
(``--json`` each) and tabled together with ``--from-json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from tests.peer.daemon import Daemon, create_router, tag
from tests.peer.rig import KILL_HOW, Rig

PHASE = random.Random(12)
"""Where in the report cycle each kill falls (seeded: both contenders get the same draws)."""

logger = logging.getLogger(__name__)

# not bench.common: that imports the daemon's runtime, which this harness only runs as a process
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "peer_failover"
VICTIM = "net1"
LIVE = ("net2", "net3")
TIMERS: dict[str, tuple[float, int]] = {"fast": (2.5, 10), "default": (30.0, 75)}
CONTENDERS = ("rpcdaemon", "neutron")
POLL = 0.2


@dataclass(frozen=True)
class Run:
    from_kill: float
    from_beat: float
    detected: float | None  # the daemon's DOWN line for net1's L3 agent, from the kill


@dataclass
class Series:
    """The runs of one contender at one timer setting and one router count."""

    timers: str
    report_interval: float
    agent_down_time: int
    routers: int
    contender: str
    how: str
    command: str = ""
    runs: list[Run] = field(default_factory=list)

    def median(self, what: str = "from_kill") -> float:
        return float(statistics.median(float(getattr(r, what)) for r in self.runs))


def routers_on(rig: Rig, agent_id: str) -> set[str]:
    status, body = rig.call("GET", f"/agents/{agent_id}/l3-routers?fields=id")
    assert status == 200, body
    return {r["id"] for r in body["routers"]}


def detected_at(daemon: Daemon | None, since: float) -> float | None:
    """Wall-clock time of the daemon's first verdict on net1 after ``since``: its fast path's
    "NODE DOWN: ... net1 ..." line or today's rule's "agent L3 agent@net1 is DOWN"."""
    if daemon is None:
        return None
    host = re.compile(rf"\b{VICTIM}\b")
    for line in daemon.text().splitlines():
        node = "NODE DOWN" in line and host.search(line) is not None
        if not node and (f"L3 agent@{VICTIM}" not in line or "is DOWN" not in line):
            continue
        try:
            seen = datetime.fromisoformat(line.split()[0]).timestamp()
        except (ValueError, IndexError):
            continue
        if seen >= since:
            return seen
    return None


def pin(rig: Rig, agent_id: str, router: str) -> None:
    """Bind ``router`` to ``agent_id``, taking it off the agent the running daemon may have
    scheduled it to meanwhile (it schedules routers hosted by no live agent)."""
    for _ in range(5):
        status, body = rig.call("POST", f"/agents/{agent_id}/l3-routers", {"router_id": router})
        if status == 201:
            return
        _, hosts = rig.call("GET", f"/routers/{router}/l3-agents")
        for agent in hosts.get("agents", []):
            if agent["id"] != agent_id:
                rig.call("DELETE", f"/agents/{agent['id']}/l3-routers/{router}")
    raise RuntimeError(f"could not bind router {router} to agent {agent_id}: {body}")


def one_run(rig: Rig, n: int, how: str, settle: float, daemon: Daemon | None) -> Run:
    alive_timeout = max(60.0, 3 * rig.report_interval + 30)
    rig.revive_all(timeout=alive_timeout)
    revived = time.monotonic()
    victim = rig.agent_id("L3 agent", VICTIM)
    live = [rig.agent_id("L3 agent", h) for h in LIVE]
    t = tag()
    routers = {create_router(rig, f"bench-{t}-{i}") for i in range(n)}
    for router in routers:
        pin(rig, victim, router)
    # the running daemon schedules each new router it hears of (a notification pass) to a
    # live agent: pin again until every one stays on the victim for a report interval
    deadline = time.monotonic() + 60
    while True:
        stray = routers - routers_on(rig, victim)
        for router in stray:
            pin(rig, victim, router)
        if not stray:
            time.sleep(rig.report_interval)
            if routers <= routers_on(rig, victim):
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(stray)} routers would not stay on {VICTIM}")
    # every agent reported a few times since the last revive (rhythms are learned again)
    time.sleep(max(0.0, settle - (time.monotonic() - revived)))
    # a node dies at any moment of its agents' report cycle, not just after a report (the
    # revive above would otherwise align every kill with the beat: the worst case for a
    # detector, a lucky one for nobody); the same seeded draws for both contenders
    time.sleep(PHASE.uniform(0.0, rig.report_interval))
    timeout = 4 * rig.agent_down_time + 120
    killed = rig.kill_node(VICTIM, how)
    last_beat = rig.last_host_heartbeat(VICTIM)
    moved: set[str] = set()
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            moved = set().union(*(routers_on(rig, a) for a in live)) & routers
            if moved == routers:
                done = time.time()
                break
            time.sleep(POLL)
        else:
            raise RuntimeError(f"only {len(moved)}/{n} routers moved within {timeout:g}s")
        left = routers_on(rig, victim) & routers
        assert not left, f"{len(left)} routers still on the dead agent"
    finally:
        for router in routers:  # keep the next run's numbers clean
            rig.call("DELETE", f"/routers/{router}")
        rig.revive_node(VICTIM, timeout=alive_timeout)
    seen = detected_at(daemon, killed)
    return Run(done - killed, done - last_beat, None if seen is None else seen - killed)


@contextmanager
def contender_up(contender: str, rig: Rig, timers: str, workdir: Path) -> Iterator[Daemon | None]:
    """The rig with these timers, for this contender, past its warm-up."""
    report_interval, agent_down_time = TIMERS[timers]
    rig.up(
        neutron_failover=contender == "neutron",
        report_interval=report_interval,
        agent_down_time=agent_down_time,
    )
    warmup = agent_down_time + 2  # our clock is established / Neutron's first check has run
    if contender == "neutron":
        time.sleep(warmup)
        yield None
        return
    with Daemon(rig, workdir, plugins="L3Agent") as daemon:
        daemon.wait_log("listening on the bus")
        time.sleep(warmup)
        yield daemon


def measure(args: argparse.Namespace) -> list[Series]:
    rig = Rig.load()
    out: list[Series] = []
    chosen = list(TIMERS) if args.timers == "both" else [args.timers]
    contenders = list(CONTENDERS) if args.only is None else [args.only]
    try:
        for timers in chosen:
            report_interval, agent_down_time = TIMERS[timers]
            settle = args.settle if args.settle is not None else 3 * report_interval
            for contender in contenders:
                print(f"== {timers} ({report_interval:g} s / {agent_down_time} s): {contender}")
                with (
                    tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp,
                    contender_up(contender, rig, timers, Path(tmp)) as daemon,
                ):
                    for n in args.routers:
                        series = Series(
                            timers,
                            report_interval,
                            agent_down_time,
                            n,
                            contender,
                            args.how,
                            command=args.command,
                        )
                        out.append(series)
                        for i in range(args.runs):
                            run = one_run(rig, n, args.how, settle, daemon)
                            series.runs.append(run)
                            seen = f", DOWN after {run.detected:.1f}s" if run.detected else ""
                            print(
                                f"  {n} routers, run {i + 1}: {run.from_kill:.1f}s from the kill"
                                f" ({run.from_beat:.1f}s from the last heartbeat{seen})",
                                flush=True,
                            )
                        if args.json:  # keep what we have if a later part fails
                            save(args.json, out)
    finally:
        if not args.keep:
            rig.down()
    return out


def save(path: Path, series: list[Series]) -> None:
    path.write_text(json.dumps([asdict(s) for s in series], indent=1))


def load(paths: list[Path]) -> list[Series]:
    out = []
    for path in paths:
        for raw in json.loads(path.read_text()):
            runs = [Run(**r) for r in raw.pop("runs")]
            out.append(Series(**raw, runs=runs))
    return out


def table(series: list[Series]) -> str:
    """Markdown: every run, then medians and the ratio per timer setting and router count."""
    order = {name: i for i, name in enumerate([*TIMERS, *CONTENDERS])}
    series = sorted(series, key=lambda s: (order[s.timers], s.routers, order[s.contender]))
    lines = [
        "| timers (report_interval / agent_down_time) | routers | contender | runs, s from the kill"
        " | median from the kill | median from net1's last heartbeat |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in series:
        runs = ", ".join(f"{r.from_kill:.1f}" for r in s.runs)
        lines.append(
            f"| {s.timers} ({s.report_interval:g} s / {s.agent_down_time} s) | {s.routers} |"
            f" {s.contender} | {runs} | **{s.median():.1f} s** |"
            f" {s.median('from_beat'):.1f} s |"
        )
    lines += [
        "",
        "| timers | routers | rpcdaemon | neutron | neutron / rpcdaemon |",
        "| --- | --- | --- | --- | --- |",
    ]
    keys = sorted({(s.timers, s.routers) for s in series}, key=lambda k: (order[k[0]], k[1]))
    for timers, n in keys:
        got = {s.contender: s.median() for s in series if (s.timers, s.routers) == (timers, n)}
        a, b = got.get("rpcdaemon"), got.get("neutron")
        ratio = f"**{b / a:.1f}x**" if a and b else "n/a"
        lines.append(
            f"| {timers} | {n} | {_secs(a)} | {_secs(b)} | {ratio} |",
        )
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def write_section(text: str, path: Path) -> None:
    """Replace what is between this benchmark's markers (the start marker may carry a note)."""
    old = path.read_text(encoding="utf-8")
    pattern = re.compile(
        r"(<!-- bench:" + SECTION + r":start[^>]*-->\n).*?(<!-- bench:" + SECTION + r":end -->)",
        re.DOTALL,
    )
    if pattern.search(old):
        new = pattern.sub(lambda m: f"{m.group(1)}{text.rstrip()}\n{m.group(2)}", old)
    else:
        start, end = f"<!-- bench:{SECTION}:start -->", f"<!-- bench:{SECTION}:end -->"
        new = f"{old.rstrip()}\n\n{start}\n{text.rstrip()}\n{end}\n"
    path.write_text(new, encoding="utf-8")


def section_text(title: str, command: str, body: str) -> str:
    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, shared with other workloads"
    )
    return (
        f"## {title}\n\nCommand: `{command}`  \nDate: {today}  \nMachine: {machine}\n\n"
        f"{body.rstrip()}\n"
    )


def section(series: list[Series], command: str) -> str:
    how = sorted({s.how for s in series})
    commands = sorted({s.command for s in series if s.command}) or [command]
    text = (
        "Rig (docs/peer.md): neutron 29.0.0 (neutron-rpc-server + API under uWSGI, 1 process,"
        " 4 threads), MariaDB, RabbitMQ; fake L3, DHCP, OVS and metadata agents on net1..net3,"
        " OVS and metadata agents on comp1, comp2, one process per host. N legacy routers on L3"
        f" agent net1, then node net1 dies ({'/'.join(how)}: every agent of the host at once)."
        " Time = the kill (net1's last heartbeat of any kind in the last column) -> first poll"
        " (0.2 s) with all N routers on live agents. (a) rpcdaemon (L3Agent, its defaults),"
        " Neutron's failover off; (b) Neutron `allow_automatic_l3agent_failover = True` +"
        " `neutron-periodic-workers`, rpcdaemon off."
    )
    body = textwrap.fill(text, width=100, break_on_hyphens=False) + "\n\n" + table(series)
    return section_text(
        "Peer failover: a network node dies, rpcdaemon vs Neutron's own rescheduling"
        " (real neutron-server 29)",
        "`, `".join(commands),
        body,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.peer_failover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--routers", type=int, nargs="+", default=[20, 50], metavar="N")
    p.add_argument("--timers", choices=[*TIMERS, "both"], default="both")
    p.add_argument("--only", choices=CONTENDERS, default=None)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--how", choices=KILL_HOW, default="freeze")
    p.add_argument(
        "--settle",
        type=float,
        default=None,
        metavar="S",
        help="seconds from a revive to the next kill (default 3 report intervals)",
    )
    p.add_argument("--json", type=Path, default=None, help="keep the runs in this file")
    p.add_argument("--from-json", type=Path, nargs="+", default=None, help="table saved runs")
    p.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="leave the rig up at the end")
    args = p.parse_args(argv)
    args.command = ".venv/bin/python -m bench.peer_failover " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    series = load(args.from_json) if args.from_json else measure(args)
    print(table(series))
    print(f"(took {time.monotonic() - started:.0f}s)")
    if args.write:
        write_section(section(series, args.command), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
