"""The pause store: a local file (0600, atomic, expiring) and Redis (a key with a TTL)."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from rpcdaemon.adapters.pausestore import (
    CachedPause,
    FilePauseStore,
    RedisPauseStore,
    pause_store,
)
from rpcdaemon.core.statusmodel import PauseState
from rpcdaemon.verbs.common import VerbError
from rpcdaemon.verbs.pause import parse_duration


def test_file_store_round_trip_mode_and_clear(tmp_path: Path) -> None:
    store = FilePauseStore(tmp_path / "sub" / "pause.json")
    assert store.get() is None and not store.shared
    state = PauseState(until=time.time() + 60, reason="rmq", by="op@h", since=time.time())
    store.set(state)
    assert store.get() == state
    mode = stat.S_IMODE(os.stat(tmp_path / "sub" / "pause.json").st_mode)
    assert mode == 0o600
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pause.json"]  # no temp left
    assert store.clear() is True and store.get() is None and store.clear() is False


def test_file_store_expiry_and_garbage(tmp_path: Path) -> None:
    now = [1000.0]
    store = FilePauseStore(tmp_path / "p.json", wall=lambda: now[0])
    store.set(PauseState(until=1010.0))
    assert store.get() is not None
    now[0] = 1010.0
    assert store.get() is None
    (tmp_path / "p.json").write_text("{not json")
    assert store.get() is None


def test_cached_pause_reads_at_most_once_per_interval(tmp_path: Path) -> None:
    clock = [0.0]
    reads = []

    class Counting(FilePauseStore):
        def get(self) -> PauseState | None:
            reads.append(clock[0])
            return super().get()

    store = Counting(tmp_path / "p.json")
    cached = CachedPause(store, every=1.0, clock=lambda: clock[0])
    assert cached.get() is None
    store.set(PauseState(until=None, reason="x"))
    assert cached.get() is None  # within the interval: the cached answer
    clock[0] = 1.0
    assert cached.get() is not None
    assert reads == [0.0, 1.0]


def test_redis_store_shared_ttl_and_clear() -> None:
    group = f"test-{uuid.uuid4().hex[:8]}"
    store = pause_store("redis://127.0.0.1:6379", None, group=group)
    assert isinstance(store, RedisPauseStore) and store.shared
    other = RedisPauseStore("redis://127.0.0.1:6379?timeout=5", group=group)
    try:
        store.set(PauseState(until=time.time() + 1.0, reason="rmq", by="op"))
        got = other.get()
        assert got is not None and got.reason == "rmq"
        ttl = store._redis.pttl(f"{group}.pause")  # Redis expires it by itself
        assert 0 < ttl <= 1000
        time.sleep(1.2)
        assert other.get() is None
        store.set(PauseState(until=None))
        assert store._redis.pttl(f"{group}.pause") == -1  # no expiry
        assert other.clear() is True and store.get() is None
    finally:
        store.clear()


def test_non_redis_backends_fall_back_to_the_file(tmp_path: Path) -> None:
    store = pause_store("etcd3+http://127.0.0.1:2379", str(tmp_path / "p.json"))
    assert isinstance(store, FilePauseStore)
    assert isinstance(pause_store(None, str(tmp_path / "p.json")), FilePauseStore)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1d", 86400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "abc", "5x", "-5m", "1h 30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(VerbError):
        parse_duration(text)
