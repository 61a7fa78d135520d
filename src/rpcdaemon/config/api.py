"""One Neutron connection, one settings object: resolve the daemon-level credentials and
timeout from ``[Daemon] cloud`` / ``[Daemon] timeout`` and the planner plugins' sections.

Credentials: ``[Daemon] cloud`` (clouds.yaml) wins. Otherwise the credentials read from the
``conffile`` of [L3Agent] and [DHCPAgent] (the 2014 way); when both plugins are loaded and
both files hold credentials, they must be the same, else it is a ConfigError naming both
sections and both files. No credentials at all is representable here (``source`` "none"):
:func:`rpcdaemon.config.preflight.preflight` refuses it, so ``load`` still reads any file.

Timeout: ``[Daemon] timeout`` when set; else the ``timeout`` set in the planner sections
(they must agree); else 20 s. A ``[Daemon] timeout`` and a different plugin ``timeout`` set
at the same time is a ConfigError naming both.
"""

from __future__ import annotations

from collections.abc import Sequence

from rpcdaemon.config import options as o
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import AgentPluginSettings, KeystoneAuth, NeutronApiSettings

DEFAULT_TIMEOUT = 20.0


def describe_auth(auth: KeystoneAuth) -> str:
    """A one-line, password-free description of a credential set."""
    return f"user {auth.username!r}, project {auth.project_name!r} at {auth.auth_url}"


def _difference(a: KeystoneAuth, b: KeystoneAuth) -> str:
    fields = (
        "auth_url",
        "username",
        "password",
        "project_name",
        "user_domain_name",
        "project_domain_name",
        "region_name",
        "interface",
    )
    differ = [f for f in fields if getattr(a, f) != getattr(b, f)]
    shown = []
    for name in differ:
        if name == "password":
            shown.append("password")
        else:
            shown.append(f"{name} {getattr(a, name)!r} vs {getattr(b, name)!r}")
    return ", ".join(shown) or "credential source"


def resolve_timeout(
    *,
    path: str,
    daemon_timeout: float | None,
    plugin_timeouts: Sequence[tuple[str, float | None]],
) -> float:
    """``plugin_timeouts``: (section, explicitly set value or None) per loaded planner."""
    explicit = [(section, value) for section, value in plugin_timeouts if value is not None]
    if daemon_timeout is not None:
        for section, value in explicit:
            if value != daemon_timeout:
                raise ConfigError(
                    f"[{o.DAEMON}] timeout = {daemon_timeout:g} but [{section}] timeout = "
                    f"{value:g}: there is one Neutron connection, so one timeout; remove one "
                    "or make them equal",
                    path=path,
                    section=o.DAEMON,
                    option="timeout",
                )
        return daemon_timeout
    if len(explicit) == 2 and explicit[0][1] != explicit[1][1]:
        (s1, v1), (s2, v2) = explicit
        raise ConfigError(
            f"[{s1}] timeout = {v1:g} and [{s2}] timeout = {v2:g} differ: there is one "
            f"Neutron connection, so one timeout; set [{o.DAEMON}] timeout instead",
            path=path,
            section=s2,
            option="timeout",
        )
    return explicit[0][1] if explicit else DEFAULT_TIMEOUT


def resolve_api(
    *,
    path: str,
    cloud: str | None,
    timeout: float,
    agents: Sequence[AgentPluginSettings],
) -> NeutronApiSettings | None:
    """The one credential set for the Neutron API; None when no planner plugin is loaded."""
    if not agents:
        return None
    if cloud:
        return NeutronApiSettings(
            cloud=cloud,
            auth=None,
            source=f"[{o.DAEMON}] cloud = {cloud} (clouds.yaml)",
            timeout=timeout,
        )
    found = [a for a in agents if a.neutron.auth is not None]
    if not found:
        return NeutronApiSettings(cloud=None, auth=None, source="none", timeout=timeout)
    first = found[0]
    first_auth = first.neutron.auth
    assert first_auth is not None
    for other in found[1:]:
        other_auth = other.neutron.auth
        assert other_auth is not None
        if other_auth != first_auth:
            raise ConfigError(
                f"[{first.name}] conffile {first.neutron.path} and [{other.name}] conffile "
                f"{other.neutron.path} hold different Neutron credentials "
                f"({_difference(first_auth, other_auth)}); rpcdaemon uses one Neutron "
                f"connection: point both at the same credentials or set [{o.DAEMON}] cloud",
                path=path,
            )
    sections = " and ".join(f"[{a.name}]" for a in found)
    files = sorted({str(a.neutron.path) for a in found})
    source = (
        f"{sections} conffile {', '.join(files)} ({first_auth.source}: {describe_auth(first_auth)})"
    )
    return NeutronApiSettings(cloud=None, auth=first_auth, source=source, timeout=timeout)
