"""A small bounded HTTP/1.1 server for /metrics and the health probes (see ``server``)."""

from __future__ import annotations

from rpcdaemon.httpserver.server import HttpServer
from rpcdaemon.httpserver.stats import HttpStatsCollector
from rpcdaemon.httpserver.wire import HttpLimits, Request, Response, Route, parse_head, render

__all__ = [
    "HttpLimits",
    "HttpServer",
    "HttpStatsCollector",
    "Request",
    "Response",
    "Route",
    "parse_head",
    "render",
]
