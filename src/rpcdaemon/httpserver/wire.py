"""HTTP/1.1 on the wire for the endpoint: limits, request heads in, responses out (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/1\.[01]")
_MAX_HEADERS = 64


@dataclass(frozen=True)
class HttpLimits:
    read_timeout: float = 5.0
    """Seconds from accept for the complete request head to arrive."""
    write_timeout: float = 5.0
    """Seconds for the whole response to be written."""
    max_head_bytes: int = 8192
    """Request line plus headers."""
    max_connections: int = 64
    """Connections being read at once; over it, the oldest one is closed."""
    workers: int = 4
    max_queued: int = 16
    """Complete requests waiting for a worker; over it, 503."""
    report_every: float = 60.0
    """At most one warning about dropped connections per this many seconds."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    """The target without its query string."""
    query: str
    headers: Mapping[str, str]
    """Lower-cased names."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Route = Callable[[Request], Response]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def render(response: Response, *, head_only: bool = False) -> bytes:
    """The bytes on the wire (``Connection: close``; no body for HEAD)."""
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{k}: {v}" for k, v in response.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def text_response(status: int, text: str, **headers: str) -> Response:
    return Response(status, (text + "\n").encode(), headers=headers)


def parse_head(head: bytes) -> Request | Response:
    """A request head (without the blank line) -> Request, or the error Response to send."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].rstrip("\r").split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
        return text_response(400, "bad request line")
    method, target, _ = parts
    if not target.startswith("/"):
        return text_response(400, "bad request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.rstrip("\r").partition(":")
        if not sep or not _TOKEN.fullmatch(name) or len(headers) >= _MAX_HEADERS:
            return text_response(400, "bad header")
        headers[name.lower()] = value.strip()
    path, _, query = target.partition("?")
    return Request(method, path, query, headers)


def head_end(buf: bytearray) -> int | None:
    """Index just past the blank line ending the head, or None if not there yet."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else None
