"""What every benchmark shares: a simulated cloud on real HTTP and a bus, the real daemon
in-process, watchers on the simulator's state, and the RESULTS.md writer.

Timing rules (the same for OURS and the 2014 pattern in one run):

* ``T0`` is the instant the simulated Neutron API starts answering ``alive: false`` for the
  victim (last heartbeat + ``agent_down_time``): a watcher polls the cloud in-process every
  10 ms (in-process reads are not API calls and are not counted);
* ``T1`` is the first instant the cloud's bindings satisfy the benchmark's "converged"
  predicate (polled every 50 ms);
* API calls are ``SimNeutronServer.calls`` between T0 and T1.

Nothing here asserts a duration: the numbers are printed and written to RESULTS.md.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openstack

from bench import legacy2014
from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.liveness import Transition
from rpcdaemon.runtime import app
from rpcdaemon.runtime.executor import ActionResult
from rpcdaemon.runtime.reactor import Reactor
from rpcdaemon.runtime.report import PassReport
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, Settings
from rpcdaemon.sim.agents import SimBus
from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud

logger = logging.getLogger(__name__)

CLOUD = "rpcdaemon-bench"
RESULTS = Path(__file__).with_name("RESULTS.md")
STATE_POLL = 0.01
CONVERGE_POLL = 0.05


class BenchError(RuntimeError):
    """A benchmark could not produce a number (did not converge, daemon died, ...)."""


# -- the simulated cloud ---------------------------------------------------------------------


class Rig:
    """A SimCloud behind a SimNeutronServer (real HTTP, ``latency`` per call) and a SimBus
    (agents heartbeating every ``report_interval``), plus a clouds.yaml (auth_type none)
    that both the daemon and the 2014 pattern use through openstacksdk."""

    def __init__(
        self,
        cloud: SimCloud,
        *,
        latency: float,
        amqp_url: str = "memory://",
        report_interval: float = 1.0,
    ) -> None:
        self.cloud = cloud
        self.amqp_url = amqp_url
        self.exchange = f"rpcdaemon-bench-{uuid.uuid4().hex[:10]}"
        self.server = SimNeutronServer(cloud, auth="noauth", latency=latency)
        self.bus = SimBus(
            cloud, amqp_url, report_interval=report_interval, exchange=self.exchange, seed=11
        )
        self._workdir = tempfile.mkdtemp(prefix="rpcdaemon-bench-")
        self._saved_env: str | None = None

    def __enter__(self) -> Rig:
        self.server.start()
        self.bus.start()
        path = os.path.join(self._workdir, "clouds.yaml")
        url = self.server.network_url
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(
                "clouds:\n"
                f"  {CLOUD}:\n"
                "    auth_type: none\n"
                "    auth:\n"
                f"      endpoint: {url}\n"
                f"    network_endpoint_override: {url}\n"
            )
        self._saved_env = os.environ.get("OS_CLIENT_CONFIG_FILE")
        os.environ["OS_CLIENT_CONFIG_FILE"] = path
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved_env is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = self._saved_env
        self.bus.stop()
        self.server.stop()
        self.cloud.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def sdk(self) -> Any:
        """An openstacksdk connection to the simulated API (for the 2014 pattern)."""
        return openstack.connect(cloud=CLOUD, connect_retries=0, status_code_retries=0)

    def calls(self) -> int:
        return self.server.calls.total

    def wait_api_dead(self, agent_id: str, timeout: float) -> float:
        """Monotonic instant the API first reports ``agent_id`` not alive (T0)."""
        at = wait_for(lambda: not self.cloud.agent(agent_id)["alive"], timeout, STATE_POLL)
        if at is None:
            raise BenchError(f"agent {agent_id} still alive in the API after {timeout:.0f}s")
        return at


def wait_for(predicate: Callable[[], bool], timeout: float, poll: float) -> float | None:
    """Poll ``predicate``; the monotonic time it first held, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        if predicate():
            return now
        if now >= deadline:
            return None
        time.sleep(poll)


