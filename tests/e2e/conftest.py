"""Fixtures of the end-to-end suites: ``make_rig`` (cloud + API + agents on the real broker,
the daemon as a process) and ``broker_proxy`` (a TCP proxy in front of RabbitMQ)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Rig
from tests.tcpproxy import TcpProxy


@pytest.fixture
def make_rig(tmp_path: Path, amqp_url: str, exchange_name: str) -> Iterator[Callable[..., Rig]]:
    """``make_rig(l3=3, dhcp=0, routers=6, ...)``: a started Rig on a fresh exchange.

    At teardown every daemon still running gets SIGTERM and must exit 0 without a traceback.
    """
    rigs: list[Rig] = []

    def make(**kwargs: Any) -> Rig:
        rig = Rig(tmp_path, amqp_url, exchange_name, **kwargs)
        rigs.append(rig)
        return rig.start()

    yield make
    failures: list[str] = []
    for rig in rigs:
        for daemon in rig.daemons:
            status = daemon.stop()
            if status != 0 or "Traceback" in daemon.log():
                failures.append(f"exit status {status}:\n{daemon.log()[-3000:]}")
        rig.close()
    assert not failures, "\n".join(failures)


@pytest.fixture
def broker_proxy(amqp_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test broker (``harness.proxy_url`` gives its URL)."""
    parts = urllib.parse.urlsplit(amqp_url)
    with TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672)) as proxy:
        yield proxy
