"""Building the openstacksdk connection for :func:`rpcdaemon.adapters.neutron.connect`:
Keystone v3 password sessions (the 2014 v2.0 URLs mapped to v3) and a connection pool
sized for the calls in flight."""

from __future__ import annotations

from typing import Any

import openstack
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import generic

from rpcdaemon import __version__
from rpcdaemon.settings import KeystoneAuth


def v3_auth_url(url: str) -> str:
    """The 2014 configs point at Keystone v2.0, which is gone: use v3 on the same server."""
    trimmed = url.rstrip("/")
    if trimmed.endswith("/v2.0"):
        return trimmed[: -len("/v2.0")] + "/v3"
    return trimmed


def session_connection(auth: KeystoneAuth, timeout: float, common: dict[str, Any]) -> Any:
    plugin = generic.Password(
        auth_url=v3_auth_url(auth.auth_url),
        username=auth.username,
        password=auth.password,
        project_name=auth.project_name,
        user_domain_name=auth.user_domain_name,
        project_domain_name=auth.project_domain_name,
    )
    sess = ks_session.Session(
        auth=plugin, timeout=timeout, app_name="rpcdaemon", app_version=__version__
    )
    extra: dict[str, Any] = {}
    if auth.region_name:
        extra["region_name"] = auth.region_name
    if auth.interface:
        extra["interface"] = auth.interface
    return openstack.connection.Connection(session=sess, **common, **extra)


def size_connection_pool(conn: Any, concurrency: int) -> None:
    """One kept-alive connection per call in flight. requests keeps 10 per host by default:
    with more concurrent calls, each extra one opens (and then drops) a new connection,
    a TLS handshake per call against a real endpoint."""
    size = max(10, concurrency)
    try:
        requests_session = conn.session.session
    except AttributeError:  # not a keystoneauth session: leave it alone
        return
    for prefix in ("https://", "http://"):
        requests_session.mount(prefix, ks_session.TCPKeepAliveAdapter(pool_maxsize=size))