# -- the real daemon, in-process ---------------------------------------------------------------


@dataclass
class DaemonTuning:
    """The knobs the benchmarks vary; everything else is the shipped default."""

    max_concurrency: int = DaemonSettings.max_concurrency
    max_moves_per_pass: int = AgentPluginSettings.max_moves_per_pass
    check_interval: float = DaemonSettings.check_interval
    resync_interval: float = DaemonSettings.resync_interval

    def label(self) -> str:
        defaults = DaemonTuning()
        tag = "defaults" if self == defaults else "tuned"
        return (
            f"{tag} (max_concurrency={self.max_concurrency}, "
            f"max_moves_per_pass={self.max_moves_per_pass})"
        )


@dataclass
class Daemon:
    """``rpcdaemon.runtime.app.run`` on a thread, with every hook recorded."""

    stop: threading.Event
    thread: threading.Thread
    reactors: list[Reactor] = field(default_factory=list)
    transitions: list[tuple[float, Transition]] = field(default_factory=list)
    passes: list[tuple[float, PassReport]] = field(default_factory=list)
    actions: list[tuple[float, ActionResult]] = field(default_factory=list)
    pass_calls: list[int] = field(default_factory=list)  # API calls so far, at each pass end
    exit_codes: list[int] = field(default_factory=list)

    def wait_ready(self, agent_down_time: float, timeout: float) -> None:
        """Until the daemon has listened a full ``agent_down_time`` and finished a pass."""

        def ready() -> bool:
            if not self.thread.is_alive():
                raise BenchError(f"the daemon exited early ({self.exit_codes})")
            if not self.reactors or not self.passes:
                return False
            return self.reactors[0].bus.listened_for(time.monotonic()) >= agent_down_time

        if wait_for(ready, timeout, 0.1) is None:
            raise BenchError(f"the daemon was not ready after {timeout:.0f}s")

    def declared_dead(self) -> float | None:
        """When the daemon first declared an agent DEAD by its own clock."""
        return next((t for t, c in self.transitions if c.new is Liveness.DEAD), None)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def start_daemon(
    rig: Rig, *, plugins: Sequence[str], agent_down_time: float, tuning: DaemonTuning
) -> Daemon:
    def section(name: str) -> AgentPluginSettings:
        return AgentPluginSettings(
            name=name,
            conffile=None,
            exchange=rig.exchange,
            agent_down_time=agent_down_time,
            max_moves_per_pass=tuning.max_moves_per_pass,
        )

    settings = Settings(
        path="<bench>",
        daemon=DaemonSettings(
            plugins=tuple(plugins),
            rpchost=rig.amqp_url,
            amqp_url=rig.amqp_url,
            cloud=CLOUD,
            foreground=True,
            check_interval=tuning.check_interval,
            resync_interval=tuning.resync_interval,
            max_concurrency=tuning.max_concurrency,
        ),
        l3=section("L3Agent") if "L3Agent" in plugins else None,
        dhcp=section("DHCPAgent") if "DHCPAgent" in plugins else None,
    )
    stop = threading.Event()
    daemon = Daemon(stop=stop, thread=threading.Thread())
    hooks = app.Hooks(
        on_reactor=daemon.reactors.append,
        on_transition=lambda c: daemon.transitions.append((time.monotonic(), c)),
        on_pass=lambda p: _record_pass(daemon, rig, p),
        on_action=lambda a: daemon.actions.append((time.monotonic(), a)),
    )
    daemon.thread = threading.Thread(
        target=lambda: daemon.exit_codes.append(app.run(settings, stop=stop, hooks=hooks)),
        name="rpcdaemon-bench",
        daemon=True,
    )
    daemon.thread.start()
    return daemon


def _record_pass(daemon: Daemon, rig: Rig, report: PassReport) -> None:
    daemon.pass_calls.append(rig.calls())
    daemon.passes.append((time.monotonic(), report))


# -- one failover measurement ----------------------------------------------------------------


