"""The pause store: a local file (0600, atomic, expiring); Redis is in tests/integration."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from rpcdaemon.adapters.pausebackends import EtcdPauseStore, ZooKeeperPauseStore
from rpcdaemon.adapters.pausestore import (
    CachedPause,
    FilePauseStore,
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


def test_other_backends_and_single_instances_use_the_file(tmp_path: Path) -> None:
    store = pause_store("memcached://127.0.0.1:11211", str(tmp_path / "p.json"))
    assert isinstance(store, FilePauseStore) and not store.shared
    assert isinstance(pause_store(None, str(tmp_path / "p.json")), FilePauseStore)
    assert isinstance(pause_store("etcd3+http://127.0.0.1:2379", None), EtcdPauseStore)
    assert isinstance(pause_store("zookeeper://127.0.0.1:2181", None), ZooKeeperPauseStore)


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
