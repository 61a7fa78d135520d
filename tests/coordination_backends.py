"""The coordination backends the leader election is tested on, all real: Redis, etcd
(v3 API through its JSON gateway, tooz's etcd3gw driver) and ZooKeeper (kazoo).

``scripts/test`` starts each of them on 127.0.0.1 (``scripts/lib.sh``). A test that cannot
reach one skips, unless ``RPCDAEMON_REQUIRE_REDIS`` / ``_ETCD`` / ``_ZOOKEEPER`` is 1, which
turns the skip into a failure (as ``.ci/run`` sets them).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.conftest import REDIS_URL, _unavailable

ZOOKEEPER_MIN_SESSION = 4.0  # 2 x tickTime (2 s): the shortest session the server grants
ZOOKEEPER_TICK = 2.0  # tickTime in scripts/lib.sh's zoo.cfg


@dataclass(frozen=True)
class Backend:
    name: str  # "redis", "etcd", "zookeeper"
    url: str
    port: int

    def via(self, port: int) -> str:
        """The same URL through another local port (a TcpProxy in front of the backend)."""
        return self.url.replace(f":{self.port}", f":{port}", 1)

    def expiry(self, lease: float) -> float:
        """How long the backend keeps the lock of a member that vanished, at least."""
        if self.name == "zookeeper":
            return max(lease, ZOOKEEPER_MIN_SESSION)
        return lease

    def expiry_max(self, lease: float) -> float:
        """... and at most: ZooKeeper checks session expiry once per tick (2 s)."""
        return self.expiry(lease) + (ZOOKEEPER_TICK if self.name == "zookeeper" else 0.0)


def _redis() -> Backend:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        _unavailable("Redis", "RPCDAEMON_REQUIRE_REDIS", repr(exc))
    return Backend("redis", REDIS_URL, 6379)


def _etcd() -> Backend:
    try:
        with urllib.request.urlopen("http://127.0.0.1:2379/health", timeout=3) as resp:
            health = json.loads(resp.read())
        if health.get("health") != "true":
            raise OSError(f"unhealthy: {health}")
    except (OSError, ValueError) as exc:
        _unavailable("etcd", "RPCDAEMON_REQUIRE_ETCD", repr(exc))
    return Backend("etcd", "etcd3+http://127.0.0.1:2379", 2379)


def _zookeeper() -> Backend:
    try:
        with socket.create_connection(("127.0.0.1", 2181), timeout=3) as s:
            s.sendall(b"srvr")
            if b"Mode:" not in s.recv(4096):
                raise OSError("no answer to srvr")
    except OSError as exc:
        _unavailable("ZooKeeper", "RPCDAEMON_REQUIRE_ZOOKEEPER", repr(exc))
    return Backend("zookeeper", "zookeeper://127.0.0.1:2181", 2181)


PROBES = {"redis": _redis, "etcd": _etcd, "zookeeper": _zookeeper}

# parametrize a test over every backend, each with its own marker
ALL = [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in PROBES]


def backend(name: str) -> Backend:
    """The backend called ``name``, checked live (skip or fail when it is not)."""
    return PROBES[name]()


@dataclass(frozen=True)
class ElectionStore:
    """Where daemons of election group ``rpcdaemon`` keep their lock on one backend, for a
    test to look at: ``url`` for ``coordination_url`` (a key namespace of the test's own
    where the driver has one), ``owner()`` the current holder's token (None: not held)."""

    backend: Backend
    url: str
    owner: Callable[[], bytes | None]


@contextmanager
def election_store(b: Backend, group: str = "rpcdaemon") -> Iterator[ElectionStore]:
    """Open one; its keys are deleted when done (after the daemons stopped: ask for this
    fixture before ``make_rig``, fixtures are torn down in reverse order)."""
    namespace = f"rpcdaemon-e2e-{uuid.uuid4().hex[:12]}"
    lock = f"{group}.leader"
    if b.name == "redis":
        import redis

        client = redis.Redis.from_url(b.url)
        key = f"{namespace}_{lock}_lock"
        try:
            yield ElectionStore(b, f"{b.url}?namespace={namespace}", lambda: client.get(key))
            keys = list(client.scan_iter(match=f"{namespace}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    elif b.name == "etcd":
        import etcd3gw

        etcd = etcd3gw.client(host="127.0.0.1", port=b.port)
        etcd_key = b"/tooz/locks" + lock.encode()  # tooz's etcd driver has no namespace

        def etcd_owner() -> bytes | None:
            values = etcd.get(etcd_key)
            return bytes(values[0]) if values else None

        # a crashed run's daemon may still hold it: its lease (10 s) lets it go
        deadline = time.monotonic() + 20
        while etcd_owner() is not None:
            if time.monotonic() > deadline:
                pytest.fail(f"etcd key {etcd_key!r} is held by another run: is one running?")
            time.sleep(0.5)
        yield ElectionStore(b, b.url, etcd_owner)
    else:
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=f"127.0.0.1:{b.port}")
        zk.start(timeout=10)
        path = f"/{namespace}/locks/{lock}"

        def zk_owner() -> bytes | None:
            if not zk.exists(path):
                return None
            # kazoo's lock: the contender with the lowest sequence number holds it
            children = sorted(zk.get_children(path), key=lambda n: n[-10:])
            if not children:
                return None
            data, _stat = zk.get(f"{path}/{children[0]}")
            return bytes(data)

        try:
            yield ElectionStore(b, f"{b.url}?namespace={namespace}", zk_owner)
            zk.delete(f"/{namespace}", recursive=True)
        finally:
            zk.stop()
            zk.close()
