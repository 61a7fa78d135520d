"""Leader election over tooz, so that several rpcdaemons can run and only one acts.

Fail safe: *not leader* means *observe only*. ``is_leader`` is computed when it is read:
it is true only while we hold the election lock **and** the last successful round trip
to the backend (heartbeat + ownership check) started less than ``lease / 2`` seconds
ago. The backend lets the lock expire ``lease`` seconds after its last extension, so a
member that loses the backend stops acting before anyone else can be elected, even if
its own thread is stuck inside a slow client call.

Why not ``watch_elected_as_leader`` + ``run_watchers``: tooz's leader election tells a
member when it *wins* but never when it *loses* (the Redis driver logs and swallows a
failed lock extension in ``heartbeat()``, and does not implement
``stand_down_group_leader``). We hold the election lock ourselves through the public
``get_lock`` API, extend it with ``heartbeat()``, and check ``is_still_owner()`` every
round. Any backend error drops leadership at once, tears the coordinator down and
reconnects with capped exponential backoff.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import tooz
from tooz import coordination

from rpcdaemon.settings import DaemonSettings

logger = logging.getLogger(__name__)

DEFAULT_GROUP = "rpcdaemon"
DEFAULT_LEASE = 10.0


class Elector(Protocol):
    """What the runtime needs from leader election (LeaderElector or SingleInstance)."""

    on_change: Callable[[bool], None] | None

    @property
    def member_id(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def connected(self) -> bool:
        """The coordination backend answered recently (always true for SingleInstance)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def default_member_id() -> str:
    """``<hostname>-<pid>-<uuid8>``: unique per process, readable in the backend."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SingleInstance:
    """No coordination backend configured: this process is always the leader."""

    def __init__(
        self,
        *,
        on_change: Callable[[bool], None] | None = None,
        member_id: str | None = None,
    ) -> None:
        self.on_change = on_change
        self._member_id = member_id or default_member_id()

    @property
    def member_id(self) -> str:
        return self._member_id

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        logger.info("no coordination_url configured: running as the single instance (leader)")
        if self.on_change is not None:
            self.on_change(True)

    def stop(self) -> None:
        return None


class _Backoff:
    """Capped exponential backoff with jitter (half to full of the nominal delay)."""

    def __init__(self, *, initial: float, cap: float) -> None:
        self._initial = initial
        self._cap = cap
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        nominal = min(self._cap, self._initial * (2.0**self._attempt))
        self._attempt += 1
        return nominal * random.uniform(0.5, 1.0)  # jitter, not crypto


class _LostLeadership(Exception):
    """The backend says the election lock is no longer ours."""


class LeaderElector:
    """One member of the election group ``group`` on the tooz backend at ``url``.

    ``lease`` (whole seconds, at least 1) is how long the backend keeps the election lock
    after its last extension: the time a standby needs to take over from a member that
    died without releasing it. A clean ``stop()`` releases the lock, so the standby takes
    over at its next round (``lease / 5``).
    """

    def __init__(
        self,
        url: str,
        *,
        group: str = DEFAULT_GROUP,
        lease: float = DEFAULT_LEASE,
        max_backoff: float = 30.0,
        on_change: Callable[[bool], None] | None = None,
        member_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self._url = url
        self._group = group
        self._lease = max(1, math.ceil(lease))
        self._interval = max(0.2, self._lease / 5.0)
        self._valid_for = self._lease / 2.0
        self._max_backoff = max_backoff
        self._member_id = member_id or default_member_id()
        self._clock = clock
        self._mutex = threading.Lock()
        self._holding = False
        self._last_ok: float | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self._monitor: threading.Thread | None = None
        self._reported = False

    # -- public interface -------------------------------------------------------------

    @property
    def member_id(self) -> str:
        return self._member_id

    @property
    def group(self) -> str:
        return self._group

    @property
    def lease(self) -> float:
        return float(self._lease)

    @property
    def is_leader(self) -> bool:
        with self._mutex:
            return self._holding and self._fresh_locked()

    @property
    def connected(self) -> bool:
        with self._mutex:
            return self._fresh_locked()

    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("LeaderElector.start() called twice")
        logger.info(
            "joining leader election group %r on %s as %s (lease %ss)",
            self._group,
            _redact_url(self._url),
            self._member_id,
            self._lease,
        )
        self._worker = threading.Thread(target=self._run, name="rpcdaemon-elector", daemon=True)
        self._monitor = threading.Thread(
            target=self._watch, name="rpcdaemon-elector-watch", daemon=True
        )
        self._worker.start()
        self._monitor.start()

    def stop(self) -> None:
        """Stop acting at once, then release the lock (best effort, bounded wait)."""
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=float(self._lease))
            if self._worker.is_alive():
                logger.warning("leader election thread did not stop in %ss", self._lease)
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)

    # -- internals ----------------------------------------------------------------------

    def _fresh_locked(self) -> bool:
        if self._stopping.is_set() or self._last_ok is None:
            return False
        return self._clock() - self._last_ok < self._valid_for

    def _watch(self) -> None:
        """Fire ``on_change`` on every transition, from this one thread, in order."""
        while True:
            self._wake.wait(timeout=min(0.25, self._valid_for / 4.0))
            self._wake.clear()
            leader = self.is_leader
            if leader != self._reported:
                self._reported = leader
                if leader:
                    logger.warning("elected leader of %r: acting", self._group)
                else:
                    logger.warning("not leader of %r any more: observing only", self._group)
                callback = self.on_change
                if callback is not None:
                    try:
                        callback(leader)
                    except Exception:
                        logger.exception("leader election on_change callback failed")
            if self._stopping.is_set() and not self._reported:
                return

    def _options(self) -> dict[str, str]:
        """Timeouts from the lease, unless the URL's query string sets them."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self._url).query)
        wanted = {
            "lock_timeout": str(self._lease),
            "membership_timeout": str(self._lease),
        }
        if self._url.startswith(("redis://", "rediss://")):
            socket_timeout = f"{max(0.5, self._lease / 5.0):.3f}"
            wanted["socket_timeout"] = socket_timeout
            wanted["socket_connect_timeout"] = socket_timeout
        return {k: v for k, v in wanted.items() if k not in query}

    def _run(self) -> None:
        backoff = _Backoff(initial=0.5, cap=self._max_backoff)
        while not self._stopping.is_set():
            coord: Any = None
            try:
                coord = coordination.get_coordinator(
                    self._url, self._member_id.encode(), None, **self._options()
                )
                coord.start(start_heart=False)
                self._join(coord)
                self._serve(coord, backoff)
            except (tooz.ToozError, _LostLeadership, OSError) as exc:
                self._drop(f"{type(exc).__name__}: {exc}")
            except Exception:
                logger.exception("unexpected error in leader election")
                self._drop("unexpected error")
            finally:
                self._teardown(coord)
            if self._stopping.is_set():
                break
            delay = backoff.next()
            logger.info("leader election: reconnecting in %.1fs", delay)
            self._stopping.wait(delay)

    def _join(self, coord: Any) -> None:
        group = self._group.encode()
        try:
            coord.join_group_create(group)
        except coordination.MemberAlreadyExist:
            pass  # our previous connection's membership has not expired yet

    def _serve(self, coord: Any, backoff: _Backoff) -> None:
        lock = coord.get_lock(f"{self._group}.leader".encode())
        while not self._stopping.is_set():
            started = self._clock()
            coord.heartbeat()  # refreshes membership and extends the locks we hold
            with self._mutex:
                holding = self._holding
            if holding:
                if not _still_owner(lock):
                    raise _LostLeadership("the election lock is held by someone else")
            elif lock.acquire(blocking=False):
                holding = True
                logger.info("acquired the election lock of %r", self._group)
            with self._mutex:
                self._holding = holding
                self._last_ok = started
            backoff.reset()
            self._wake.set()
            self._stopping.wait(self._interval)

    def _drop(self, why: str) -> None:
        with self._mutex:
            was = self._holding and self._fresh_locked()
            self._holding = False
            self._last_ok = None
        self._wake.set()
        if self._stopping.is_set():
            return
        log = logger.warning if was else logger.info
        log("leader election backend trouble (%s): not leader until it recovers", why)

    def _teardown(self, coord: Any) -> None:
        with self._mutex:
            self._holding = False
            self._last_ok = None
        self._wake.set()
        if coord is None or not coord.is_started:
            return
        try:
            coord.stop()  # releases the lock and leaves the group when the backend answers
        except Exception as exc:  # the backend may be gone: nothing more to do
            logger.debug("leader election teardown: %s", exc)


def _still_owner(lock: Any) -> bool:
    try:
        return bool(lock.is_still_owner())
    except tooz.NotImplemented:
        return True  # this backend cannot tell: a successful heartbeat is all we have


def _redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def elector_from_settings(
    daemon: DaemonSettings,
    *,
    on_change: Callable[[bool], None] | None = None,
    group: str = DEFAULT_GROUP,
    lease: float = DEFAULT_LEASE,
) -> Elector:
    """A LeaderElector on ``daemon.coordination_url``, or SingleInstance when it is None."""
    if not daemon.coordination_url:
        return SingleInstance(on_change=on_change)
    return LeaderElector(
        daemon.coordination_url,
        group=group,
        lease=lease,
        max_backoff=daemon.reconnect_max_backoff,
        on_change=on_change,
    )
