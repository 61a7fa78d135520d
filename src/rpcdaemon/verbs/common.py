"""What every operator verb shares: the daemon's settings, the Neutron API, the running
daemon's ``/status``, the pause store, and the exit statuses.

Exit statuses of the verbs (``check`` has its own, the monitoring-plugin ones): 0 done,
1 a step failed (retry the verb), 2 usage error, unknown host, or a daemon that was asked
for and cannot be reached, 130 interrupted.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from rpcdaemon.adapters import neutron as neutron_adapter
from rpcdaemon.adapters.pausestore import PauseStore, pause_store
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.statusmodel import ClusterStatus, from_json
from rpcdaemon.core.view import ClusterView
from rpcdaemon.settings import NeutronApiSettings, Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DAEMON_TIMEOUT = 5.0


class VerbError(Exception):
    """A clear one-line error; the CLI prints it and exits with ``status`` (2 by default)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class DaemonUnreachable(VerbError):
    pass


def daemon_url(address: str) -> str:
    """``host:port`` (the daemon's metrics_address) -> the base URL to reach it locally."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise VerbError(f"daemon address {address!r}: expected HOST:PORT")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: the uid is enough
        user = "?"
    return f"{user}@{socket.gethostname()}"


@dataclass
class Context:
    """One verb's view of the world, built from ``-c FILE`` (and ``--daemon``)."""

    settings: Settings
    daemon_address: str | None = None  # overrides [Daemon] metrics_address
    _neutron: Any = field(default=None, repr=False)

    @property
    def daemon(self) -> str | None:
        address = self.daemon_address or self.settings.daemon.metrics_address
        return daemon_url(address) if address else None

    @property
    def api(self) -> NeutronApiSettings:
        if self.settings.api is None:
            raise VerbError(
                f"{self.settings.path}: no L3Agent or DHCPAgent plugin, hence no Neutron API "
                "settings: the verbs need them"
            )
        return self.settings.api

    def neutron(self) -> neutron_adapter.NeutronAdapter:
        if self._neutron is None:
            self._neutron = neutron_adapter.connect(
                self.api, concurrency=self.settings.daemon.max_concurrency
            )
        return self._neutron  # type: ignore[no-any-return]

    def pause_store(self) -> PauseStore:
        d = self.settings.daemon
        return pause_store(d.coordination_url, d.pause_file)

    @property
    def dhcp_agents_per_network(self) -> int | None:
        return self.settings.dhcp.agents_per_network if self.settings.dhcp else None

    def fetch_status(self, timeout: float = DAEMON_TIMEOUT) -> ClusterStatus:
        """The running daemon's ``/status``; raises DaemonUnreachable."""
        base = self.daemon
        if base is None:
            raise DaemonUnreachable("no daemon address: [Daemon] metrics_address is not set")
        url = f"{base}/status"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise DaemonUnreachable(f"{url} answered HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"no answer from {url}: {reason}") from exc
        try:
            return from_json(body)
        except ValueError as exc:
            raise DaemonUnreachable(f"{url}: {exc}") from exc


def api_verdicts(view: ClusterView) -> dict[AgentId, Liveness]:
    """Liveness by Neutron's ``alive`` flag (when there is no daemon to ask)."""
    return {a.id: Liveness.ALIVE if a.alive else Liveness.DEAD for a in view.agents.values()}


def status_verdicts(status: ClusterStatus) -> dict[AgentId, Liveness]:
    return {a.id: a.liveness for a in status.agents}


def check_host(view: ClusterView, host: str, types: tuple[str, ...] | None = None) -> None:
    """VerbError (exit 2) when ``host`` has no agent (of ``types``), with the known hosts."""
    wanted = types or (AgentType.L3.value, AgentType.DHCP.value)
    if any(a.host == host and a.agent_type in wanted for a in view.agents.values()):
        return
    hosts = sorted({a.host for a in view.agents.values() if a.agent_type in wanted})
    shown = ", ".join(hosts[:20]) + (" ..." if len(hosts) > 20 else "")
    raise VerbError(f"unknown host {host!r}: no {' or '.join(wanted)} there (hosts: {shown})")
