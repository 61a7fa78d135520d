"""Detach from the terminal, hold the pid file, and turn signals into events.

* :func:`daemonize` double-forks; the launching process waits for the daemon's
  :class:`Startup` report (ready, or failed with a one-line reason and a status), so
  ``rpcdaemon -c FILE`` exits non-zero with a clear message instead of exiting 0 while the
  daemon dies behind /dev/null.
* :func:`set_umask`: 027, before anything is created.
* :class:`PidFile` is created with O_CREAT|O_EXCL, mode 0600. A file naming a live rpcdaemon
  refuses the start; a stale one (process gone, or the pid now belongs to something that is
  not an rpcdaemon) is taken over with a log line. It is removed at exit only if it still
  holds our pid.
* :class:`SignalRelay`: SIGTERM/SIGINT set the stop Event; SIGHUP asks a helper thread to
  reopen the log file (never doing IO inside the signal handler itself).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

DAEMON_UMASK = 0o027
_MARKER = "rpcdaemon"


class PidFileError(Exception):
    """The pid file is held by a live rpcdaemon, or cannot be written."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _looks_like_rpcdaemon(pid: int) -> bool:
    """True when /proc/PID/cmdline mentions rpcdaemon (or when we cannot tell)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except FileNotFoundError:
        return False  # gone between the two checks
    except OSError:
        return True  # no /proc, or not allowed: assume the worst and refuse
    return _MARKER.encode() in cmdline


class PidFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._held = False

    def _read_pid(self) -> int | None:
        """The pid in the file; None when empty or garbage (after waiting for a writer)."""
        for _ in range(5):
            try:
                with open(self.path, encoding="ascii", errors="replace") as fh:
                    text = fh.read().strip()
            except FileNotFoundError:
                return None
            if text:
                return int(text) if text.isdigit() else None
            time.sleep(0.1)  # just created by another starter: give it a moment to write
        return None

    def acquire(self) -> None:
        """Create the file with our pid. Raises PidFileError."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            except OSError as exc:
                raise PidFileError(
                    f"cannot create pid file {self.path}: {exc.strerror or exc}"
                ) from None
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, f"{os.getpid()}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._held = True
            return
        raise PidFileError(f"pid file {self.path} keeps reappearing: another rpcdaemon starting?")

    def _take_over_if_stale(self) -> None:
        pid = self._read_pid()
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            if _looks_like_rpcdaemon(pid):
                raise PidFileError(
                    f"pid file {self.path} is held by a running rpcdaemon (pid {pid}); "
                    "stop it first, or remove the file if it is not rpcdaemon"
                )
            why = f"pid {pid} is alive but is not an rpcdaemon"
        elif pid is None:
            why = "it holds no pid"
        else:
            why = f"process {pid} is gone"
        # Remove it only if it still holds what we judged stale.
        if self._read_pid() != pid:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise PidFileError(
                f"cannot remove stale pid file {self.path}: {exc.strerror or exc}"
            ) from None
        logger.warning("took over stale pid file %s (%s)", self.path, why)

    def release(self) -> None:
        """Remove the file if we created it and it still holds our pid."""
        if not self._held:
            return
        self._held = False
        try:
            if self._read_pid() == os.getpid():
                os.unlink(self.path)
        except OSError as exc:
            logger.warning("could not remove pid file %s: %s", self.path, exc)


def set_umask() -> None:
    """umask 027: call it before anything is created (log file, pid file, Dump output)."""
    os.umask(DAEMON_UMASK)


