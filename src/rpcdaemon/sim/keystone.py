"""A minimal Keystone v3: password authentication, a token with a catalog, token validation.

Enough for keystoneauth1 / openstacksdk to authenticate for real: ``GET /v3`` (version discovery),
``POST /v3/auth/tokens`` (201, ``X-Subject-Token``, a catalog whose ``network`` service points at
the simulated Neutron) and ``GET /v3/auth/tokens`` (validate ``X-Subject-Token``).
"""

from __future__ import annotations

import datetime
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

UNAUTHORIZED = {
    "error": {
        "code": 401,
        "title": "Unauthorized",
        "message": "The request you have made requires authentication.",
    }
}


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z"
    )


class Keystone:
    """Tokens for the users given (name -> password); every user is admin of project ``admin``."""

    def __init__(self, users: Mapping[str, str], *, token_ttl: float = 3600.0) -> None:
        self._users = dict(users)
        self._ttl = token_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}
        self.project_id = uuid.uuid5(uuid.NAMESPACE_URL, "rpcdaemon-sim/admin").hex
        self.user_ids = {
            name: uuid.uuid5(uuid.NAMESPACE_URL, f"rpcdaemon-sim/{name}").hex for name in users
        }

    @staticmethod
    def version(base: str) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def versions_doc(self, base: str) -> dict[str, Any]:
        return {"versions": {"values": [self.version(base)]}}

    def version_doc(self, base: str) -> dict[str, Any]:
        return {"version": self.version(base)}

    def issue(self, body: Any, *, network_url: str) -> tuple[str, dict[str, Any]] | None:
        """Password auth. Returns (token, body) or None when the credentials are wrong."""
        try:
            identity = body["auth"]["identity"]
            user = identity["password"]["user"]
            name, password = str(user["name"]), str(user["password"])
        except (KeyError, TypeError):
            return None
        if "password" not in identity.get("methods", []) or self._users.get(name) != password:
            return None
        now = time.time()
        token = secrets.token_hex(16)
        domain = {"id": "default", "name": "Default"}
        endpoints = [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{network_url}/{iface}").hex,
                "interface": iface,
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": network_url,
            }
            for iface in ("public", "internal", "admin")
        ]
        data = {
            "token": {
                "methods": ["password"],
                "user": {
                    "id": self.user_ids[name],
                    "name": name,
                    "domain": domain,
                    "password_expires_at": None,
                },
                "audit_ids": [secrets.token_urlsafe(16)],
                "expires_at": _iso(now + self._ttl),
                "issued_at": _iso(now),
                "project": {"id": self.project_id, "name": "admin", "domain": domain},
                "is_domain": False,
                "roles": [
                    {"id": uuid.uuid5(uuid.NAMESPACE_URL, r).hex, "name": r}
                    for r in ("admin", "member", "reader")
                ],
                "catalog": [
                    {
                        "id": uuid.uuid5(uuid.NAMESPACE_URL, "rpcdaemon-sim/neutron").hex,
                        "type": "network",
                        "name": "neutron",
                        "endpoints": endpoints,
                    }
                ],
            }
        }
        with self._lock:
            self._tokens[token] = (now + self._ttl, data)
        return token, data

    def check(self, token: str | None) -> dict[str, Any] | None:
        """The token's body if it is valid and unexpired."""
        if not token:
            return None
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[0] < time.time():
            return None
        return entry[1]

    def revoke_all(self) -> None:
        """Invalidate every token (clients must re-authenticate: tests the 401 path)."""
        with self._lock:
            self._tokens.clear()
