"""Settings for the ``rpcdaemon dump`` subcommand: the Dump plugin alone, in the foreground."""

from __future__ import annotations

import dataclasses
import os

from rpcdaemon.config.loader import amqp_url_from_rpchost, check_filter
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import DaemonSettings, DumpSettings, Settings


def dump_only(
    base: Settings | None,
    *,
    url: str | None = None,
    exchange: str | None = None,
    routing_key: str | None = None,
    filter_text: str | None = None,
    output: str | None = None,
) -> Settings:
    """``base`` (a loaded file, or None for the defaults) with only Dump enabled, in the
    foreground, and the command-line values applied. Raises ConfigError."""
    if base is None:
        daemon = DaemonSettings(plugins=("Dump",), loglevel="INFO", foreground=True)
        dump = DumpSettings()
        base = Settings(path="<command line>", daemon=daemon)
    else:
        daemon = dataclasses.replace(base.daemon, plugins=("Dump",), foreground=True)
        dump = base.dump or DumpSettings()
    if url is not None:
        try:
            daemon = dataclasses.replace(daemon, rpchost=url, amqp_url=amqp_url_from_rpchost(url))
        except ValueError:
            raise ConfigError(
                f"--url {url!r} is not an IP address, host name, HOST:PORT or kombu URL"
            ) from None
    if exchange is not None:
        if not exchange.strip():
            raise ConfigError("--exchange must not be empty")
        dump = dataclasses.replace(dump, queue=exchange.strip())
    if routing_key is not None:
        if not routing_key.strip():
            raise ConfigError("--routing-key must not be empty")
        dump = dataclasses.replace(dump, routing_key=routing_key.strip())
    if filter_text is not None:
        try:
            check_filter(filter_text, path=None)
        except ConfigError as exc:
            raise ConfigError(f"--filter: {exc.message}") from exc
        dump = dataclasses.replace(dump, filter=filter_text or None)
    if output is not None:
        dump = dataclasses.replace(dump, output=os.path.abspath(output) if output else None)
    return dataclasses.replace(base, daemon=daemon, l3=None, dhcp=None, dump=dump)
