"""The ``rpcdaemon`` command: argument parsing and wiring only.

``rpcdaemon [-c FILE] [-d] [--dry-run]`` behaves as the 2014 daemon (``run`` is the default
subcommand). Exit status: 0 ok, 1 runtime failure, 2 configuration or usage error,
130 interrupted before the daemon was up.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import socket
import sys
import threading
from collections.abc import Sequence

from rpcdaemon import __version__, config, daemon, logsetup
from rpcdaemon.config.preflight import BIND_ERRNOS, bind_error, detached_warnings
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins import registry
from rpcdaemon.plugins.base import Plugin
from rpcdaemon.runtime import app
from rpcdaemon.settings import Settings
from rpcdaemon.verbs import cli as verbs_cli

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "/usr/local/etc/rpcdaemon.conf"
PASS_THROUGH = {
    "demo": ("rpcdaemon.demo", "run the demonstration against the simulated cloud"),
    "sim": ("rpcdaemon.sim.cli", "run the simulated Neutron cloud (API and bus)"),
}
STARTUP_SETTLE = 1.5  # seconds a detached daemon must run before the launcher says OK
_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@/;]*@")


def redact_url(url: str) -> str:
    """``amqp://user:secret@host//`` -> ``amqp://user:***@host//``."""
    return _PASSWORD.sub(r"\1***@", url)


