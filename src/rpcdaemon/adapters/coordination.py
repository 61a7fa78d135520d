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

Backends (the same election, checked by the same test suite on each):

- **Redis** (``redis://``): the lock is a key with a TTL of ``lease``; ``heartbeat()``
  resets the TTL, ``is_still_owner()`` compares the token.
- **etcd** (``etcd3+http://``, tooz's etcd3gw driver over etcd's v3 JSON gateway): the
  lock key is attached to an etcd lease of ``lease`` seconds, refreshed by ``heartbeat()``.
  tooz's etcd lock has no ``is_still_owner()`` and ignores a refresh of an expired lease,
  so we read the key and compare it with our lock's token ourselves.
- **ZooKeeper** (``zookeeper://``, kazoo): the lock is an ephemeral node of our session,
  whose timeout is ``lease`` (the server clamps it to [2, 20] x tickTime, 4 to 40 s by
  default: longer is safe, a lease above the server's maximum is warned about).
  ``heartbeat()`` reads a node (a round trip) and ``is_still_owner()`` reads the lock node.

In every case the backend's expiry is at least ``lease`` after a round trip that
*started* at ``_last_ok``, so acting only while ``now - _last_ok < lease / 2`` is safe.
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

from rpcdaemon.adapters.tooz_backends import (
    ZOOKEEPER_MAX_SESSION,
    backend_kind,
    backend_options,
    effective_expiry,
    is_client_error,
    still_owner,
)
from rpcdaemon.core.backoff import Backoff
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
    """Consecutive failures along the daemon's one backoff rule, with jitter."""

    def __init__(self, *, initial: float, cap: float) -> None:
        self._rule = Backoff(initial, cap)
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next(self) -> float:
        delay = self._rule.delay(self._attempt, jitter=random.random())  # jitter, not crypto
        self._attempt += 1
        return delay


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
        self._kind = backend_kind(url)
        self._interval = max(0.2, self._lease / 5.0)
        # act only within half of the backend's real expiry (the URL may shorten it)
        self._valid_for = effective_expiry(url, self._lease) / 2.0
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
        self._held: Any = None  # the tooz lock we acquired, until released

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
        if self._kind == "zookeeper" and self._lease > ZOOKEEPER_MAX_SESSION:
            logger.warning(
                "lease %ss is above ZooKeeper's default maxSessionTimeout (%.0f s): raise "
                "maxSessionTimeout on the servers, or the session (and the lock) may expire "
                "sooner than the lease",
                self._lease,
                ZOOKEEPER_MAX_SESSION,
            )
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
            # tooz's stop() releases at once, then waits for its executor's idle threads,
            # which poll once a second (futurist): allow for that on a loaded machine
            wait = max(5.0, float(self._lease))
            self._worker.join(timeout=wait)
            if self._worker.is_alive():
                logger.warning("leader election thread did not stop in %.0fs", wait)
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
        return backend_options(self._url, self._lease)

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
            except Exception as exc:
                if not is_client_error(exc):
                    logger.exception("unexpected error in leader election")
                self._drop(f"{type(exc).__name__}: {exc}")
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
                if not still_owner(self._kind, coord, lock):
                    raise _LostLeadership(
                        "the election lock is no longer ours (expired or taken over)"
                    )
            elif lock.acquire(blocking=False):
                holding = True
                self._held = lock
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
        held, self._held = self._held, None
        if coord is None or not coord.is_started:
            return
        try:
            if held is not None and self._kind == "etcd3":
                # tooz's etcd driver does not release locks in stop() (the others do):
                # release it ourselves; a no-op when the key no longer holds our token
                held.release()
        except Exception as exc:  # the backend may be gone: the lock expires on its own
            logger.debug("leader election teardown: release: %s", exc)
        try:
            coord.stop()  # leaves the group (and releases locks) when the backend answers
        except Exception as exc:  # the backend may be gone: nothing more to do
            logger.debug("leader election teardown: %s", exc)


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
