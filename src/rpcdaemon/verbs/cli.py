"""The verbs' command lines: ``rpcdaemon [-c FILE] VERB ...``.

:func:`add_parsers` adds them to the main parser; :func:`run` loads the configuration
(credentials, the daemon's address, the coordination backend) and calls the verb.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from rpcdaemon import config
from rpcdaemon.verbs.common import EXIT_USAGE, Context, VerbError
from rpcdaemon.verbs.moves import evacuate_verb, rebalance_verb, restore_verb
from rpcdaemon.verbs.pause import parse_duration, pause_verb, resume_verb
from rpcdaemon.verbs.status import check_verb, status_verb

VERBS = ("status", "check", "evacuate", "restore", "rebalance", "pause", "resume")
DEFAULT_LISTEN = 30.0  # Neutron's default report_interval
EXIT_PLUGIN_UNKNOWN = 3


class PluginParser(argparse.ArgumentParser):
    """``check``'s parser: a monitoring plugin exits 3 (UNKNOWN) on a usage error, with an
    ``UNKNOWN:`` line on stdout, never 2 (which would read as CRITICAL). It also rejects
    unknown arguments itself (else the main parser would, with exit 2)."""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"UNKNOWN: usage error: {' '.join(message.replace('|', '/').split())}")
        self.exit(EXIT_PLUGIN_UNKNOWN, f"{self.prog}: error: {message}\n")


def _common(parser: argparse.ArgumentParser, default_config: str, *, daemon: bool = True) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"the daemon's configuration file (default {default_config})",
    )
    if daemon:
        parser.add_argument(
            "--daemon",
            metavar="HOST:PORT",
            help="the running daemon's metrics_address (default: [Daemon] metrics_address)",
        )
        parser.add_argument(
            "--no-daemon",
            action="store_true",
            help="do not ask the running daemon: read the Neutron API (and the bus) alone",
        )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr (INFO)")


def add_parsers(sub: argparse._SubParsersAction, default_config: str) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "status",
        help="what rpcdaemon sees: agents, liveness, stranded routers/networks, pause",
        description="Print the status from the running daemon (its metrics_address), or, "
        "when no daemon answers, from the Neutron API plus --listen seconds on the bus.",
    )
    _common(p, default_config)
    p.add_argument("--json", action="store_true", help="print the status model as JSON")
    p.add_argument("--host", metavar="H", help="only the agents of host H")
    p.add_argument(
        "--listen",
        type=float,
        default=DEFAULT_LISTEN,
        metavar="SECONDS",
        help=f"without a daemon: listen to heartbeats this long (default {DEFAULT_LISTEN:g}; "
        "0 = Neutron's alive flag only)",
    )

    p = sub.add_parser(
        "check",
        help="monitoring plugin (Nagios/Icinga): exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        description="CRITICAL when a router or DHCP network is on no live agent (beyond "
        "--grace), WARNING when a breaker is open, moves are paused, no instance can lead, "
        "or the configured daemon does not answer. One line: 'STATUS: text | perfdata'. "
        "A usage error is UNKNOWN (exit 3).",
    )
    p.__class__ = PluginParser  # add_parser() takes no parser class of its own
    _common(p, default_config)
    p.add_argument(
        "--grace",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="tolerate a resource on no live agent for this long (default 0)",
    )
    p.add_argument(
        "--listen",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="without a daemon: listen to heartbeats this long (default 0: the API's flag)",
    )

    for name, text in (
        ("evacuate", "drain a live host for maintenance: disable its agents, move everything"),
        ("restore", "re-enable a host's agents after maintenance"),
    ):
        p = sub.add_parser(name, help=text, description=text + ".")
        _common(p, default_config, daemon=name == "evacuate")
        p.add_argument("host", metavar="HOST", help="the host name, as Neutron's agents show it")
        p.add_argument("--l3", action="store_true", help="only its L3 agent (routers)")
        p.add_argument("--dhcp", action="store_true", help="only its DHCP agent (networks)")
        p.add_argument(
            "--dry-run",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print the plan, change nothing",
        )
        if name == "evacuate":
            p.add_argument(
                "--wait",
                action="store_true",
                help="then wait until the host's agents report hosting nothing",
            )

    p = sub.add_parser(
        "rebalance",
        help="even out routers across live L3 agents (bounded, least disruptive first)",
        description="Move routers from the most to the least loaded live L3 agents, "
        "admin-down routers first, then HA routers, then the others.",
    )
    _common(p, default_config)
    p.add_argument(
        "--dry-run",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the plan, change nothing",
    )
    p.add_argument(
        "--max-moves", type=int, default=10, metavar="N", help="at most N moves (default 10)"
    )

    p = sub.add_parser(
        "pause",
        help="stop automatic moves on every instance (they still observe and plan)",
        description="Pause automatic moves until 'rpcdaemon resume' or the --for duration "
        "ends. Stored in the coordination backend (Redis, etcd, ZooKeeper) when "
        "coordination_url is set, else in pause_file.",
    )
    _common(p, default_config, daemon=False)
    p.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 30m, 2h, 1h30m")
    p.add_argument("--reason", default="", metavar="TEXT", help="why (shown in status)")
    p.add_argument(
        "--dry-run", action="store_true", default=argparse.SUPPRESS, help="say what would happen"
    )

    p = sub.add_parser("resume", help="end a pause", description="End a pause at once.")
    _common(p, default_config, daemon=False)
    p.add_argument(
        "--dry-run", action="store_true", default=argparse.SUPPRESS, help="say what would happen"
    )


def run(args: argparse.Namespace, default_config: str) -> int:
    """Run the verb ``args.command``; ConfigError propagates (exit 2)."""
    # The verbs print what they do; the log (every action with its reason) is for -v.
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    path = getattr(args, "config", None) or default_config
    command = args.command
    try:
        settings = config.load(path, foreground=True)
    except Exception:
        if command == "check":  # a monitoring plugin answers UNKNOWN, with the reason
            print(f"UNKNOWN: cannot load {path}: {sys.exc_info()[1]}")
            return 3
        raise
    ctx = Context(settings, daemon_address=getattr(args, "daemon", None))
    use_daemon = not getattr(args, "no_daemon", False)
    try:
        if command == "status":
            return status_verb(
                ctx, as_json=args.json, host=args.host, listen=args.listen, use_daemon=use_daemon
            )
        if command == "check":
            return check_verb(ctx, grace=args.grace, listen=args.listen, use_daemon=use_daemon)
        if command == "evacuate":
            return evacuate_verb(
                ctx,
                args.host,
                l3=args.l3,
                dhcp=args.dhcp,
                dry_run=args.dry_run,
                wait=args.wait,
                use_daemon=use_daemon,
            )
        if command == "restore":
            return restore_verb(ctx, args.host, l3=args.l3, dhcp=args.dhcp, dry_run=args.dry_run)
        if command == "rebalance":
            return rebalance_verb(
                ctx, dry_run=args.dry_run, max_moves=args.max_moves, use_daemon=use_daemon
            )
        if command == "pause":
            duration = parse_duration(args.duration) if args.duration else None
            return pause_verb(ctx, duration=duration, reason=args.reason, dry_run=args.dry_run)
        if command == "resume":
            return resume_verb(ctx, dry_run=args.dry_run)
    except VerbError as exc:
        print(f"rpcdaemon {command}: error: {exc}", file=sys.stderr)
        return exc.status
    raise AssertionError(command)  # pragma: no cover


__all__ = ["EXIT_USAGE", "VERBS", "add_parsers", "run"]
