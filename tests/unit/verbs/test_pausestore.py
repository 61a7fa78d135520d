"""The pause store: a local file (0640, atomic, expiring, fail safe); Redis is in
tests/integration."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from rpcdaemon.adapters.pausebackends import EtcdPauseStore, ZooKeeperPauseStore
from rpcdaemon.adapters.pausestore import (
    CachedPause,
    FilePauseStore,
    pause_store,
)
from rpcdaemon.core.errors import TemporaryError
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
    assert mode == 0o640
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
    garbage = store.get()  # it exists: somebody paused; unreadable counts as paused
    assert garbage is not None and garbage.unreadable
    assert garbage.reason.startswith("pause state unreadable: ")


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


# --- fail safe: an existing pause that cannot be read is a pause --------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"until": null, "reason": "caf\xe9"}', b"\xff\xfe\x00", b"[1, 2]", b"null", b""],
)
def test_undecodable_pause_file_is_paused_and_never_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    state = FilePauseStore(path).get()
    assert state is not None and state.unreadable and state.active(time.time())
    assert state.reason.startswith("pause state unreadable: ") and str(path) in state.reason
    assert CachedPause(FilePauseStore(path)).get() == state


def test_a_pause_file_that_cannot_be_read_is_paused(tmp_path: Path) -> None:
    (tmp_path / "p.json").mkdir()  # EISDIR: exists, cannot be read (EACCES: see below)
    state = FilePauseStore(tmp_path / "p.json").get()
    assert state is not None and state.unreadable and "cannot read" in state.reason


def test_cached_pause_never_raises_and_logs_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        where = "broken store"
        shared = False
        fail: Exception | None = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid")

        def get(self) -> PauseState | None:
            if self.fail is not None:
                raise self.fail
            return None

    store = Broken()
    clock = [0.0]
    cached = CachedPause(store, every=1.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="rpcdaemon.adapters.pausestore"):
        for _ in range(3):
            state = cached.get()
            assert state is not None and state.unreadable and "UnicodeDecodeError" in state.reason
            clock[0] += 1.0
        store.fail = None
        assert cached.get() is None
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "PAUSED (fail safe)" in errors[0].getMessage()
    assert sum("resumed" in r.getMessage() for r in caplog.records) == 1


def test_an_unreachable_backend_keeps_the_last_known_state_and_says_so() -> None:
    class Flaky:
        where = "Redis key 'rpcdaemon.pause'"
        shared = True
        answer: PauseState | None = PauseState(until=None, reason="rmq")
        down = False

        def get(self) -> PauseState | None:
            if self.down:
                raise TemporaryError("connection refused")
            return self.answer

    store = Flaky()
    clock = [0.0]
    cached = CachedPause(store, every=1.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert cached.get() == store.answer and cached.note is None
    store.down = True
    clock[0] = 5.0
    assert cached.get() == PauseState(until=None, reason="rmq")  # kept: still paused
    assert cached.note is not None and "keeping the last known state (paused)" in cached.note
    store.down, store.answer = False, None
    clock[0] = 10.0
    assert cached.get() is None and cached.note is None
    store.down = True
    clock[0] = 15.0
    assert cached.get() is None  # kept: still not paused (failover goes on)
    assert cached.note is not None and "(not paused)" in cached.note


def test_written_by_root_it_belongs_to_the_owner_of_its_directory(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it checks sudo rpcdaemon pause's chown)")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, 4321, 4322)
    FilePauseStore(state_dir / "pause.json").set(PauseState(until=None, reason="x"))
    st = os.stat(state_dir / "pause.json")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o640)
    # not root: no chown (the file is the writer's)
    FilePauseStore(state_dir / "other.json", euid=lambda: 1000).set(PauseState(until=None))
    assert os.stat(state_dir / "other.json").st_uid == os.geteuid()


def _read_as(uid: int, path: Path) -> str:
    """What a daemon running as ``uid`` sees (a forked child that drops root first)."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(rd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            state = CachedPause(FilePauseStore(path)).get()
            text = "none" if state is None else "unreadable" if state.unreadable else state.reason
            os.write(wr, text.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wr)
    with os.fdopen(rd, "rb") as pipe:
        seen = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return seen


def test_sudo_pause_is_obeyed_by_a_daemon_running_as_its_own_user() -> None:
    """The reported bug: root wrote 0600, the daemon (another user) got EACCES and went on
    as if not paused. Now the file is the daemon's, and if it still cannot be read (a
    root-owned directory, a file made by hand) the daemon counts itself paused."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it reads the pause as another user)")
    daemon_uid = 65534  # nobody: stands for the unit's User=rpcdaemon
    top = Path(tempfile.mkdtemp(prefix="rpcd-pause-"))
    try:
        top.chmod(0o755)
        state_dir = top / "state"
        state_dir.mkdir(mode=0o750)
        os.chown(state_dir, daemon_uid, daemon_uid)  # StateDirectory=rpcdaemon
        FilePauseStore(state_dir / "pause.json").set(PauseState(until=None, reason="rmq"))
        assert _read_as(daemon_uid, state_dir / "pause.json") == "rmq"
        # an unreadable pause (root 0600): paused, fail safe
        root_dir = top / "rootdir"
        root_dir.mkdir(mode=0o755)
        (root_dir / "pause.json").write_text('{"until": null, "reason": "rmq"}')
        (root_dir / "pause.json").chmod(0o600)
        assert _read_as(daemon_uid, root_dir / "pause.json") == "unreadable"
        assert _read_as(daemon_uid, root_dir / "absent.json") == "none"
    finally:
        shutil.rmtree(top)
