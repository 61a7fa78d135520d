"""``rpcdaemon pause [--for DURATION] [--reason TEXT]`` and ``rpcdaemon resume``."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

from rpcdaemon.core.errors import RpcdaemonError
from rpcdaemon.core.statusmodel import PauseState
from rpcdaemon.verbs.common import (
    EXIT_FAILED,
    EXIT_OK,
    Context,
    DaemonUnreachable,
    VerbError,
    who,
)

logger = logging.getLogger(__name__)

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1h30m``, ``1d`` -> seconds (> 0)."""
    raw = text.strip().lower()
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None:
            raise VerbError(f"duration {text!r}: expected e.g. 90s, 15m, 2h, 1h30m")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not raw or total <= 0:
        raise VerbError(f"duration {text!r}: must be more than 0 seconds")
    return total


def pause_verb(
    ctx: Context,
    *,
    duration: float | None,
    reason: str,
    dry_run: bool = False,
    out: TextIO | None = None,
    confirm_timeout: float = 5.0,
) -> int:
    """Store the pause; exit 1 if it cannot be stored, or if a daemon answers on its
    metrics_address and does not show this pause within ``confirm_timeout`` seconds."""
    out = out or sys.stdout
    store = ctx.pause_store()
    now = time.time()
    state = PauseState(
        until=None if duration is None else now + duration,
        reason=reason,
        by=who(),
        since=now,
    )
    span = "until 'rpcdaemon resume'" if duration is None else f"for {duration:g}s"
    if dry_run:
        out.write(f"would pause automatic moves {span} in {store.where} (dry run)\n")
        return EXIT_OK
    try:
        store.set(state)
    except (RpcdaemonError, OSError) as exc:
        out.write(f"rpcdaemon: cannot pause: {exc}\n")
        return EXIT_FAILED
    logger.warning("automatic moves paused %s by %s: %s", span, state.by, reason or "-")
    out.write(f"paused automatic moves {span} ({store.where})\n")
    if not store.shared:
        out.write(
            "note: the pause is a local file: it binds only the instances on this machine "
            "(set coordination_url (Redis, etcd or ZooKeeper) to pause every instance at once)\n"
        )
    return _confirm(ctx, state, store.where, confirm_timeout, out)


def _confirm(ctx: Context, state: PauseState, where: str, timeout: float, out: TextIO) -> int:
    """When a daemon answers on its metrics_address, wait until its ``/status`` shows this
    pause (it reads the store about once a second); say loudly if it never does."""
    if ctx.daemon is None:
        return EXIT_OK
    deadline = time.monotonic() + timeout
    seen: PauseState | None = None
    while True:
        try:
            seen = ctx.fetch_status(timeout=min(2.0, timeout)).pause
        except DaemonUnreachable as exc:
            out.write(f"note: cannot confirm that the daemon obeys it ({exc})\n")
            return EXIT_OK
        if seen is not None and (seen.since, seen.by) == (state.since, state.by):
            out.write(f"the running daemon at {ctx.daemon} sees the pause\n")
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    what = "not paused" if seen is None else seen.describe(time.time())
    logger.error("the daemon at %s does not see the pause (it reports: %s)", ctx.daemon, what)
    out.write(
        f"WARNING: THE DAEMON AT {ctx.daemon} DOES NOT SEE THE PAUSE after {timeout:g}s "
        f"(it reports: {what}): IT KEEPS ACTING. It must read the same {where}: check its "
        "pause_file / coordination_url and the file's owner and permissions.\n"
    )
    return EXIT_FAILED


def resume_verb(ctx: Context, *, dry_run: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = ctx.pause_store()
    if dry_run:
        out.write(f"would resume automatic moves ({store.where}) (dry run)\n")
        return EXIT_OK
    try:
        was = store.clear()
    except (RpcdaemonError, OSError) as exc:
        out.write(f"rpcdaemon: cannot resume: {exc}\n")
        return EXIT_FAILED
    logger.warning("automatic moves resumed by %s", who())
    out.write("resumed automatic moves\n" if was else "was not paused\n")
    return EXIT_OK
