"""``rpcdaemon status`` and ``rpcdaemon check``: print or judge the status model."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from rpcdaemon.core.checks import Code, evaluate
from rpcdaemon.core.statusmodel import SOURCE_DAEMON, ClusterStatus, to_json
from rpcdaemon.verbs.common import EXIT_OK, Context, VerbError
from rpcdaemon.verbs.gather import gather

logger = logging.getLogger(__name__)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _yes(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "no")


def render(status: ClusterStatus, *, wall_now: float, host: str | None = None) -> str:
    """The readable table (``rpcdaemon status``)."""
    lines: list[str] = []
    source = {
        SOURCE_DAEMON: "the running daemon",
        "api": "the Neutron API alone",
        "api+bus": "the Neutron API and the bus",
    }.get(status.source, status.source)
    lines.append(f"source: {source}")
    pause = "no"
    if status.paused(wall_now):
        assert status.pause is not None
        pause = f"YES, {status.pause.describe(wall_now)}"
    breakers = ", ".join(
        f"{t} {'OPEN' if o else 'closed'}" for t, o in sorted(status.breakers.items())
    )
    lines.append(
        f"leader: {_yes(status.leader)}   paused: {pause}   breakers: {breakers or '-'}"
        + ("   DRY RUN" if status.dry_run else "")
    )
    if status.last_pass is not None:
        p = status.last_pass
        lines.append(
            f"last pass: {_age(p.age)} ago ({p.trigger}): {p.planned} task(s) planned, "
            f"{p.handed} handed to the executor" + (f", error: {p.error}" if p.error else "")
        )
        lines.extend(f"  held: {h}" for h in p.held[:10])
    for note in status.notes:
        lines.append(f"note: {note}")
    agents = [a for a in status.agents if host is None or a.host == host]
    head = ("HOST", "TYPE", "AGENT", "AZ", "MODE", "ADMIN", "OURS", "API", "HEARD", "HOSTS")
    rows = [head]
    for a in agents:
        what = "routers" if a.agent_type == "L3 agent" else "networks"
        rows.append(
            (
                a.host,
                a.agent_type,
                a.id[:8],
                a.availability_zone or "-",
                a.mode or "-",
                "up" if a.admin_state_up else "DOWN",
                a.liveness.value,
                "alive" if a.alive_api else "dead",
                _age(a.heartbeat_age),
                f"{len(a.hosted)} {what}" if a.agent_type in ("L3 agent", "DHCP agent") else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines.append("")
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
    if host is not None:  # one host: name what each of its agents hosts
        for a in agents:
            if a.hosted:
                shown = ", ".join(a.hosted[:50]) + (" ..." if len(a.hosted) > 50 else "")
                lines.append(f"  {a.agent_type} {a.id}: {shown}")
    mine = {a.id for a in agents}
    stranded = [s for s in status.stranded if host is None or set(s.agents) & mine]
    lines.append("")
    if stranded:
        lines.append(f"hosted only by dead agents ({len(stranded)}):")
        for s in stranded:
            on = ", ".join(x[:8] for x in s.agents) or "no agent"
            lines.append(f"  {s.kind} {s.id} on {on} (last heard {_age(s.age)} ago)")
    else:
        lines.append("every router and DHCP network is on a live agent")
    if status.short_networks and host is None:
        lines.append(f"DHCP networks below their agent count ({len(status.short_networks)}):")
        lines.extend(
            f"  network {n.id}: {n.live_agents} of {n.wanted}" for n in status.short_networks
        )
    return "\n".join(lines) + "\n"


def status_verb(
    ctx: Context,
    *,
    as_json: bool,
    host: str | None,
    listen: float,
    use_daemon: bool = True,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    got = gather(ctx, use_daemon=use_daemon, require_daemon=bool(ctx.daemon_address), listen=listen)
    if host is not None and host not in got.status.hosts():
        shown = ", ".join(got.status.hosts()[:20])
        raise VerbError(f"unknown host {host!r} (hosts: {shown})")
    if got.daemon_error:
        print(f"rpcdaemon: warning: {got.daemon_error}; from the Neutron API", file=sys.stderr)
    if as_json:
        doc = to_json(got.status)
        if got.daemon_error:
            doc["daemon_error"] = got.daemon_error
        if host is not None:
            doc["agents"] = [a for a in doc["agents"] if a["host"] == host]
        json.dump(doc, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write(render(got.status, wall_now=time.time(), host=host))
    return EXIT_OK


def check_verb(
    ctx: Context,
    *,
    grace: float,
    listen: float,
    use_daemon: bool = True,
    out: TextIO | None = None,
) -> int:
    """Nagios conventions: never raises; the exit status is the check's code."""
    out = out or sys.stdout
    try:
        got = gather(ctx, use_daemon=use_daemon, listen=listen)
    except VerbError as exc:
        result = evaluate(None, wall_now=time.time(), unknown_reason=str(exc))
    except Exception as exc:  # a monitoring plugin must answer UNKNOWN, never a traceback
        logger.debug("check failed", exc_info=True)
        result = evaluate(None, wall_now=time.time(), unknown_reason=f"{type(exc).__name__}: {exc}")
    else:
        result = evaluate(
            got.status, wall_now=time.time(), grace=grace, daemon_error=got.daemon_error
        )
    out.write(result.line() + "\n")
    return int(result.code if isinstance(result.code, Code) else Code.UNKNOWN)
