"""The sd_notify adapter against a real AF_UNIX datagram socket that the test listens on."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcdaemon.adapters.sdnotify import (
    WEDGE_ENV,
    Notifier,
    ReactorFeed,
    status_text,
    watchdog_interval,
)
from rpcdaemon.core.status import StatusSnapshot


class Listener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def nothing(self, timeout: float = 0.2) -> bool:
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, Listener]]:
    path = str(tmp_path / "notify")
    lst = Listener(path)
    yield path, lst
    lst.sock.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ready_status_stopping_reach_the_socket(listener: tuple[str, Listener]) -> None:
    path, lst = listener
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled and n.watchdog_interval is None
    n.ready("leader;\nbus connected")
    assert lst.recv() == "READY=1\nSTATUS=leader; bus connected"  # one line per value
    n.ready()  # once only
    n.status("standby")
    assert lst.recv() == "STATUS=standby"
    n.status("standby")  # unchanged: not sent again
    n.stopping()
    assert lst.recv() == "STOPPING=1"
    assert lst.nothing()
    n.close()


def test_abstract_socket() -> None:
    name = f"rpcdaemon-test-{uuid.uuid4().hex}"
    lst = Listener("\0" + name)
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert lst.recv() == "READY=1"
    finally:
        lst.sock.close()


def test_watchdog_is_rate_limited_to_half_watchdog_usec(listener: tuple[str, Listener]) -> None:
    path, lst = listener
    clock = Clock()
    interval = watchdog_interval({"WATCHDOG_USEC": "4000000"}, os.getpid())
    assert interval == 2.0
    n = Notifier(path, watchdog_interval=interval, clock=clock)
    assert n.watchdog() is True
    assert lst.recv() == "WATCHDOG=1"
    clock.now += 1.9
    assert n.watchdog() is False  # too soon
    assert lst.nothing()
    clock.now += 0.1
    assert n.watchdog() is True
    assert lst.recv() == "WATCHDOG=1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "PID"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
    ],
)
def test_watchdog_interval_from_environment(env: dict[str, str], expected: float | None) -> None:
    env = {k: (str(os.getpid()) if v == "PID" else v) for k, v in env.items()}
    assert watchdog_interval(env, os.getpid()) == expected


def test_without_notify_socket_everything_is_a_noop() -> None:
    n = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled and n.watchdog_interval is None
    n.ready()
    n.status("x")
    assert n.watchdog() is False
    n.stopping()


def test_unsupported_address_disables_it() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled


def test_a_vanished_manager_never_raises(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"), watchdog_interval=1.0)
    n.ready()
    n.status("still fine")
    assert n.watchdog() is True  # attempted; the failure is logged, not raised
    n.stopping()


def test_feed_sends_watchdog_on_ticks_and_refreshes_status(
    listener: tuple[str, Listener],
) -> None:
    path, lst = listener
    clock = Clock()
    texts = iter(["leader; bus connected", "leader; bus connected", "standby"])
    feed = ReactorFeed(
        Notifier(path, watchdog_interval=1.0, clock=clock), status=lambda: next(texts), clock=clock
    )
    feed.on_ready()
    assert lst.recv() == "READY=1\nSTATUS=leader; bus connected"
    feed.on_tick()
    assert lst.recv() == "WATCHDOG=1"  # the status is unchanged: not sent
    clock.now += 1.0
    feed.on_tick()
    assert lst.recv() == "WATCHDOG=1"
    assert lst.recv() == "STATUS=standby"
    feed.on_stopping()
    assert lst.recv() == "STOPPING=1\nSTATUS=stopping"


def test_wedge_hook_blocks_the_ticking_thread_for_good(listener: tuple[str, Listener]) -> None:
    path, lst = listener
    feed = ReactorFeed.from_env(
        environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2", WEDGE_ENV: "2"}
    )
    ticks = threading.Thread(target=lambda: [feed.on_tick() for _ in range(5)], daemon=True)
    ticks.start()
    ticks.join(1.0)
    assert ticks.is_alive()  # stuck inside its third tick, like a hung reactor
    assert [lst.recv(), lst.recv()] == ["WATCHDOG=1", "WATCHDOG=1"]
    assert lst.nothing(0.3)


def test_status_text_says_role_bus_agents_breaker() -> None:
    snap = StatusSnapshot(
        agents={("L3 agent", "alive"): 4, ("L3 agent", "dead"): 1, ("DHCP agent", "alive"): 2},
        breaker_open={"L3 agent": True, "DHCP agent": False},
        is_leader=True,
        bus_connected=True,
        pending_tasks=3,
    )
    assert status_text(snap) == (
        "leader; bus connected; DHCP agents 2 alive 0 dead; L3 agents 4 alive 1 dead; "
        "BREAKER OPEN for L3 agent; 3 task(s) pending"
    )
    standby = StatusSnapshot(is_leader=False, bus_connected=False, in_grace=True, dry_run=True)
    assert status_text(standby, paused=True) == (
        "standby, dry-run; paused; bus DISCONNECTED; grace period (no deaths declared yet)"
    )
    lost = StatusSnapshot(is_leader=False, coordination_connected=False, bus_connected=True)
    assert status_text(lost).startswith("standby (coordination backend unreachable)")
