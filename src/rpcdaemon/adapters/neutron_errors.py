"""How Neutron's answers map to rpcdaemon's errors (see ``rpcdaemon.adapters.neutron``)."""

from __future__ import annotations

from typing import Any

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from rpcdaemon.core.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    RpcdaemonError,
    TemporaryError,
)

# (status, NeutronError type) answers that mean the desired state already holds
ALREADY: dict[str, frozenset[tuple[int, str]]] = {
    "add_router": frozenset(),
    "remove_router": frozenset({(404, "RouterNotFound"), (404, "AgentNotFound")}),
    "add_network": frozenset({(409, "NetworkHostedByDHCPAgent")}),
    "remove_network": frozenset(
        {
            (409, "NetworkNotHostedByDhcpAgent"),
            (404, "NetworkNotFound"),
            (404, "AgentNotFound"),
        }
    ),
}


def neutron_error_type(response: Any) -> str | None:
    """``NeutronError.type`` from an error response body, if there is one."""
    try:
        body = response.json()
        kind = body["NeutronError"]["type"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return str(kind) if kind else None


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def error_for_status(
    status: int, kind: str | None, message: str, *, retry_after: float | None = None
) -> RpcdaemonError:
    if status >= 500 or status in (408, 429):
        return TemporaryError(message, delay=retry_after)
    if status == 409:
        return ConflictError(message)
    if status == 404:
        if kind is not None and kind.startswith("Invalid"):
            return PermanentError(message)
        return NotFoundError(message)
    return PermanentError(message)


def translate(exc: BaseException, op: str) -> tuple[RpcdaemonError, str]:
    """(our error, status label for metrics) for anything the SDK or keystoneauth raised."""
    if isinstance(exc, RpcdaemonError):
        return exc, "error"
    if isinstance(exc, os_exc.HttpException) and exc.status_code is not None:
        kind = neutron_error_type(exc.response)
        text = f"{op}: HTTP {exc.status_code} {kind or ''} {exc.details or ''}".strip()
        status = int(exc.status_code)
        err = error_for_status(status, kind, text, retry_after=_retry_after(exc.response))
        return err, str(status)
    if isinstance(exc, ks_exc.ConnectTimeout):
        return TemporaryError(f"{op}: timed out: {exc}"), "timeout"
    if isinstance(exc, ks_exc.ConnectionError | ks_exc.DiscoveryFailure):
        return TemporaryError(f"{op}: cannot reach the API: {exc}"), "connection"
    if isinstance(exc, ks_exc.HttpError) and exc.http_status:
        status = int(exc.http_status)
        return error_for_status(status, None, f"{op}: HTTP {status}: {exc}"), str(status)
    if isinstance(exc, ks_exc.EndpointNotFound | ks_exc.EmptyCatalog):
        return PermanentError(f"{op}: no network endpoint in the catalog: {exc}"), "error"
    return PermanentError(f"{op}: {type(exc).__name__}: {exc}"), "error"
