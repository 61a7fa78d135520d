"""``rpcdaemon evacuate HOST``, ``restore HOST`` and ``rebalance``: planned with the pure
planners (:mod:`rpcdaemon.core.evacuation`, :mod:`rpcdaemon.core.rebalance`), run by the
daemon's own executor (re-checks, retries, "already done" answers, error mapping).

Evacuation runs in rounds; each round re-reads the API and re-plans, then runs one phase
(copy DHCP networks elsewhere, disable the host's agents, move routers and remove the
copied networks from the host). So a failed step never leads to a removal the fresh view
does not justify, an interrupted run is finished by running the verb again, and a
running daemon (which never targets an admin-down agent) never moves anything back.
Ctrl-C stops starting new steps and lets the ones in flight finish (a legacy router is
removed then added: never left half-moved by an interrupt we could wait for).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from rpcdaemon.adapters.agentadmin import SdkAgentAdmin
from rpcdaemon.core.actions import Plan, Task
from rpcdaemon.core.errors import RpcdaemonError
from rpcdaemon.core.evacuation import Evacuation, hosted_on, plan_evacuation, unplaced
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.rebalance import plan_rebalance
from rpcdaemon.core.records import reported_count
from rpcdaemon.core.view import ClusterView
from rpcdaemon.runtime.executor import ActionResult, Executor, Outcome, TaskResult
from rpcdaemon.verbs.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    DaemonUnreachable,
    VerbError,
    api_verdicts,
    check_host,
    status_verdicts,
)
from rpcdaemon.verbs.gather import read_view

logger = logging.getLogger(__name__)

MAX_ROUNDS = 8


class Progress:
    """A bar on a terminal (stderr), else one line per step (stdout)."""

    def __init__(self, out: TextIO, total: int, *, tty: bool | None = None) -> None:
        self._out = out
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self.total = max(1, total)
        self.done = 0
        self.failed = 0

    def grow(self, more: int) -> None:
        with self._lock:
            self.total = max(self.total, self.done + more)

    def step(self, text: str, ok: bool = True) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if ok else 1
            mark = "ok" if ok else "FAILED"
            if self._tty:
                width = 30
                filled = int(width * min(1.0, self.done / self.total))
                sys.stderr.write(
                    f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                    f"{text[:60]:<60}"
                )
                sys.stderr.flush()
                if not ok:
                    self._out.write(f"\nFAILED: {text}\n")
            else:
                self._out.write(f"[{self.done}/{self.total}] {mark}: {text}\n")
                self._out.flush()

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\n")


def _verdicts(ctx: Context, view: ClusterView, use_daemon: bool) -> dict[AgentId, Liveness]:
    """The running daemon's verdicts, else Neutron's alive flag. A daemon named with
    ``--daemon`` that does not answer is an error (exit 2), not a fallback."""
    if use_daemon and ctx.daemon is not None:
        try:
            return status_verdicts(ctx.fetch_status())
        except DaemonUnreachable as exc:
            if ctx.daemon_address:
                raise
            logger.info("daemon not answering (%s): liveness by Neutron's alive flag", exc)
    return api_verdicts(view)


def _run_tasks(
    executor: Executor, tasks: Sequence[Task], stop: threading.Event
) -> list[TaskResult]:
    if not tasks or stop.is_set():
        return []
    return executor.run(Plan("operator", tuple(tasks)))


def _types(l3: bool, dhcp: bool) -> tuple[str, ...]:
    if not l3 and not dhcp:
        l3 = dhcp = True  # neither flag: both
    return tuple(t for t, on in ((AgentType.L3.value, l3), (AgentType.DHCP.value, dhcp)) if on)


def describe(plan: Evacuation) -> list[str]:
    lines = [f"re-place: {t.reason}" for t in plan.replace]
    lines += [f"copy: {t.reason}" for t in plan.copy]
    lines += [f"disable agent {a} (admin_state_up false)" for a in plan.disable]
    lines += [f"move: {t.reason}" for t in plan.move]
    lines += [f"held: {h}" for h in plan.held]
    return lines


def evacuate_verb(
    ctx: Context,
    host: str,
    *,
    l3: bool,
    dhcp: bool,
    dry_run: bool,
    wait: bool,
    wait_timeout: float = 300.0,
    use_daemon: bool = True,
    out: TextIO | None = None,
    tty: bool | None = None,
    on_round: Callable[[Evacuation], None] | None = None,
) -> int:
    out = out or sys.stdout
    types = _types(l3, dhcp)
    l3, dhcp = AgentType.L3.value in types, AgentType.DHCP.value in types
    view = read_view(ctx)
    check_host(view, host, types)
    verdicts = _verdicts(ctx, view, use_daemon)
    started = hosted_on(view, host, l3=l3, dhcp=dhcp)  # what must end on a live agent

    def replan() -> Evacuation:
        return plan_evacuation(
            view, verdicts, host, l3=l3, dhcp=dhcp,
            dhcp_agents_per_network=ctx.dhcp_agents_per_network, started=started,
        )  # fmt: skip

    plan = replan()
    if dry_run:
        out.write(f"evacuate {host}: {plan.steps} step(s) (dry run, nothing changed)\n")
        out.writelines(f"  {line}\n" for line in describe(plan))
        return EXIT_OK
    stop = threading.Event()
    progress = Progress(out, _units(plan), tty=tty)

    def on_action(result: ActionResult) -> None:
        if result.outcome is Outcome.SKIPPED:
            return  # counted with its task (_unfinished)
        ok = result.outcome in (Outcome.OK, Outcome.ALREADY)
        progress.step(result.action.describe() + ("" if ok else f": {result.detail}"), ok)

    executor = Executor(
        ctx.neutron(), max_concurrency=ctx.settings.daemon.max_concurrency, stop=stop,
        on_action=on_action,
    )  # fmt: skip
    admin = SdkAgentAdmin(ctx.neutron())
    logger.warning("evacuating host %s (%s) requested by the operator", host, ", ".join(types))
    _warn_disabled(out, host, plan)
    repaired = False
    try:
        for _ in range(MAX_ROUNDS):
            if on_round is not None:
                on_round(plan)
            if plan.done:
                break
            progress.grow(_units(plan))
            if plan.replace or plan.copy:
                _unfinished(_run_tasks(executor, plan.replace + plan.copy, stop), progress)
            elif plan.disable:
                for agent_id in plan.disable:
                    try:
                        admin.set_agent_admin_state(agent_id, False)
                        progress.step(f"disable agent {agent_id}")
                    except RpcdaemonError as exc:
                        progress.step(f"disable agent {agent_id}: {exc}", ok=False)
            else:
                _unfinished(_run_tasks(executor, plan.move, stop), progress)
            view = read_view(ctx)
            verdicts = _verdicts(ctx, view, use_daemon)
            plan = replan()
            if progress.failed:
                # A step failed: re-place what it left on no agent (a legacy router whose
                # remove landed and whose add did not), once; then stop (run it again).
                if plan.replace and not repaired and not stop.is_set():
                    repaired = True
                    continue
                break
    except KeyboardInterrupt:
        stop.set()
        progress.close()
        out.write(
            "interrupted: finishing the steps in flight; run the command again to go on. "
            f"The agents of {host} already disabled STAY DISABLED until "
            f"'rpcdaemon restore {host}' or a re-run of this command\n"
        )
        executor.shutdown(2 * ctx.api.timeout + 1)
        raise
    finally:
        executor.shutdown(2 * ctx.api.timeout + 1)
    progress.close()
    for line in plan.held:
        out.write(f"held: {line}\n")
    lost = unplaced(view, verdicts, started)
    if lost:
        logger.error(
            "evacuate %s: on no live agent after the evacuation: %s", host, ", ".join(lost)
        )
        out.write(
            f"evacuate {host}: FAILED: {len(lost)} resource(s) that were on {host} are on no "
            f"live agent: {', '.join(lost)}; run the command again (it re-places them)\n"
        )
    if lost or progress.failed or not plan.done:
        out.write(
            f"evacuate {host}: {progress.failed} step(s) failed, {plan.steps} left; "
            "run the command again to finish. Its agents disabled so far STAY DISABLED "
            f"until 'rpcdaemon restore {host}' or a re-run\n"
        )
        return EXIT_FAILED
    out.write(
        f"evacuate {host}: done; its agents are DISABLED in Neutron until "
        f"'rpcdaemon restore {host}'\n"
    )
    if wait:
        return _wait_empty(ctx, host, types, wait_timeout, out)
    return EXIT_FAILED if plan.held else EXIT_OK


def _units(plan: Evacuation) -> int:
    """Progress lines the plan prints: one per action, one per agent disabled."""
    tasks = plan.replace + plan.copy + plan.move
    return sum(len(t.actions) for t in tasks) + len(plan.disable)


def _warn_disabled(out: TextIO, host: str, plan: Evacuation) -> None:
    """Say loudly, before anything changes, that the host's agents get disabled."""
    if not plan.disable:
        return
    agents = ", ".join(plan.disable)
    logger.warning(
        "evacuate %s: its agents (%s) will be DISABLED in Neutron before its routers move; "
        "an interrupted evacuation leaves them disabled until 'rpcdaemon restore %s' or a "
        "re-run",
        host,
        agents,
        host,
    )
    out.write(
        f"NOTE: the agents of {host} ({agents}) are DISABLED in Neutron (admin_state_up "
        "false) before its routers move, so that nothing schedules back. If this is "
        f"interrupted they stay disabled until 'rpcdaemon restore {host}' or a re-run.\n"
    )


