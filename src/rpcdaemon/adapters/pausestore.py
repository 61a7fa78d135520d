"""Where ``rpcdaemon pause`` keeps its state, so that every instance obeys it.

* With a Redis coordination backend (``coordination_url = redis://...``): one key,
  ``<group>.pause`` (``<namespace>_<group>.pause`` with tooz's ``namespace`` option), holding the JSON state, with the pause's expiry as the key's TTL
  (Redis drops it at expiry: nothing has to resume it). Every instance reads the same key.
* With etcd or ZooKeeper: a key / node there (:mod:`rpcdaemon.adapters.pausebackends`).
* Otherwise (a single instance, or another tooz backend): a local JSON state file
  (``pause_file``, mode 0640, written atomically with a rename; written by root it is
  given to the owner and group of its directory, the daemon's StateDirectory). It binds
  the instances of that machine only (``rpcdaemon pause`` says so).

Fail safe: only "no such file / no such key" means not paused. A pause file that exists
but cannot be read (EACCES...) or decoded (bad bytes, bad JSON), and a stored value that
cannot be decoded, count as PAUSED, with a reason that says so
(:func:`~rpcdaemon.core.statusmodel.unreadable_pause`). A coordination backend that
cannot be reached keeps the last known state (:class:`CachedPause`): the backend being
down is no reason to stop failover.

Reading is one GET (Redis) or one ``stat`` + small read (file); :class:`CachedPause` puts
a floor on how often the runtime asks (its passes may be many a second).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from rpcdaemon.adapters.pausebackends import EtcdPauseStore, ZooKeeperPauseStore
from rpcdaemon.adapters.pausecodec import decode, encode
from rpcdaemon.adapters.tooz_backends import backend_kind
from rpcdaemon.core.errors import TemporaryError
from rpcdaemon.core.statusmodel import PauseState, unreadable_pause

logger = logging.getLogger(__name__)

DEFAULT_PAUSE_FILE = "/var/lib/rpcdaemon/pause.json"
DEFAULT_KEY_GROUP = "rpcdaemon"


class PauseStore(Protocol):
    @property
    def where(self) -> str: ...

    @property
    def shared(self) -> bool:
        """Every instance reads the same state (coordination backend)."""
        ...

    def get(self) -> PauseState | None:
        """The active pause, or None (expired pauses are None); an unreadable stored
        pause is a pause. Raises TemporaryError when the store cannot be reached."""
        ...

    def set(self, state: PauseState) -> None: ...

    def clear(self) -> bool:
        """Resume; True if a pause was stored."""
        ...


class FilePauseStore:
    """A JSON file; absent = not paused; present but unreadable = paused (fail safe)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        wall: Callable[[], float] = time.time,
        euid: Callable[[], int] = os.geteuid,
    ):
        self._path = Path(path)
        self._wall = wall
        self._euid = euid

    @property
    def where(self) -> str:
        return f"file {self._path}"

    @property
    def shared(self) -> bool:
        return False

    def get(self) -> PauseState | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # EACCES (written by root 0600), EISDIR, EIO...
            return unreadable_pause(f"cannot read {self._path}: {exc.strerror or exc}")
        state = decode(raw, where=str(self._path))
        return state if state.active(self._wall()) else None

    def set(self, state: PauseState) -> None:
        parent = self._path.parent
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pause.", dir=parent)
        try:
            os.fchmod(fd, 0o640)
            if self._euid() == 0:  # sudo rpcdaemon pause: the daemon's user must read it
                owner = os.stat(parent)
                os.fchown(fd, owner.st_uid, owner.st_gid)
            with os.fdopen(fd, "w") as out:
                out.write(encode(state))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def clear(self) -> bool:
        try:
            self._path.unlink()
        except FileNotFoundError:
            return False
        return True