def _add_run_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # In the subparser the defaults are SUPPRESS, so "-c FILE run" and "run -c FILE" both work.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=default,
        help=f"the configuration file (default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "-d",
        "--foreground",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="do not detach: no pid file, log to stderr, default log level DEBUG",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="plan and log every change, change nothing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpcdaemon",
        description="Keeps Neutron DHCP and L3 services available when network nodes fail. "
        "Without a subcommand it runs the daemon (like 'run').",
    )
    _add_run_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"rpcdaemon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the daemon (the default)",
        description="Run the daemon: detached with a pid file, or in the foreground with -d.",
    )
    _add_run_options(run, suppress=True)

    check = sub.add_parser(
        "check-config",
        help="validate a configuration file (exit 0 if usable, 2 if not)",
        description="Load the file as 'run' would, print what it means and any warnings. "
        "Exit status 0 when it is usable, 2 when it is not.",
    )
    check.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"the file to check (default {DEFAULT_CONFIG})",
    )

    sub.add_parser(
        "sample-config",
        help="print a commented configuration file with every option",
        description="Print a configuration file listing every option, commented out at its "
        "default, with its meaning. It loads as it is.",
    )

    dump = sub.add_parser(
        "dump",
        help="print bus traffic (the Dump plugin alone, in the foreground)",
        description="Bind a private queue to an exchange and print every message decoded, "
        "with secrets redacted. Options override the [Dump] section of -c FILE.",
    )
    dump.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="take [Daemon] rpchost and the [Dump] section from FILE",
    )
    dump.add_argument("--url", help="the message server: host, IP or kombu URL")
    dump.add_argument("--exchange", help="the exchange to dump (default neutron)")
    dump.add_argument("--routing-key", help="the routing key to bind (default #)")
    dump.add_argument(
        "--filter",
        dest="filter_text",
        metavar="JMESPATH",
        help="print only messages for which this JMESPath expression is truthy, "
        "e.g. \"method == 'report_state'\"",
    )
    dump.add_argument("--output", metavar="FILE", help="append JSON lines to FILE instead")

    verbs_cli.add_parsers(sub, DEFAULT_CONFIG)
    sub.add_parser("version", help="print the version")
    for name, (_, text) in PASS_THROUGH.items():
        extra = sub.add_parser(name, help=text, add_help=False)
        extra.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"rpcdaemon: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except SystemExit as exc:  # argparse: --help, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in PASS_THROUGH:
        return _pass_through(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    if command in PASS_THROUGH:
        return _pass_through(command, list(args.rest))
    if command == "version":
        print(f"rpcdaemon {__version__}")
        return 0
    if command == "sample-config":
        sys.stdout.write(config.render_sample())
        return 0
    if command in verbs_cli.VERBS:
        return verbs_cli.run(args, DEFAULT_CONFIG)
    path = args.config if getattr(args, "config", None) else None
    if command == "check-config":
        return _check_config(path or DEFAULT_CONFIG)
    if command == "dump":
        base = config.load(path, foreground=True) if path else None
        settings = config.dump_only(
            base,
            url=args.url,
            exchange=args.exchange,
            routing_key=args.routing_key,
            filter_text=args.filter_text,
            output=args.output,
        )
        config.preflight(settings)
        return _run(settings)
    settings = config.load(path or DEFAULT_CONFIG, foreground=args.foreground, dry_run=args.dry_run)
    config.preflight(settings)  # the same checks as check-config, before detaching
    return _run(settings)


def _pass_through(name: str, rest: list[str]) -> int:
    """``demo`` and ``sim``: hand the rest of the command line to their own main()."""
    module_name, _ = PASS_THROUGH[name]
    try:
        if name == "sim":
            from rpcdaemon.sim.cli import main as sim_main

            return int(sim_main(rest) or 0)
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            print(
                f"rpcdaemon: error: '{name}' is not available: {module_name} is not installed",
                file=sys.stderr,
            )
            return 2
        raise
    return int(module.main(rest) or 0)


def _check_config(path: str) -> int:
    settings = config.load(path)
    found = config.preflight(settings, checking=True)
    for line in (*settings.warnings, *found, *detached_warnings(settings)):
        print(f"rpcdaemon: warning: {line}", file=sys.stderr)
    d = settings.daemon
    print(f"{settings.path}: OK")
    print(f"  plugins: {' '.join(d.plugins)}")
    print(f"  bus: {redact_url(d.amqp_url)}")
    if settings.api is not None:
        print(f"  Neutron API credentials: {settings.api.source}")
        print(f"  Neutron API timeout: {settings.api.timeout:g} s")
    for agent in (settings.l3, settings.dhcp):
        if agent is not None:
            print(
                f"  [{agent.name}] exchange {agent.exchange}, agent_down_time "
                f"{agent.agent_down_time:g} s"
            )
    if settings.dump is not None:
        print(f"  [Dump] exchange {settings.dump.queue}, routing key {settings.dump.routing_key}")
    return 0


def _run(settings: Settings) -> int:
    """Load plugins, set up logging, detach unless in the foreground, serve until stopped.

    Detached, the launcher waits: it exits 0 once the daemon has held its pid file and run
    for STARTUP_SETTLE seconds, or with the daemon's one-line error (status 2 for a
    configuration problem, 1 otherwise) when start-up fails before that."""
    daemon.set_umask()  # before the log file, the pid file or any output file exists
    plugins = registry.load(settings)  # before detaching: import errors reach the terminal
    handle = logsetup.configure(settings)  # opens the log file now, for the same reason
    stop = threading.Event()
    relay = daemon.SignalRelay(stop, on_hup=handle.reopen)
    pidfile: daemon.PidFile | None = None
    startup = daemon.Startup(None)
    if settings.daemon.foreground:
        relay.install()
    else:
        pidfile = daemon.PidFile(settings.daemon.pidfile)
        launched = daemon.daemonize(pidfile, on_ready=relay.install)
        if isinstance(launched, int):
            return launched  # the launcher
        startup = launched
        startup.ready_after(STARTUP_SETTLE)
    try:
        for line in settings.warnings:
            logger.warning("%s", line)
        logger.info("rpcdaemon %s starting with %s", __version__, settings.path)
        status = _serve(settings, stop, plugins)
        if status != 0:
            logger.error("rpcdaemon stopped with status %d", status)
            if startup.pending:
                startup.failed(
                    f"the daemon stopped with status {status} during start-up; see "
                    f"{settings.daemon.logfile}",
                    status,
                )
        startup.ready()  # stopped cleanly (e.g. SIGTERM) before the settle time
        return status
    except ConfigError as exc:
        logger.error("%s", exc)
        startup.failed(str(exc), 2)
        raise  # main() prints the one line (the terminal with -d) and exits 2
    except Exception as exc:
        logger.exception("rpcdaemon failed")
        startup.failed(f"rpcdaemon failed: {type(exc).__name__}: {exc}", 1)
        return 1
    finally:
        relay.restore()
        if pidfile is not None:
            pidfile.release()
        logger.info("rpcdaemon exiting")


def _serve(settings: Settings, stop: threading.Event, plugins: Sequence[Plugin]) -> int:
    """app.run, with a failed bind of the metrics address reported as preflight does."""
    try:
        return app.run(settings, stop=stop, plugins=plugins)
    except OSError as exc:
        address = settings.daemon.metrics_address
        if address and (isinstance(exc, socket.gaierror) or exc.errno in BIND_ERRNOS):
            raise bind_error(settings.path, address, exc) from exc
        raise
