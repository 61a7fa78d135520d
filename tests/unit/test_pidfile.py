"""The pid file: O_EXCL + 0600, live holder refused, stale file taken over, removed at exit."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcdaemon.daemon import PidFile, PidFileError, Startup, _launcher_status


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])


@pytest.fixture
def rpcdaemon_like() -> Iterator[int]:
    """A live process whose command line mentions rpcdaemon."""
    proc = _spawn("rpcdaemon-holder")
    # Until the child has exec'd, /proc/PID/cmdline is still the parent's: wait for it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
            if b"rpcdaemon-holder" in fh.read():
                break
        time.sleep(0.01)
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = _spawn()
    proc.kill()
    proc.wait()
    return proc.pid


def test_created_with_our_pid_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "rpcdaemon.pid"
    old = os.umask(0)  # even with a permissive umask
    try:
        pidfile = PidFile(str(path))
        pidfile.acquire()
    finally:
        os.umask(old)
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pidfile.release()
    assert not path.exists()


def test_a_live_rpcdaemon_holder_is_refused_by_name_and_pid(
    tmp_path: Path, rpcdaemon_like: int
) -> None:
    path = tmp_path / "rpcdaemon.pid"
    path.write_text(f"{rpcdaemon_like}\n")
    with pytest.raises(PidFileError) as err:
        PidFile(str(path)).acquire()
    assert str(path) in str(err.value) and str(rpcdaemon_like) in str(err.value)
    assert path.read_text() == f"{rpcdaemon_like}\n"  # left alone


def test_a_stale_file_of_a_dead_process_is_taken_over(
    tmp_path: Path, dead_pid: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rpcdaemon.pid"
    path.write_text(f"{dead_pid}\n")
    pidfile = PidFile(str(path))
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    assert any("took over stale pid file" in r.getMessage() for r in caplog.records)
    pidfile.release()


def test_a_pid_reused_by_another_program_is_stale(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        path = tmp_path / "rpcdaemon.pid"
        path.write_text(f"{other.pid}\n")
        pidfile = PidFile(str(path))
        pidfile.acquire()
        assert path.read_text() == f"{os.getpid()}\n"
        pidfile.release()
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("content", ["", "garbage\n"])
def test_a_file_without_a_pid_is_stale(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rpcdaemon.pid"
    path.write_text(content)
    pidfile = PidFile(str(path))
    pidfile.acquire()
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.release()


def test_release_leaves_a_file_that_is_no_longer_ours(tmp_path: Path, rpcdaemon_like: int) -> None:
    path = tmp_path / "rpcdaemon.pid"
    pidfile = PidFile(str(path))
    pidfile.acquire()
    path.write_text(f"{rpcdaemon_like}\n")  # someone else's now
    pidfile.release()
    assert path.read_text() == f"{rpcdaemon_like}\n"


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "rpcdaemon.pid"
    with pytest.raises(PidFileError, match="cannot create pid file"):
        PidFile(str(path)).acquire()


# -- the start-up report from the daemon to the launcher ------------------------------------


def _read_all(fd: int) -> str:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read().decode()


def test_startup_reports_once_and_the_first_report_wins() -> None:
    read_end, write_end = os.pipe()
    startup = Startup(write_end)
    assert startup.pending
    startup.failed("no\nway", 2)
    startup.ready()  # ignored: already reported
    assert not startup.pending
    assert _read_all(read_end) == "fail 2 no way\n"


def test_startup_ready_after_the_settle_time_unless_it_failed_first() -> None:
    read_end, write_end = os.pipe()
    startup = Startup(write_end)
    startup.ready_after(0.05)
    assert _read_all(read_end) == f"ok {os.getpid()}\n"  # EOF once the timer reported
    read_end, write_end = os.pipe()
    startup = Startup(write_end)
    startup.ready_after(5.0)
    startup.failed("bind", 2)  # before the timer: the timer is cancelled
    assert _read_all(read_end) == "fail 2 bind\n"


def test_foreground_startup_reports_nothing() -> None:
    startup = Startup(None)
    startup.ready_after(0.01)
    startup.failed("x", 2)
    assert not startup.pending


@pytest.mark.parametrize(
    ("report", "status", "printed"),
    [
        ("ok 123", 0, ""),
        ("fail 2 f.conf: [Daemon]: metrics_address: in use", 2, "f.conf: [Daemon]"),
        ("fail 3 stopped", 3, "stopped"),
        ("pid file held", 1, "pid file held"),
        ("", 1, "exited during start-up"),
        ("fail x garbage", 1, "garbage"),
    ],
)
def test_the_launcher_exits_with_the_reported_status(
    report: str, status: int, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _launcher_status(report) == status
    err = capsys.readouterr().err
    if status == 0:
        assert err == ""
    else:
        assert err.startswith("rpcdaemon: error: ") and printed in err and err.count("\n") == 1
