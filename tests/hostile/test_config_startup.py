"""Start-up failures after the config was accepted: the detached launcher must not say OK.

The daemon body (``rpcdaemon.runtime.app.run``) is replaced by a fake that fails the way a
real start-up can (the metrics port taken between check and bind, a crash, a non-zero exit),
in a real process that really detaches: the launcher must exit non-zero with the daemon's
one-line error, and exit 0 only for a daemon that keeps running.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rpcdaemon.cli import STARTUP_SETTLE

FAKE = """
import errno, sys
from rpcdaemon import cli
from rpcdaemon.runtime import app

mode = sys.argv[1]

def fake(settings, *, stop, plugins, **kw):
    if mode == "bind":
        raise OSError(errno.EADDRINUSE, "Address already in use")
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "status":
        return 3
    stop.wait()
    return 0

app.run = fake
sys.exit(cli.main(sys.argv[2:]))
"""


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    script = tmp_path / "fake_rpcdaemon.py"
    script.write_text(FAKE)
    conf = tmp_path / "rpcdaemon.conf"
    conf.write_text(
        "[Daemon]\nplugins = Dump\nmetrics_address = 127.0.0.1:19999\n"
        f"pidfile = {tmp_path / 'd.pid'}\nlogfile = {tmp_path / 'd.log'}\n"
    )
    return script, conf, tmp_path / "d.pid"


def launch(script: Path, mode: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script), mode, *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0),  # a careless parent: the daemon must not inherit it
    )
    return result, time.monotonic() - start


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [
        ("bind", 2, ["[Daemon]: metrics_address: cannot listen on 127.0.0.1:19999", "in use"]),
        ("crash", 1, ["rpcdaemon failed: RuntimeError: boom"]),
        ("status", 3, ["stopped with status 3"]),
    ],
)
def test_detached_launcher_reports_the_daemons_start_up_failure(
    tmp_path: Path, mode: str, status: int, words: list[str]
) -> None:
    script, conf, pidfile = setup(tmp_path)
    result, took = launch(script, mode, "-c", str(conf))
    assert result.returncode == status, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpcdaemon: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    assert took < STARTUP_SETTLE + 5  # told at once, not after the settle time
    assert not pidfile.exists()  # released on the way out
    log = (tmp_path / "d.log").read_text()
    assert words[0].split(": ")[-1] in log  # and the reason is in the log file


def test_foreground_reports_a_bind_failure_as_a_config_error(tmp_path: Path) -> None:
    script, conf, _ = setup(tmp_path)
    result, _ = launch(script, "bind", "-c", str(conf), "-d")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]  # -d: the log precedes it on stderr
    assert last.startswith(f"rpcdaemon: error: {conf}: [Daemon]: metrics_address: cannot listen")
    assert "Traceback" not in result.stderr


def test_detached_launcher_says_ok_only_after_the_daemon_settled(tmp_path: Path) -> None:
    script, conf, pidfile = setup(tmp_path)
    result, took = launch(script, "serve", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
    assert took >= STARTUP_SETTLE
    pid = int(pidfile.read_text())
    try:
        log = tmp_path / "d.log"
        # umask 027 before anything is created, whatever the launcher's umask (0 here)
        assert stat.S_IMODE(log.stat().st_mode) & 0o027 == 0, oct(log.stat().st_mode)
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not pidfile.exists()
