"""systemd notify protocol of the daemon as a process: the test plays systemd.

The daemon (``python -m rpcdaemon -d``) runs against the simulator with ``NOTIFY_SOCKET``
pointing at a datagram socket this test listens on, and ``WATCHDOG_USEC`` set, as systemd
does for ``Type=notify`` + ``WatchdogSec=``. Checked: READY=1 only after the first Neutron
snapshot, STATUS= lines that say what the daemon is doing, WATCHDOG=1 at half the watchdog
timeout, none once the reactor is wedged (``RPCDAEMON_TEST_WEDGE_REACTOR_AFTER``), and
STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rpcdaemon.adapters.sdnotify import WEDGE_ENV
from tests.e2e.harness import LIST_AGENTS, DaemonProcess, Rig, measure, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
WATCHDOG_USEC = 2_000_000  # WatchdogSec=2s: WATCHDOG=1 expected every 1 s


class FakeSystemd:
    """The notify socket: every datagram with its arrival time, and what the test asked to
    snapshot at the moment a READY=1 arrived."""

    def __init__(self, path: Path, on_ready: Callable[[], object]) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self.at_ready: object = None
        self._on_ready = on_ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode()
            if "READY=1" in text.splitlines() and self.at_ready is None:
                self.at_ready = self._on_ready()
            self.messages.append((time.monotonic(), text))

    def with_key(self, key: str) -> list[tuple[float, str]]:
        """Messages that carry ``KEY=...`` lines: (arrival, value of that key)."""
        found = []
        for at, text in list(self.messages):
            for line in text.splitlines():
                if line.startswith(key + "="):
                    found.append((at, line[len(key) + 1 :]))
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., FakeSystemd]]:
    made: list[FakeSystemd] = []

    def make(rig: Rig, **env: str) -> FakeSystemd:
        fake = FakeSystemd(tmp_path / "notify.sock", lambda: rig.calls(LIST_AGENTS))
        made.append(fake)
        # the harness hands the daemon a copy of this process's environment
        monkeypatch.setenv("NOTIFY_SOCKET", str(fake.path))
        monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return fake

    yield make
    for fake in made:
        fake.close()


def _sigkill(rig: Rig, daemon: DaemonProcess) -> None:
    daemon.proc.kill()
    daemon.proc.wait(timeout=10)
    daemon.stop()
    rig.daemons.remove(daemon)


def test_ready_after_first_snapshot_status_watchdog_cadence_stopping_on_sigterm(
    make_rig: Callable[..., Rig], systemd: Callable[..., FakeSystemd]
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    fake = systemd(rig)
    started = time.monotonic()
    daemon = rig.start_daemon()
    wait_until("READY=1", lambda: bool(fake.with_key("READY")), timeout=30)
    ready_after = fake.with_key("READY")[0][0] - started
    # READY only once Neutron's agent list was read (the first snapshot)
    assert isinstance(fake.at_ready, int) and fake.at_ready >= 1, fake.at_ready
    daemon.wait_log(r"listening on the bus", timeout=5)

    # WATCHDOG=1 every WATCHDOG_USEC / 2 (1 s), never a gap systemd would kill us for
    time.sleep(6.0)
    beats = [at for at, _ in fake.with_key("WATCHDOG")]
    assert len(beats) >= 5, beats
    gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
    assert min(gaps) >= 0.9, gaps  # rate-limited to the interval
    assert max(gaps) < WATCHDOG_USEC / 1e6, gaps  # within the timeout: no restart

    # STATUS says what the daemon is doing
    wait_until(
        "a STATUS with the three live L3 agents",
        lambda: any("L3 agents 3 alive" in s for _, s in fake.with_key("STATUS")),
        timeout=10,
    )
    status = fake.with_key("STATUS")[-1][1]
    assert status.startswith("leader") and "bus connected" in status, status
    assert len(fake.with_key("READY")) == 1

    # SIGTERM: STOPPING=1, then a clean exit
    daemon.proc.send_signal(signal.SIGTERM)
    wait_until("STOPPING=1", lambda: bool(fake.with_key("STOPPING")), timeout=30)
    daemon.proc.wait(timeout=30)  # one SIGTERM only, as systemd sends: no second signal
    daemon.assert_clean_exit()
    measure(
        "sd-notify",
        ready_after_start=f"{ready_after:.2f}s",
        watchdog_gap_min=f"{min(gaps):.2f}s",
        watchdog_gap_max=f"{max(gaps):.2f}s",
    )


def test_a_wedged_reactor_stops_feeding_the_watchdog(
    make_rig: Callable[..., Rig], systemd: Callable[..., FakeSystemd]
) -> None:
    rig = make_rig(l3=2, routers=2, agent_down_time=ADT)
    fake = systemd(rig, **{WEDGE_ENV: "8"})
    daemon = rig.start_daemon()
    wait_until("READY=1", lambda: bool(fake.with_key("READY")), timeout=30)
    daemon.wait_log(r"the reactor is wedged", timeout=60)
    wedged_at = time.monotonic()
    time.sleep(3 * WATCHDOG_USEC / 1e6)  # systemd would have killed it after one timeout
    assert daemon.proc.poll() is None  # the process lives on: only the loop is stuck
    late = [at for at, _ in fake.with_key("WATCHDOG") if at > wedged_at + 0.1]
    assert late == [], late
    assert fake.with_key("WATCHDOG"), "the watchdog was fed before the wedge"
    _sigkill(rig, daemon)  # what systemd's watchdog does (SIGABRT, then SIGKILL)
