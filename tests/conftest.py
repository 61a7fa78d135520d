"""Shared fixtures: real RabbitMQ and Redis, with skip-or-fail semantics.

A broker test skips when RabbitMQ is unreachable, unless RPCDAEMON_REQUIRE_BROKER=1
(set by .ci/run), which turns the skip into a failure. The same for Redis with
RPCDAEMON_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

AMQP_URL = os.environ.get("RPCDAEMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("RPCDAEMON_REDIS_URL", "redis://127.0.0.1:6379")


def _unavailable(what: str, env: str, why: str) -> None:
    if os.environ.get(env) == "1":
        pytest.fail(f"{what} is required ({env}=1) but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The URL of a live RabbitMQ (skip, or fail under RPCDAEMON_REQUIRE_BROKER=1)."""
    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=5) as conn:
            conn.connect()
    except Exception as exc:  # any connection failure means: no broker
        _unavailable("RabbitMQ", "RPCDAEMON_REQUIRE_BROKER", repr(exc))
    return AMQP_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    host, port = "127.0.0.1", 6379
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        _unavailable("Redis", "RPCDAEMON_REQUIRE_REDIS", repr(exc))
    return REDIS_URL


@pytest.fixture
def exchange_name(amqp_url: str) -> Iterator[str]:
    """A fresh topic exchange shaped like Neutron's (topic, durable=False), deleted after."""
    from kombu import Connection, Exchange

    name = f"rpcdtest-{uuid.uuid4().hex[:8]}"
    with Connection(amqp_url) as conn:
        ex = Exchange(name, type="topic", durable=False, auto_delete=False)
        ex(conn.default_channel).declare()
        yield name
        try:
            ex(conn.default_channel).delete()
        except Exception:  # best-effort cleanup
            pass
