"""What differs between the tooz backends the leader election runs on.

The election (``coordination.py``) is the same on every backend; this module knows, per
backend, which driver options make the lock expire ``lease`` seconds after the last round
trip, and how to ask whether the lock is still ours.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import tooz

ZOOKEEPER_MAX_SESSION = 40.0  # 20 x tickTime (2 s): the server's default maxSessionTimeout


def backend_kind(url: str) -> str:
    """``redis``, ``etcd3``, ``zookeeper``, or the URL's scheme for other tooz backends."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme.startswith("etcd3+"):
        return "etcd3"
    if scheme in ("zookeeper", "kazoo"):
        return "zookeeper"
    return scheme


def backend_options(url: str, lease: int) -> dict[str, str]:
    """The tooz driver options that make the backend's expiry ``lease`` seconds and keep
    every client call shorter than a round (``lease / 5``), unless the URL's query sets
    them. tooz parses some of them with ``int()``: whole seconds only."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    wanted = {"lock_timeout": str(lease), "membership_timeout": str(lease)}
    kind = backend_kind(url)
    if kind == "redis":
        socket_timeout = f"{max(0.5, lease / 5.0):.3f}"
        wanted["socket_timeout"] = socket_timeout
        wanted["socket_connect_timeout"] = socket_timeout
    elif kind == "etcd3":
        wanted["timeout"] = str(max(1, lease // 5))  # each HTTP request to the gateway
    elif kind == "zookeeper":
        wanted["timeout"] = str(lease)  # the session timeout: the lock node's lifetime
    return {k: v for k, v in wanted.items() if k not in query}


def still_owner(kind: str, coord: Any, lock: Any) -> bool:
    if kind == "etcd3":
        return _etcd3_still_owner(coord, lock)
    try:
        return bool(lock.is_still_owner())
    except tooz.NotImplemented:
        return True  # this backend cannot tell: a successful heartbeat is all we have


def _etcd3_still_owner(coord: Any, lock: Any) -> bool:
    """tooz's Etcd3Lock keeps its key and token in ``_key``/``_uuid`` (base64) and has no
    ``is_still_owner()``: read the key; ours only while it holds our token."""
    key, token = getattr(lock, "_key", None), getattr(lock, "_uuid", None)
    if not isinstance(key, bytes) or not isinstance(token, str):
        raise tooz.ToozError("cannot check the etcd lock's owner with this tooz version")
    from etcd3gw import exceptions as etcd3gw_exceptions

    try:
        values = coord.client.get(key)
    except etcd3gw_exceptions.Etcd3Exception as exc:
        raise tooz.ToozError(f"etcd: {exc}") from exc
    return bool(values == [base64.b64decode(token)])


def is_client_error(exc: Exception) -> bool:
    """An error of a backend client library that tooz let through (kazoo's connection
    errors, requests' errors under etcd3gw): expected when the backend goes away."""
    root = type(exc).__module__.split(".", 1)[0]
    return root in ("kazoo", "etcd3gw", "requests", "redis", "urllib3")


def effective_expiry(url: str, lease: int) -> float:
    """How long the backend keeps the lock after its last extension: ``lease``, unless the
    URL's query sets a shorter expiry (``lock_timeout``; ZooKeeper's session ``timeout``),
    which the driver then uses. The elector must stop acting within half of *this*."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    keys = ("timeout",) if backend_kind(url) == "zookeeper" else ("lock_timeout",)
    expiry = float(lease)
    for key in keys:
        for text in query.get(key, ()):
            try:
                value = float(text)
            except ValueError:
                continue
            if value > 0:
                expiry = min(expiry, value)
    return expiry
