"""``metrics_address`` parsing, shared by the config preflight and the metrics server (pure)."""

from __future__ import annotations


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all IPv4 interfaces) -> (host, port)."""
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"metrics_address {address!r}: expected host:port, e.g. 127.0.0.1:9180")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port_text)
