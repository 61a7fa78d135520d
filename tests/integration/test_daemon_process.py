"""The daemon as a process, with the Dump plugin, against the real RabbitMQ.

-d: messages reach stdout, SIGTERM and SIGINT exit 0 within 5 s.
Detached: the launcher returns 0, the pid file is 0600, the log goes to the logfile,
SIGHUP after logrotate's rename starts a new file, SIGTERM removes the pid file.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.slow]

STOP_WITHIN = 5.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def write_config(tmp_path: Path, amqp_url: str, exchange: str) -> Path:
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(
        f"[Daemon]\nplugins = Dump\nrpchost = {amqp_url}\n"
        f"pidfile = {tmp_path / 'rpcdaemon.pid'}\nlogfile = {tmp_path / 'rpcdaemon.log'}\n"
        "loglevel = INFO\n"
        f"[Dump]\nloglevel = DEBUG\nqueue = {exchange}\nqueue_expire = 10\n"
    )
    return path


class Publisher:
    """Publishes a marker cast until ``seen()`` says it arrived (our queue binds late)."""

    def __init__(self, amqp_url: str, exchange: str) -> None:
        import kombu

        self._kombu: Any = kombu
        self._conn: Any = self._kombu.Connection(amqp_url)
        self._exchange = exchange

    def until(self, seen: Callable[[str], bool], timeout: float = 30.0) -> str:
        marker = f"marker_{uuid.uuid4().hex[:10]}"
        exchange = self._kombu.Exchange(self._exchange, type="topic", durable=False)
        producer: Any = self._kombu.Producer(self._conn.default_channel, exchange=exchange)
        body = json.dumps({"method": marker, "args": {"n": 1}})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            producer.publish(body, routing_key="test.marker", content_type="application/json")
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                if seen(marker):
                    return marker
                time.sleep(0.05)
        raise AssertionError("the daemon never showed the published message")

    def close(self) -> None:
        self._conn.release()


@pytest.fixture
def publisher(amqp_url: str, exchange_name: str) -> Iterator[Publisher]:
    pub = Publisher(amqp_url, exchange_name)
    yield pub
    pub.close()


def rpcdaemon(*args: str, cwd: Path, stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "rpcdaemon", *args], cwd=cwd, stdout=stdout, stderr=stderr
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_foreground_dumps_to_stdout_and_stops_on_signal(
    tmp_path: Path, amqp_url: str, exchange_name: str, publisher: Publisher, signum: int
) -> None:
    conf = write_config(tmp_path, amqp_url, exchange_name)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as so, err.open("wb") as se:
        proc = rpcdaemon("-c", str(conf), "-d", cwd=tmp_path, stdout=so, stderr=se)
        try:
            marker = publisher.until(lambda m: m in out.read_text())
            assert not (tmp_path / "rpcdaemon.pid").exists()  # -d: no pid file
            assert not (tmp_path / "rpcdaemon.log").exists()  # -d: log on stderr
            proc.send_signal(signum)
            assert proc.wait(timeout=STOP_WITHIN) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = err.read_text()
    assert "Traceback" not in stderr
    assert f"{signal.Signals(signum).name} received: stopping" in stderr
    assert '"routing_key": "test.marker"' in out.read_text() and marker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def test_detached_pidfile_logfile_sighup_and_sigterm(
    tmp_path: Path, amqp_url: str, exchange_name: str, publisher: Publisher
) -> None:
    conf = write_config(tmp_path, amqp_url, exchange_name)
    pidfile, log = tmp_path / "rpcdaemon.pid", tmp_path / "rpcdaemon.log"
    launcher = rpcdaemon(
        "-c", str(conf), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = launcher.communicate(timeout=20)
    assert launcher.returncode == 0, stderr.decode()
    assert stdout == b"" and stderr == b""
    pid = int(pidfile.read_text())
    try:
        assert pid != launcher.pid and _alive(pid)
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600
        # Dump logs at DEBUG into the logfile although the daemon is at INFO.
        publisher.until(lambda m: log.exists() and m in log.read_text())
        text = log.read_text()
        assert "rpcdaemon.plugins.dump" in text and "rpcdaemon.runtime.services" in text

        # A second start is refused while this one runs, naming the pid file and the pid.
        second = subprocess.run(
            [sys.executable, "-m", "rpcdaemon", "-c", str(conf)],
            cwd=tmp_path,
            capture_output=True,
            timeout=20,
        )
        assert second.returncode == 1
        assert str(pidfile) in second.stderr.decode() and str(pid) in second.stderr.decode()
        assert int(pidfile.read_text()) == pid

        # logrotate: rename, then SIGHUP; the daemon writes a new file.
        rotated = tmp_path / "rpcdaemon.log.1"
        log.rename(rotated)
        os.kill(pid, signal.SIGHUP)
        wait_for("a new log file", lambda: log.exists() and "log file reopened" in log.read_text())
        assert "SIGHUP received" in rotated.read_text() + log.read_text()
        publisher.until(lambda m: m in log.read_text())

        os.kill(pid, signal.SIGTERM)
        wait_for("the daemon to exit", lambda: not _alive(pid), timeout=STOP_WITHIN)
        wait_for("the pid file to go", lambda: not pidfile.exists(), timeout=1.0)
        assert "SIGTERM received: stopping" in log.read_text()
        assert "Traceback" not in log.read_text() + rotated.read_text()
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
