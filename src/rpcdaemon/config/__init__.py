"""The ini file -> frozen :class:`rpcdaemon.settings.Settings`.

``load`` reads and validates it, ``render_sample`` prints the commented sample, and
``amqp_url_from_rpchost`` turns the 2014 ``rpchost`` into a kombu URL. The option table they
share is :data:`rpcdaemon.config.options.OPTIONS`.
"""

from __future__ import annotations

from rpcdaemon.config.loader import amqp_url_from_rpchost, check_filter, load
from rpcdaemon.config.overrides import dump_only
from rpcdaemon.config.preflight import preflight
from rpcdaemon.config.render import render_markdown_tables, render_sample

__all__ = [
    "amqp_url_from_rpchost",
    "check_filter",
    "dump_only",
    "load",
    "preflight",
    "render_markdown_tables",
    "render_sample",
]
