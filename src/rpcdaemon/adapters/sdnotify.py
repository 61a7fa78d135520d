"""systemd's service notification protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). A message is
one datagram of ``KEY=value`` lines sent to that socket. Nothing else: no reply, no
handshake. Without ``NOTIFY_SOCKET`` every call here is a no-op, so the daemon runs the
same under systemd, another supervisor, or a terminal.

Why our own ~100 lines and not a library: ``sdnotify`` (PyPI) is unmaintained since 2017,
untyped, swallows every error silently and knows nothing of ``WATCHDOG_USEC``;
``systemd-python`` needs libsystemd headers and a C compiler at install time;
``cysystemd`` is a compiled extension. All three would be one ``sendto()`` for us.

Sending never raises: a supervisor that went away must not take the daemon with it. The
first failure is logged as a warning, later ones at debug level.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from rpcdaemon.core.ids import Liveness
from rpcdaemon.core.status import StatusSnapshot

logger = logging.getLogger(__name__)


def _address(raw: str) -> str | None:
    """The AF_UNIX address for a NOTIFY_SOCKET value, or None if we cannot use it."""
    if raw.startswith("@"):
        return "\0" + raw[1:]  # Linux abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # e.g. vsock:CID:PORT (systemd 254+, for VMs): not supported here


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two WATCHDOG=1 (half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises), or None when the watchdog is off or meant for another process."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        logger.warning("ignoring WATCHDOG_USEC=%r: not a whole number of microseconds", usec)
        return None
    if value <= 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner:
        try:
            if int(owner) != pid:
                logger.info("WATCHDOG_PID=%s is not this process (%d): no watchdog", owner, pid)
                return None
        except ValueError:
            logger.warning("ignoring WATCHDOG_PID=%r: not a process id", owner)
            return None
    return value / 2_000_000.0


class Notifier:
    """Talks to the service manager. Thread-safe; every method is cheap and never raises."""

    def __init__(
        self,
        notify_socket: str | None,
        *,
        watchdog_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = _address(notify_socket) if notify_socket else None
        if notify_socket and self._address is None:
            logger.warning("NOTIFY_SOCKET=%r is not a unix socket: not notifying", notify_socket)
        self._interval = watchdog_interval if self._address is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._failed = False
        self._last_watchdog: float | None = None
        self._last_status: str | None = None
        self._ready = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        notifier = cls(
            env.get("NOTIFY_SOCKET") or None,
            watchdog_interval=watchdog_interval(env, os.getpid()),
        )
        if notifier.enabled:
            logger.info(
                "notifying the service manager at %s%s",
                env.get("NOTIFY_SOCKET"),
                f", watchdog every {notifier.watchdog_interval:g}s"
                if notifier.watchdog_interval
                else "",
            )
        return notifier

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        return self._interval

    def ready(self, status: str | None = None) -> None:
        """READY=1 (once): the bus is consumed and the first snapshot is read."""
        with self._lock:
            if self._ready:
                return
            self._ready = True
        lines = ["READY=1"]
        if status is not None:
            lines.append(self._status_line(status))
            with self._lock:
                self._last_status = lines[-1]
        self._send(lines)

    def status(self, text: str) -> None:
        """STATUS=<text>, shown by ``systemctl status``; sent only when it changes."""
        line = self._status_line(text)
        with self._lock:
            if line == self._last_status:
                return
            self._last_status = line
        self._send([line])

    def watchdog(self) -> bool:
        """WATCHDOG=1 if the watchdog is on and half its timeout has passed since the last
        one; call it from the loop that must keep turning. Returns whether it was sent."""
        if self._interval is None:
            return False
        now = self._clock()
        with self._lock:
            last = self._last_watchdog
            if last is not None and now - last < self._interval:
                return False
            self._last_watchdog = now
        self._send(["WATCHDOG=1"])
        return True

    def stopping(self, status: str | None = None) -> None:
        """STOPPING=1: the daemon is shutting down (systemd stops expecting WATCHDOG)."""
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(self._status_line(status))
        self._send(lines)

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _status_line(text: str) -> str:
        return "STATUS=" + " ".join(text.split())  # one line: no newlines in a value

    def _send(self, lines: list[str]) -> None:
        if self._address is None:
            return
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                log = logger.debug if self._failed else logger.warning
                self._failed = True
                log("could not notify the service manager (%s): %s", lines[0], exc)


WEDGE_ENV = "RPCDAEMON_TEST_WEDGE_REACTOR_AFTER"


class ReactorFeed:
    """The runtime's side of the protocol, for its hooks: ``on_tick`` on every turn of the
    reactor loop (on the reactor thread: feeds the watchdog, refreshes STATUS at most once
    a second), ``on_ready`` once the bus is consumed and the first snapshot read,
    ``on_stopping`` when shutdown begins.

    ``wedge_after`` (from ``RPCDAEMON_TEST_WEDGE_REACTOR_AFTER``, tests only) blocks the
    calling thread, the reactor, for good on that tick: a real hung loop, for the test
    that checks that systemd's watchdog is then no longer fed.
    """

    STATUS_EVERY = 1.0

    def __init__(
        self,
        notifier: Notifier,
        *,
        status: Callable[[], str] | None = None,
        wedge_after: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self._status = status
        self._wedge_after = wedge_after
        self._clock = clock
        self._ticks = 0
        self._last_status: float | None = None
        self._wedged = threading.Event()  # never set: what a wedged reactor waits on

    @classmethod
    def from_env(
        cls,
        *,
        status: Callable[[], str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ReactorFeed:
        env = os.environ if environ is None else environ
        wedge = env.get(WEDGE_ENV, "")
        wedge_after = int(wedge) if wedge.isdigit() else None
        if wedge_after is not None:
            logger.warning(
                "%s=%d: the reactor will hang on purpose (a test)", WEDGE_ENV, wedge_after
            )
        return cls(Notifier.from_env(env), status=status, wedge_after=wedge_after)

    def on_tick(self, *_: object) -> None:
        self._ticks += 1
        if self._wedge_after is not None and self._ticks > self._wedge_after:
            logger.warning("test hook: the reactor is wedged after %d ticks", self._wedge_after)
            self._wedged.wait()
        self.notifier.watchdog()
        now = self._clock()
        if self._status is not None and (
            self._last_status is None or now - self._last_status >= self.STATUS_EVERY
        ):
            self._last_status = now
            self.notifier.status(self._status())

    def on_ready(self, *_: object) -> None:
        status = self._status() if self._status is not None else None
        self.notifier.ready(status)
        logger.info("ready: the bus is consumed and the first snapshot is read")

    def on_stopping(self, *_: object) -> None:
        self.notifier.stopping("stopping")


def status_text(snap: StatusSnapshot, *, paused: bool = False) -> str:
    """One line for ``systemctl status``: role, bus, agents alive/dead, breaker, paused."""
    if not snap.coordination_connected:
        role = "standby (coordination backend unreachable)"
    else:
        role = "leader" if snap.is_leader else "standby"
    parts = [role + (", dry-run" if snap.dry_run else "")]
    if paused:
        parts.append("paused")
    parts.append("bus connected" if snap.bus_connected else "bus DISCONNECTED")
    if snap.in_grace:
        parts.append("grace period (no deaths declared yet)")
    counts: dict[str, dict[str, int]] = {}
    for (agent_type, liveness), n in snap.agents.items():
        counts.setdefault(agent_type, {}).setdefault(liveness, 0)
        counts[agent_type][liveness] += n
    for agent_type in sorted(counts):
        by = counts[agent_type]
        text = f"{agent_type}s {by.get(Liveness.ALIVE.value, 0)} alive"
        text += f" {by.get(Liveness.DEAD.value, 0)} dead"
        if by.get(Liveness.UNKNOWN.value):
            text += f" {by[Liveness.UNKNOWN.value]} unknown"
        parts.append(text)
    opened = sorted(t for t, is_open in snap.breaker_open.items() if is_open)
    if opened:
        parts.append("BREAKER OPEN for " + ", ".join(opened))
    if snap.pending_tasks:
        parts.append(f"{snap.pending_tasks} task(s) pending")
    return "; ".join(parts)