class Startup:
    """The daemon's end of the launcher's pipe: say once that start-up succeeded or failed.

    The launcher (``rpcdaemon -c FILE`` without -d) exits with what it is told: 0 after
    :meth:`ready`, or the status given to :meth:`failed` with its one-line message on
    stderr. Thread-safe and single-shot: the first report wins, later ones are ignored.
    ``Startup(None)`` (the foreground) reports nothing.
    """

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    @property
    def pending(self) -> bool:
        return self._fd is not None

    def ready_after(self, seconds: float) -> None:
        """Report ready once the daemon has run ``seconds`` without failing."""
        if self._fd is None:
            return
        self._timer = threading.Timer(seconds, self.ready)
        self._timer.name = "startup"
        self._timer.daemon = True
        self._timer.start()

    def ready(self) -> None:
        self._send(f"ok {os.getpid()}")

    def failed(self, message: str, status: int) -> None:
        self._send(f"fail {status} {' '.join(message.split())}")

    def _send(self, line: str) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        try:
            os.write(fd, f"{line}\n".encode("utf-8", "replace"))
        except OSError as exc:  # the launcher was killed: nobody to tell
            logger.debug("could not report start-up to the launcher: %s", exc)
        finally:
            os.close(fd)


def _launcher_status(report: str) -> int:
    """Turn the daemon's report into the launcher's exit status (printing any error)."""
    if report.startswith("ok"):
        return 0
    status, message = 1, report
    if report.startswith("fail "):
        code, _, message = report[5:].partition(" ")
        status = int(code) if code.isdigit() and int(code) > 0 else 1
    if not message:
        message = "the daemon exited during start-up (see the log file)"
    print(f"rpcdaemon: error: {message}", file=sys.stderr)
    return status


def daemonize(pidfile: PidFile, *, on_ready: Callable[[], None] | None = None) -> int | Startup:
    """Detach: double fork, setsid, chdir /, umask 027, std fds on /dev/null, take the pid file.

    Returns a :class:`Startup` in the daemon (which now holds ``pidfile``): the daemon must
    call its ``ready()`` or ``failed()`` (``ready_after`` arms a timer). Returns an exit
    status in the launching process, once the daemon reported (0, or the failure's status
    with its reason printed on stderr; 1 if it died without a word). ``on_ready`` runs in the
    daemon right after it took the pid file (install the signal handlers there, so that no
    early SIGHUP/SIGTERM kills it with the default action). Call it before starting any
    thread.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child > 0:  # the launcher
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode("utf-8", "replace").strip()
        os.waitpid(child, 0)
        return _launcher_status(report)
    os.close(read_end)
    startup = Startup(write_end)
    try:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)  # the session leader goes; the grandchild cannot get a terminal
        os.chdir("/")
        set_umask()
        _std_to_devnull()
        pidfile.acquire()
        if on_ready is not None:
            on_ready()
    except PidFileError as exc:
        _report_and_exit(startup, str(exc))
    except OSError as exc:
        _report_and_exit(startup, f"could not detach: {exc}")
    return startup


def _report_and_exit(startup: Startup, message: str) -> None:
    logger.error("%s", message)
    try:
        startup.failed(message, 1)
    finally:
        os._exit(1)


def _std_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


class SignalRelay:
    """SIGTERM/SIGINT -> ``stop.set()``; SIGHUP -> ``on_hup()``.

    The handlers only put the signal number on a SimpleQueue (reentrant, safe in a signal
    handler); a helper thread does the rest. Setting an Event or logging inside the handler
    could deadlock on a lock the interrupted main thread holds.
    """

    _CLOSE = -1

    def __init__(self, stop: threading.Event, *, on_hup: Callable[[], None] | None = None) -> None:
        self.stop = stop
        self._on_hup = on_hup
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._previous: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Install the handlers (main thread only) and start the helper thread."""
        self._thread = threading.Thread(target=self._loop, name="signals", daemon=True)
        self._thread.start()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._signals.put(self._CLOSE)
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._signals.put(signum)

    def _loop(self) -> None:
        while (signum := self._signals.get()) != self._CLOSE:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                logger.info("SIGHUP received: reopening the log file")
                if self._on_hup is not None:
                    try:
                        self._on_hup()
                    except OSError as exc:
                        logger.error("could not reopen the log file: %s", exc)
            elif self.stop.is_set():
                logger.warning("%s received again: already stopping", name)
            else:
                logger.info("%s received: stopping", name)
                self.stop.set()