def _unfinished(results: Sequence[TaskResult], progress: Progress) -> None:
    """A task that did not complete is a failed step, even when its failing action was
    only SKIPPED (an add refused with 404/409 and no binding: the router is on no agent)."""
    for result in results:
        if result.outcome is Outcome.OK:
            continue
        if any(r.outcome is Outcome.FAILED for r in result.results):
            continue  # already counted by on_action
        progress.step(f"{result.task.reason}: not done ({result.detail or 'skipped'})", False)


def _wait_empty(
    ctx: Context, host: str, types: tuple[str, ...], timeout: float, out: TextIO
) -> int:
    """Until the host's agents report hosting nothing (their own heartbeats, as Neutron
    stores them in ``configurations``): the data plane has followed the bindings."""
    deadline = time.monotonic() + timeout
    while True:
        agents = [
            a for a in read_view(ctx).agents.values() if a.host == host and a.agent_type in types
        ]
        busy = [a.id for a in agents if a.alive and _reported(a.configurations) > 0]
        if not busy:
            out.write(f"evacuate {host}: its agents report hosting nothing\n")
            return EXIT_OK
        if time.monotonic() > deadline:
            out.write(f"evacuate {host}: agents {', '.join(busy)} still report resources\n")
            return EXIT_FAILED
        time.sleep(2.0)