class RedisPauseStore:
    """One Redis key with the pause's TTL."""

    def __init__(
        self,
        url: str,
        *,
        group: str = DEFAULT_KEY_GROUP,
        timeout: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        import redis  # the tooz Redis driver's own client

        self._url, _, query = url.partition("?")
        namespace = urllib.parse.parse_qs(query).get("namespace", [""])[0]
        # tooz's Redis driver prefixes its keys with the URL's namespace: so do we
        self._key = f"{namespace}_{group}.pause" if namespace else f"{group}.pause"
        self._wall = wall
        self._redis = redis.Redis.from_url(
            self._url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    @property
    def where(self) -> str:
        return f"Redis key {self._key!r}"

    @property
    def shared(self) -> bool:
        return True

    def get(self) -> PauseState | None:
        try:
            raw = self._redis.get(self._key)
        except self._errors as exc:
            raise TemporaryError(f"cannot read the pause state from Redis: {exc}") from exc
        if raw is None:
            return None
        state = decode(raw, where=self.where)
        return state if state.active(self._wall()) else None

    def set(self, state: PauseState) -> None:
        ttl_ms = None
        if state.until is not None:
            ttl_ms = max(1, int((state.until - self._wall()) * 1000))
        try:
            self._redis.set(self._key, encode(state), px=ttl_ms)
        except self._errors as exc:
            raise TemporaryError(f"cannot store the pause state in Redis: {exc}") from exc

    def clear(self) -> bool:
        try:
            return bool(self._redis.delete(self._key))
        except self._errors as exc:
            raise TemporaryError(f"cannot clear the pause state in Redis: {exc}") from exc


def pause_store(
    coordination_url: str | None, pause_file: str | None = None, *, group: str = DEFAULT_KEY_GROUP
) -> PauseStore:
    """The store every instance configured like this one reads."""
    kind = backend_kind(coordination_url) if coordination_url else None
    if coordination_url and kind == "redis":
        return RedisPauseStore(coordination_url, group=group)
    if coordination_url and kind == "etcd3":
        return EtcdPauseStore(coordination_url, group=group)
    if coordination_url and kind == "zookeeper":
        return ZooKeeperPauseStore(coordination_url, group=group)
    return FilePauseStore(pause_file or DEFAULT_PAUSE_FILE)


class CachedPause:
    """``get()`` at most once per ``every`` seconds (the runtime asks each pass); never
    raises. A store that cannot be reached (TemporaryError: Redis, etcd or ZooKeeper
    down) keeps the last known state: an unreachable backend neither pauses nor resumes
    anyone by itself (:attr:`note` says so while it lasts). Any other failure counts as
    paused (fail safe). Every change of state is logged once, loudly."""

    def __init__(
        self,
        store: PauseStore,
        *,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._state: PauseState | None = None
        self._read_at: float | None = None
        self._failing: str | None = None

    @property
    def note(self) -> str | None:
        """For the status model's notes: set while the store cannot be reached."""
        with self._lock:
            failing, state = self._failing, self._state
        if failing is None:
            return None
        kept = "paused" if state is not None else "not paused"
        return (
            f"pause state unreadable from {self._store.where} ({failing}): "
            f"keeping the last known state ({kept})"
        )

    def get(self) -> PauseState | None:
        now = self._clock()
        with self._lock:
            if self._read_at is not None and now - self._read_at < self._every:
                return self._state
            self._read_at = now
        try:
            state = self._store.get()
        except TemporaryError as exc:
            with self._lock:
                if self._failing is None:
                    logger.warning(
                        "pause state unreadable from %s (%s): keeping the last known state (%s)",
                        self._store.where,
                        exc,
                        "paused" if self._state is not None else "not paused",
                    )
                self._failing = str(exc)
                return self._state
        except Exception as exc:  # a bug or a surprise: never escape into the reactor
            state = unreadable_pause(f"{self._store.where}: {type(exc).__name__}: {exc}")
        with self._lock:
            if self._failing is not None:
                logger.info("pause state readable again from %s", self._store.where)
                self._failing = None
            if state != self._state:
                self._log_change(state)
            self._state = state
        return state

    def _log_change(self, state: PauseState | None) -> None:
        if state is None:
            logger.warning("automatic moves resumed (pause cleared or expired)")
        elif state.unreadable:
            logger.error("automatic moves PAUSED (fail safe): %s", state.reason)
        else:
            logger.warning("automatic moves %s", state.describe(time.time()))