@dataclass(frozen=True)
class Failover:
    """One contender's failover: seconds and API calls from T0 to converged."""

    who: str
    seconds: float
    calls: int
    writes: int
    detected_after: float | None = None  # OURS: our DEAD verdict, relative to T0


def writes_of(counts: dict[tuple[str, str], int]) -> int:
    return sum(n for (method, _), n in counts.items() if method in ("POST", "DELETE", "PUT"))


def diff_counts(
    after: dict[tuple[str, str], int], before: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# -- output ----------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (it also reads fine on a terminal)."""
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, shared with other workloads"
    )


def section_text(title: str, command: str, body: str) -> str:
    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"## {title}\n\n"
        f"Command: `{command}`  \n"
        f"Date: {today}  \n"
        f"Machine: {machine()}\n\n"
        f"{body.rstrip()}\n"
    )


def update_results(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between this benchmark's markers in RESULTS.md."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    new = (
        pattern.sub(lambda _m: block, old)
        if pattern.search(old)
        else f"{old.rstrip()}\n\n{block}\n"
    )
    path.write_text(new, encoding="utf-8")


def quiet_logs(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


Measure = Callable[["Rig", str], tuple[float, float, int, int]]
"""Kill/replace the victim in ``rig``; return (T0, T1, calls, writes)."""


def run_ours_failover(
    cloud: SimCloud,
    victim: str,
    measure: Measure,
    *,
    plugin: str,
    latency: float,
    amqp_url: str,
    agent_down_time: float,
    tuning: DaemonTuning,
) -> Failover:
    """The real daemon (one plugin) against ``cloud``: wait until it may declare deaths,
    then ``measure``."""
    with Rig(cloud, latency=latency, amqp_url=amqp_url) as rig:
        daemon = start_daemon(
            rig, plugins=(plugin,), agent_down_time=agent_down_time, tuning=tuning
        )
        try:
            daemon.wait_ready(agent_down_time, timeout=agent_down_time * 4 + 60)
            t0, t1, calls, writes = measure(rig, victim)
        finally:
            daemon.close()
        dead = daemon.declared_dead()
    return Failover(
        who=f"OURS, {tuning.label()}",
        seconds=t1 - t0,
        calls=calls,
        writes=writes,
        detected_after=None if dead is None else dead - t0,
    )


def run_legacy_failover(
    cloud: SimCloud,
    victim: str,
    measure: Measure,
    *,
    latency: float,
    amqp_url: str,
    l3: bool,
    dhcp: bool,
) -> Failover:
    """The 2014 call pattern against ``cloud``, already looping when ``measure`` starts."""
    with Rig(cloud, latency=latency, amqp_url=amqp_url) as rig:
        legacy = legacy2014.Legacy2014(rig.sdk(), l3=l3, dhcp=dhcp)
        thread = legacy2014.start(legacy)
        try:
            if wait_for(lambda: legacy.ticks >= 1, 120, 0.05) is None:
                raise BenchError("2014 pattern: no tick in 120s")
            t0, t1, calls, writes = measure(rig, victim)
        finally:
            legacy2014.stop(legacy, thread)
    return Failover("2014 pattern (sequential, 1 s tick)", t1 - t0, calls, writes)


def failover_table(results: Sequence[Failover]) -> str:
    """The results table, with each contender's speed-up against the 2014 pattern."""
    legacy = next(r for r in results if r.who.startswith("2014"))
    rows = [
        (
            r.who,
            f"{r.seconds:.2f}",
            f"{legacy.seconds / r.seconds:.1f}x" if r.seconds > 0 else "-",
            r.calls,
            r.writes,
            "-" if r.detected_after is None else f"{r.detected_after:+.2f}",
        )
        for r in results
    ]
    header = (
        "contender",
        "seconds T0->converged",
        "speed-up vs 2014",
        "API calls",
        "writes",
        "our DEAD verdict vs T0 (s)",
    )
    return table(header, rows)
