"""The pause store on each real coordination backend (Redis, etcd, ZooKeeper): every
instance configured with the same coordination_url reads the same pause; it expires."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from tests import coordination_backends

from rpcdaemon.adapters.pausebackends import EtcdPauseStore, ZooKeeperPauseStore
from rpcdaemon.adapters.pausestore import PauseStore, RedisPauseStore, pause_store
from rpcdaemon.core.statusmodel import PauseState

KINDS = {"redis": RedisPauseStore, "etcd": EtcdPauseStore, "zookeeper": ZooKeeperPauseStore}


@pytest.fixture(params=coordination_backends.ALL)
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[PauseStore, PauseStore]]:
    """Two stores (two instances) on one backend, in a group (key) of this test's own."""
    backend = coordination_backends.backend(str(request.param))
    group = f"pause-test-{uuid.uuid4().hex[:8]}"
    one = pause_store(backend.url, None, group=group)
    two = pause_store(backend.url, None, group=group)
    assert isinstance(one, KINDS[backend.name]) and one.shared
    try:
        yield one, two
    finally:
        one.clear()
        for store in (one, two):
            close = getattr(store, "close", None)
            if close is not None:
                close()


def test_one_pause_read_by_every_instance_and_cleared(
    stores: tuple[PauseStore, PauseStore],
) -> None:
    one, two = stores
    assert two.get() is None
    state = PauseState(until=None, reason="rabbit migration", by="op@h", since=1.0)
    one.set(state)
    assert two.get() == state
    one.set(PauseState(until=time.time() + 600, reason="longer"))  # a second pause replaces it
    got = two.get()
    assert got is not None and got.reason == "longer"
    assert two.clear() is True
    assert one.get() is None and one.clear() is False


def test_an_expired_pause_is_no_pause(stores: tuple[PauseStore, PauseStore]) -> None:
    one, two = stores
    one.set(PauseState(until=time.time() + 1.0, reason="short"))
    assert two.get() is not None
    time.sleep(1.3)
    assert two.get() is None


@pytest.mark.redis
def test_redis_expires_the_key_itself_and_honours_the_tooz_namespace() -> None:
    coordination_backends.backend("redis")
    ns = f"ns{uuid.uuid4().hex[:8]}"
    mine = RedisPauseStore(f"redis://127.0.0.1:6379?namespace={ns}&socket_timeout=1")
    plain = RedisPauseStore("redis://127.0.0.1:6379", group=f"g{ns}")
    try:
        mine.set(PauseState(until=time.time() + 1.0, reason="ns"))
        key = f"{ns}_rpcdaemon.pause"
        assert 0 < mine._redis.pttl(key) <= 1000  # Redis drops it by itself
        assert plain.get() is None
        mine.set(PauseState(until=None))
        assert mine._redis.pttl(key) == -1  # until resumed: no expiry
    finally:
        mine.clear()


def test_an_unreachable_backend_is_a_temporary_error() -> None:
    from rpcdaemon.core.errors import TemporaryError

    for url in ("redis://127.0.0.1:1", "etcd3+http://127.0.0.1:1", "zookeeper://127.0.0.1:1"):
        store = pause_store(url, None)
        with pytest.raises(TemporaryError):
            store.get()


@pytest.mark.redis
def test_a_garbage_value_in_redis_is_a_pause_and_a_down_redis_keeps_the_last_state() -> None:
    from rpcdaemon.adapters.pausestore import CachedPause

    coordination_backends.backend("redis")
    group = f"g{uuid.uuid4().hex[:8]}"
    store = RedisPauseStore("redis://127.0.0.1:6379", group=group)
    try:
        store._redis.set(f"{group}.pause", b"\xff{not json")  # one bad byte
        state = store.get()
        assert state is not None and state.unreadable and "pause state unreadable" in state.reason
        cached = CachedPause(store, every=0.0)
        assert cached.get() == state and cached.note is None
        down = RedisPauseStore("redis://127.0.0.1:1", group=group, timeout=0.5)
        down_cached = CachedPause(down, every=0.0)
        assert down_cached.get() is None  # unreachable, nothing known: failover goes on
        assert down_cached.note is not None and "keeping the last known state" in down_cached.note
    finally:
        store.clear()
