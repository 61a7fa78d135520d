"""Per-backend options of the leader election: the lock expires after the lease on each."""

from __future__ import annotations

import pytest
import tooz

from rpcdaemon.adapters.coordination import LeaderElector
from rpcdaemon.adapters.tooz_backends import (
    backend_kind,
    backend_options,
    effective_expiry,
    still_owner,
)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://h:6379", "redis"),
        ("rediss://h:6380", "redis"),
        ("etcd3+http://h:2379", "etcd3"),
        ("etcd3+https://h:2379?ca_cert=/x", "etcd3"),
        ("zookeeper://h:2181", "zookeeper"),
        ("kazoo://h:2181", "zookeeper"),
        ("memcached://h", "memcached"),
    ],
)
def test_backend_kind(url: str, kind: str) -> None:
    assert backend_kind(url) == kind


def test_redis_lock_and_socket_timeouts_follow_the_lease() -> None:
    assert backend_options("redis://h:6379", 10) == {
        "lock_timeout": "10",
        "membership_timeout": "10",
        "socket_timeout": "2.000",
        "socket_connect_timeout": "2.000",
    }


def test_etcd_lease_and_whole_second_request_timeout() -> None:
    # tooz's etcd driver parses every one of them with int()
    assert backend_options("etcd3+http://h:2379", 10) == {
        "lock_timeout": "10",
        "membership_timeout": "10",
        "timeout": "2",
    }
    assert backend_options("etcd3+http://h:2379", 2)["timeout"] == "1"


def test_zookeeper_session_timeout_is_the_lease() -> None:
    assert backend_options("zookeeper://h:2181", 7)["timeout"] == "7"


def test_the_url_query_wins() -> None:
    options = backend_options("zookeeper://h:2181?timeout=20&namespace=x", 7)
    assert "timeout" not in options and options["lock_timeout"] == "7"


def test_a_shorter_expiry_in_the_url_shortens_how_long_the_leader_acts() -> None:
    """redis://h?lock_timeout=3 with a 10 s lease: the lock expires 3 s after the last
    extension, so the leader must stop acting 1.5 s after its last good round, not 5 s."""
    assert effective_expiry("redis://h:6379?lock_timeout=3", 10) == 3.0
    assert effective_expiry("redis://h:6379?lock_timeout=30", 10) == 10.0
    assert effective_expiry("zookeeper://h:2181?timeout=4", 10) == 4.0
    assert effective_expiry("etcd3+http://h:2379?lock_timeout=junk", 10) == 10.0
    clock = [100.0]
    elector = LeaderElector("redis://h:6379?lock_timeout=3", lease=10, clock=lambda: clock[0])
    elector._holding, elector._last_ok = True, 100.0  # a good round at t=100
    clock[0] = 101.4
    assert elector.is_leader
    clock[0] = 101.6  # past half of the real 3 s expiry: another may hold the lock soon
    assert not elector.is_leader


class _EtcdClient:
    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.asked: list[bytes] = []

    def get(self, key: bytes) -> list[bytes]:
        self.asked.append(key)
        return self.values


class _Coord:
    def __init__(self, values: list[bytes]) -> None:
        self.client = _EtcdClient(values)


class _EtcdLock:
    """The two attributes of tooz's Etcd3Lock that the ownership check reads."""

    _key = b"/tooz/locksrpcdaemon.leader"
    _uuid = "c2VjcmV0"  # base64 of b"secret"


def test_etcd_ownership_is_read_from_the_key() -> None:
    mine = _Coord([b"secret"])
    assert still_owner("etcd3", mine, _EtcdLock()) is True
    assert mine.client.asked == [b"/tooz/locksrpcdaemon.leader"]
    assert still_owner("etcd3", _Coord([b"someone-else"]), _EtcdLock()) is False
    assert still_owner("etcd3", _Coord([]), _EtcdLock()) is False  # expired: key deleted


def test_etcd_ownership_unknowable_is_an_error_not_a_yes() -> None:
    with pytest.raises(tooz.ToozError):
        still_owner("etcd3", _Coord([b"secret"]), object())


def test_the_installed_tooz_etcd_lock_has_what_we_read() -> None:
    from tooz.drivers.etcd3gw import Etcd3Lock

    lock = Etcd3Lock.__new__(Etcd3Lock)
    Etcd3Lock.__init__(lock, _Coord([]), b"rpcdaemon.leader", 10)
    assert isinstance(lock._key, bytes) and isinstance(lock._uuid, str)