def _reported(conf: Mapping[str, Any]) -> int:
    """Routers plus networks the agent says it hosts (Neutron stores its last report)."""
    return sum(reported_count(conf.get(key)) for key in ("routers", "networks"))


def restore_verb(
    ctx: Context, host: str, *, l3: bool, dhcp: bool, dry_run: bool, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    types = _types(l3, dhcp)
    view = read_view(ctx)
    check_host(view, host, types)
    down = sorted(
        a.id
        for a in view.agents.values()
        if a.host == host and a.agent_type in types and not a.admin_state_up
    )
    if dry_run:
        out.write(f"restore {host}: would enable {len(down)} agent(s): {', '.join(down)}\n")
        return EXIT_OK
    admin = SdkAgentAdmin(ctx.neutron())
    failed = 0
    for agent_id in down:
        try:
            admin.set_agent_admin_state(agent_id, True)
            out.write(f"enabled agent {agent_id}\n")
        except RpcdaemonError as exc:
            failed += 1
            out.write(f"FAILED to enable agent {agent_id}: {exc}\n")
    logger.warning("host %s restored by the operator (%d agent(s) enabled)", host, len(down))
    out.write(
        f"restore {host}: {len(down) - failed} agent(s) enabled; nothing moves back by "
        "itself ('rpcdaemon rebalance' evens out routers)\n"
    )
    return EXIT_FAILED if failed else EXIT_OK


def rebalance_verb(
    ctx: Context,
    *,
    dry_run: bool,
    max_moves: int,
    use_daemon: bool = True,
    out: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    out = out or sys.stdout
    if max_moves < 1:
        raise VerbError("--max-moves must be at least 1")
    view = read_view(ctx)
    plan = plan_rebalance(view, _verdicts(ctx, view, use_daemon), max_moves=max_moves)
    head = (
        f"rebalance: {len(plan.tasks)} move(s); spread (most - least routers on a live "
        f"L3 agent) {plan.spread_before} -> {plan.spread_after}"
    )
    if dry_run or not plan.tasks:
        out.write(head + (" (dry run, nothing changed)" if dry_run else "") + "\n")
        out.writelines(f"  {t.reason}\n" for t in plan.tasks)
        return EXIT_OK
    out.write(head + "\n")
    progress = Progress(out, len(plan.tasks), tty=tty)
    stop = threading.Event()
    executor = Executor(ctx.neutron(), max_concurrency=1, stop=stop)  # one at a time
    try:
        results = executor.run(Plan("operator", plan.tasks))
        for result in results:
            progress.step(
                result.task.reason + ("" if result.outcome is Outcome.OK else f": {result.detail}"),
                result.outcome is Outcome.OK,
            )
    except KeyboardInterrupt:
        stop.set()
        executor.shutdown(2 * ctx.api.timeout + 1)
        raise
    finally:
        executor.shutdown(2 * ctx.api.timeout + 1)
    progress.close()
    return EXIT_FAILED if progress.failed else EXIT_OK
