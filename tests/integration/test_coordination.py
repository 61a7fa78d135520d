"""Leader election against the real Redis, etcd and ZooKeeper: the same suite on each.

The backends are never stopped: a TCP proxy we own (tests/tcpproxy.py) is cut instead, which
to the client looks like the backend went away. A crash is a real ``kill -9`` of a member
running in its own process. "Never two leaders" is watched by a sampler thread that reads
both members' ``is_leader`` every few milliseconds through the whole test.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from tests.coordination_backends import ALL, Backend, backend
from tests.tcpproxy import TcpProxy

from rpcdaemon.adapters.coordination import (
    LeaderElector,
    SingleInstance,
    elector_from_settings,
)
from rpcdaemon.settings import DaemonSettings

logger = logging.getLogger(__name__)

LEASE = 2.0
SLACK = 3.0  # scheduling on a loaded 2-core machine


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


class NeverTwo:
    """Samples ``is_leader`` of every member every 5 ms; records any moment of two leaders."""

    def __init__(self, members: list[LeaderElector]) -> None:
        self.members = members
        self.overlaps = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.samples += 1
            if sum(1 for m in self.members if m.is_leader) > 1:
                self.overlaps += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(params=ALL)
def coord(request: pytest.FixtureRequest) -> Backend:
    return backend(str(request.param))


@pytest.fixture
def group() -> str:
    return f"rpcdtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def electors() -> Iterator[list[LeaderElector]]:
    made: list[LeaderElector] = []
    yield made
    for e in made:
        e.stop()


@pytest.fixture
def proxies() -> Iterator[list[TcpProxy]]:
    made: list[TcpProxy] = []
    yield made
    for p in made:
        p.stop()


def test_two_electors_exactly_one_leader_and_failover_on_stop(
    coord: Backend, group: str, electors: list[LeaderElector]
) -> None:
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    a = LeaderElector(coord.url, group=group, lease=LEASE, on_change=changes["a"].append)
    b = LeaderElector(coord.url, group=group, lease=LEASE, on_change=changes["b"].append)
    electors += [a, b]
    watch = NeverTwo([a, b])
    a.start()
    wait_for(lambda: a.is_leader, 15)
    b.start()
    wait_for(lambda: b.connected, 15)
    # several rounds: the standby keeps trying and never wins while a holds the lock
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        assert a.is_leader and not b.is_leader
        time.sleep(0.1)
    a.stop()
    assert not a.is_leader  # stop() drops leadership at once
    took = wait_for(lambda: b.is_leader, LEASE + SLACK)  # released: b wins at its next round
    watch.stop()
    logger.info(
        "%s: standby took over %.2fs after a clean stop (lease %ss)", coord.name, took, LEASE
    )
    wait_for(lambda: changes["a"] == [True, False] and changes["b"] == [True], 5)
    assert watch.overlaps == 0 and watch.samples > 100


_MEMBER = """
import sys, time
from rpcdaemon.adapters.coordination import LeaderElector
url, group, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
e = LeaderElector(url, group=group, lease=lease,
                  on_change=lambda leader: print("LEADER" if leader else "STANDBY", flush=True))
e.start()
while True:
    time.sleep(1)
