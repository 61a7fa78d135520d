"""The pause state on etcd and ZooKeeper (the other coordination backends), so that every
instance obeys one pause whatever the backend (Redis: :mod:`rpcdaemon.adapters.pausestore`).

* **etcd** (``etcd3+http://host:port``): the key ``/rpcdaemon/<group>.pause`` through the
  v3 JSON gateway (``etcd3gw``, tooz's own client), attached to a lease of the pause's
  duration: etcd deletes it at expiry.
* **ZooKeeper** (``zookeeper://host:port[?namespace=NS]``): the persistent node
  ``/<NS or tooz>/<group>.pause`` (kazoo, tooz's own client). ZooKeeper has no TTL for a
  plain node: the expiry instant is in the value and readers ignore an expired pause.

Both keep one client per store (the daemon reads the state every second or so) and map
every client error to :class:`~rpcdaemon.core.errors.TemporaryError` (the daemon then keeps
the last known state); a stored value that cannot be decoded is a pause (fail safe).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient  # type: ignore[import-untyped]
from kazoo.exceptions import NoNodeError  # type: ignore[import-untyped]

from rpcdaemon.adapters.pausecodec import decode, encode
from rpcdaemon.core.errors import TemporaryError
from rpcdaemon.core.statusmodel import PauseState

logger = logging.getLogger(__name__)


class EtcdPauseStore:
    def __init__(
        self,
        url: str,
        *,
        group: str = "rpcdaemon",
        timeout: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        import etcd3gw

        parts = urllib.parse.urlsplit(url)
        protocol = parts.scheme.split("+", 1)[1] if "+" in parts.scheme else "http"
        self._client = etcd3gw.client(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 2379,
            protocol=protocol,
            timeout=timeout,
        )
        self._key = f"/rpcdaemon/{group}.pause"
        self._wall = wall

    @property
    def where(self) -> str:
        return f"etcd key {self._key!r}"

    @property
    def shared(self) -> bool:
        return True

    def get(self) -> PauseState | None:
        try:
            values = self._client.get(self._key)
        except Exception as exc:  # etcd3gw raises requests' and its own errors
            raise TemporaryError(f"cannot read the pause state from etcd: {exc}") from exc
        if not values:
            return None
        state = decode(values[0], where=self.where)
        return state if state.active(self._wall()) else None

    def set(self, state: PauseState) -> None:
        try:
            lease = None
            if state.until is not None:
                lease = self._client.lease(ttl=max(1, math.ceil(state.until - self._wall())))
            self._client.put(self._key, encode(state), lease=lease)
        except Exception as exc:
            raise TemporaryError(f"cannot store the pause state in etcd: {exc}") from exc

    def clear(self) -> bool:
        try:
            return bool(self._client.delete(self._key))
        except Exception as exc:
            raise TemporaryError(f"cannot clear the pause state in etcd: {exc}") from exc


class ZooKeeperPauseStore:
    def __init__(
        self,
        url: str,
        *,
        group: str = "rpcdaemon",
        timeout: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        namespace = urllib.parse.parse_qs(parts.query).get("namespace", ["tooz"])[0]
        self._hosts = parts.netloc or "127.0.0.1:2181"
        self._path = f"/{namespace}/{group}.pause"
        self._timeout = timeout
        self._wall = wall
        self._lock = threading.Lock()
        self._zk: Any = None

    @property
    def where(self) -> str:
        return f"ZooKeeper node {self._path!r}"

    @property
    def shared(self) -> bool:
        return True

    def _client(self) -> Any:
        with self._lock:
            if self._zk is None:
                zk = KazooClient(hosts=self._hosts, timeout=max(4.0, self._timeout * 2))
                zk.start(timeout=self._timeout)  # raises on timeout; no half-open client kept
                self._zk = zk
            return self._zk

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._client())
        except Exception as exc:  # kazoo's errors, or the start timeout
            raise TemporaryError(f"cannot {what} the pause state in ZooKeeper: {exc}") from exc

    def get(self) -> PauseState | None:
        def read(zk: Any) -> bytes | None:
            try:
                data, _ = zk.get(self._path)
            except NoNodeError:
                return None
            return bytes(data)

        raw = self._call("read", read)
        if raw is None:
            return None
        state = decode(raw, where=self.where)
        return state if state.active(self._wall()) else None

    def set(self, state: PauseState) -> None:
        value = encode(state).encode()

        def write(zk: Any) -> None:
            if zk.exists(self._path):
                zk.set(self._path, value)
            else:
                zk.create(self._path, value, makepath=True)

        self._call("store", write)

    def clear(self) -> bool:
        def delete(zk: Any) -> bool:
            try:
                zk.delete(self._path)
            except NoNodeError:
                return False
            return True

        return bool(self._call("clear", delete))

    def close(self) -> None:
        with self._lock:
            if self._zk is not None:
                self._zk.stop()
                self._zk.close()
                self._zk = None
