"""Leader election against the real Redis (never stopped: a TCP proxy we own is cut instead)."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from rpcdaemon.adapters.coordination import (
    LeaderElector,
    SingleInstance,
    elector_from_settings,
)
from rpcdaemon.settings import DaemonSettings

pytestmark = pytest.mark.redis

logger = logging.getLogger(__name__)

LEASE = 2.0


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` closes everything and refuses more."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self._target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self._listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def group() -> str:
    return f"rpcdtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def electors() -> Iterator[list[LeaderElector]]:
    made: list[LeaderElector] = []
    yield made
    for e in made:
        e.stop()


def test_two_electors_exactly_one_leader_and_failover_on_stop(
    redis_url: str, group: str, electors: list[LeaderElector]
) -> None:
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    a = LeaderElector(redis_url, group=group, lease=LEASE, on_change=changes["a"].append)
    b = LeaderElector(redis_url, group=group, lease=LEASE, on_change=changes["b"].append)
    electors += [a, b]
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
    took = wait_for(lambda: b.is_leader, 30)
    logger.info("standby took over %.2fs after a clean stop (lease %ss)", took, LEASE)
    wait_for(lambda: changes["a"] == [True, False] and changes["b"] == [True], 5)


def test_crashed_leader_lock_expires_and_standby_takes_over(
    redis_url: str, group: str, electors: list[LeaderElector]
) -> None:
    proxy = TcpProxy(("127.0.0.1", 6379))
    via_proxy = redis_url.replace(":6379", f":{proxy.port}")
    a = LeaderElector(via_proxy, group=group, lease=LEASE, max_backoff=1.0)
    b = LeaderElector(redis_url, group=group, lease=LEASE)
    electors += [a, b]
    a.start()
    wait_for(lambda: a.is_leader, 15)
    b.start()
    wait_for(lambda: b.connected, 15)
    assert not b.is_leader
    dropped: list[bool] = []
    a.on_change = dropped.append
    proxy.cut()  # a can neither extend nor release its lock: it looks crashed to Redis
    stepped_down = wait_for(lambda: not a.is_leader, 10)
    took_over = wait_for(lambda: b.is_leader, 30)
    logger.info(
        "leader stepped down %.2fs after losing Redis; standby took over %.2fs later",
        stepped_down,
        took_over,
    )
    assert not a.is_leader  # never two leaders
    wait_for(lambda: dropped == [False], 5)


def test_leader_reconnects_and_is_elected_again_after_backend_returns(
    redis_url: str, group: str, electors: list[LeaderElector]
) -> None:
    proxy = TcpProxy(("127.0.0.1", 6379))
    e = LeaderElector(
        redis_url.replace(":6379", f":{proxy.port}"), group=group, lease=LEASE, max_backoff=1.0
    )
    electors.append(e)
    e.start()
    wait_for(lambda: e.is_leader, 15)
    proxy.cut()
    wait_for(lambda: not e.is_leader and not e.connected, 10)
    back = TcpProxy(("127.0.0.1", 6379), port=proxy.port)
    try:
        again = wait_for(lambda: e.is_leader, 60)
        logger.info("re-elected %.2fs after the backend came back", again)
    finally:
        back.cut()


def test_bad_backend_is_never_leader(group: str, electors: list[LeaderElector]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    e = LeaderElector(f"redis://127.0.0.1:{port}", group=group, lease=LEASE, max_backoff=1.0)
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