"""


def test_kill_9_of_the_leader_the_standby_acts_within_the_lease(
    coord: Backend, group: str, electors: list[LeaderElector]
) -> None:
    member = subprocess.Popen(
        [sys.executable, "-c", _MEMBER, coord.url, group, str(LEASE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert member.stdout is not None
        line = member.stdout.readline()  # blocks until the member reports its first change
        assert line.strip() == "LEADER", line
        b = LeaderElector(coord.url, group=group, lease=LEASE)
        electors.append(b)
        b.start()
        wait_for(lambda: b.connected, 15)
        time.sleep(LEASE)
        assert not b.is_leader  # the member in the other process holds the lock
        killed = time.monotonic()
        os.kill(member.pid, signal.SIGKILL)  # no release, no goodbye
        member.wait(10)
    finally:
        if member.poll() is None:
            member.kill()
            member.wait(10)
    wait_for(lambda: b.is_leader, coord.expiry_max(LEASE) + LEASE / 5 + SLACK)
    took = time.monotonic() - killed
    logger.info(
        "%s: standby took over %.2fs after kill -9 of the leader (backend expiry %.0fs)",
        coord.name,
        took,
        coord.expiry(LEASE),
    )
    # not before the backend let the dead leader's lock go: its last extension was at most
    # one round (LEASE / 5) before the kill
    assert took >= coord.expiry(LEASE) - LEASE / 5 - 0.5, took


def test_leader_that_loses_the_backend_stops_acting_before_the_standby_starts(
    coord: Backend, group: str, proxies: list[TcpProxy], electors: list[LeaderElector]
) -> None:
    proxy = TcpProxy(("127.0.0.1", coord.port)).start()
    proxies.append(proxy)
    a = LeaderElector(coord.via(proxy.port), group=group, lease=LEASE, max_backoff=1.0)
    b = LeaderElector(coord.url, group=group, lease=LEASE)
    electors += [a, b]
    a.start()
    wait_for(lambda: a.is_leader, 15)
    b.start()
    wait_for(lambda: b.connected, 15)
    assert not b.is_leader
    dropped: list[bool] = []
    a.on_change = dropped.append
    watch = NeverTwo([a, b])
    cut = time.monotonic()
    proxy.cut()  # a can neither extend nor release its lock: it looks crashed to the backend
    stepped_down = wait_for(lambda: not a.is_leader, LEASE / 2 + 1.0)
    wait_for(lambda: b.is_leader, coord.expiry_max(LEASE) + LEASE / 5 + SLACK)
    watch.stop()
    logger.info(
        "%s: leader stepped down %.2fs after losing the backend; standby took over %.2fs "
        "after the cut",
        coord.name,
        stepped_down,
        time.monotonic() - cut,
    )
    assert not a.is_leader
    assert watch.overlaps == 0 and watch.samples > 100  # never two leaders
    wait_for(lambda: dropped == [False], 5)


def test_leader_reconnects_and_is_elected_again_after_backend_returns(
    coord: Backend, group: str, proxies: list[TcpProxy], electors: list[LeaderElector]
) -> None:
    proxy = TcpProxy(("127.0.0.1", coord.port)).start()
    proxies.append(proxy)
    e = LeaderElector(coord.via(proxy.port), group=group, lease=LEASE, max_backoff=1.0)
    electors.append(e)
    e.start()
    wait_for(lambda: e.is_leader, 15)
    proxy.cut()
    wait_for(lambda: not e.is_leader and not e.connected, LEASE + 1.0)
    proxy.restore()
    # its old lock may still be held by its old (unreachable) session until the expiry
    again = wait_for(lambda: e.is_leader, coord.expiry_max(LEASE) + 30)
    logger.info("%s: re-elected %.2fs after the backend came back", coord.name, again)


def test_bad_backend_is_never_leader(
    coord: Backend, group: str, electors: list[LeaderElector]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    e = LeaderElector(coord.via(port), group=group, lease=LEASE, max_backoff=1.0)
    electors.append(e)
    e.start()
    time.sleep(1.5)
    assert not e.is_leader
    assert not e.connected


def test_single_instance_is_always_leader() -> None:
    seen: list[bool] = []
    s = elector_from_settings(DaemonSettings(coordination_url=None), on_change=seen.append)
    assert isinstance(s, SingleInstance)
    s.start()
    assert s.is_leader and s.connected and seen == [True]
    s.stop()


def test_settings_with_url_give_a_leader_elector() -> None:
    e = elector_from_settings(DaemonSettings(coordination_url="redis://127.0.0.1:6379"))
    assert isinstance(e, LeaderElector)
    assert e.group == "rpcdaemon"
    host = e.member_id.rsplit("-", 2)[0]
    assert host == socket.gethostname()
