"""Check loaded settings against the machine, the way the daemon will use them.

``rpcdaemon check-config`` and ``rpcdaemon run`` both call :func:`preflight` after
:func:`rpcdaemon.config.load`, so a file that passes ``check-config`` is one the daemon can
start with, and both report a problem with the same line (exit 2). It reads clouds.yaml,
resolves names, constructs (never starts) the tooz driver, and binds the metrics port for an
instant. It never contacts Neutron, RabbitMQ or the coordination backend: whether they are
up is a run-time matter the daemon retries.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import urllib.parse

from rpcdaemon.config import options as o
from rpcdaemon.core.addresses import parse_address
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins import registry
from rpcdaemon.settings import Settings

logger = logging.getLogger(__name__)

# errnos of a failed bind() that the operator fixes in the config (not a daemon bug)
_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@/;]*@")
BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def preflight(settings: Settings, *, checking: bool = False) -> list[str]:
    """Raise ConfigError (one line: file, [section], option) when the daemon could not work;
    returns warnings. ``checking`` (``check-config``): a metrics port in use is a warning,
    not an error, since on a host where the daemon runs it is the daemon that holds it."""
    warnings: list[str] = []
    for name in settings.daemon.plugins:
        try:
            registry.load_class(name)  # what `run` imports before detaching
        except ConfigError as exc:
            raise ConfigError(
                exc.message, path=settings.path, section=o.DAEMON, option="plugins"
            ) from None
    if settings.dump is not None and settings.dump.output:
        check_output(settings.path, settings.dump.output)
    if settings.api is None:
        return warnings  # no planner: no Neutron API, no leader election, no metrics server
    check_credentials(settings)
    if settings.api.cloud:
        check_cloud(settings.path, settings.api.cloud)
    if settings.daemon.coordination_url:
        check_coordination_url(settings.path, settings.daemon.coordination_url)
    if settings.daemon.metrics_address:
        try:
            check_metrics_address(settings.path, settings.daemon.metrics_address)
        except ConfigError as exc:
            if not (checking and "in use" in exc.message):
                raise
            warnings.append(
                f"metrics_address {settings.daemon.metrics_address}: the port is in use "
                "(by the running daemon?): a second daemon here could not listen on it"
            )
    return warnings


def detached_warnings(settings: Settings) -> list[str]:
    """Problems only a detached daemon meets (with -d there is no pid file nor log file):
    warnings for ``check-config``; ``run`` reports them as errors when it meets them."""
    found = []
    for option, file in (
        ("pidfile", settings.daemon.pidfile),
        ("logfile", settings.daemon.logfile),
    ):
        folder = os.path.dirname(file) or "."
        if not os.path.isdir(folder):
            why = f"{folder} does not exist"
        elif not os.access(folder, os.W_OK) and not os.access(file, os.W_OK):
            why = f"{folder} is not writable"
        else:
            continue
        found.append(
            f"{settings.path}: [{o.DAEMON}] {option}: {why}: the daemon can only run with -d"
        )
    return found


def check_output(path: str, output: str) -> None:
    """[Dump] output: the file, or else its directory, is writable by us."""
    target = output if os.path.exists(output) else (os.path.dirname(output) or ".")
    if os.path.isdir(output) or not os.access(target, os.W_OK):
        why = "is a directory" if os.path.isdir(output) else f"{target} is not writable"
        if not os.path.exists(target):
            why = f"{target} does not exist"
        raise ConfigError(f"{output}: {why}", path=path, section=o.DUMP, option="output")


def check_credentials(settings: Settings) -> None:
    api = settings.api
    if api is None or api.cloud or api.auth is not None:
        return
    files = [
        f"[{a.name}] conffile {a.neutron.path or '(unset)'}"
        for a in (settings.l3, settings.dhcp)
        if a is not None
    ]
    raise ConfigError(
        "no Neutron API credentials: set cloud = NAME (a clouds.yaml entry), or point "
        f"{' and '.join(files)} at a neutron.conf with [keystone_authtoken] credentials",
        path=settings.path,
        section=o.DAEMON,
        option="cloud",
    )


def check_cloud(path: str, cloud: str) -> None:
    """The clouds.yaml entry exists and names an auth method (no connection is made)."""
    import openstack.config
    from openstack import exceptions as os_exc

    try:
        openstack.config.OpenStackConfig().get_one(cloud=cloud)
    except os_exc.ConfigException as exc:
        raise ConfigError(
            f"clouds.yaml: {' '.join(str(exc).split()) or f'cloud {cloud!r} not found'}",
            path=path,
            section=o.DAEMON,
            option="cloud",
        ) from None
    except Exception as exc:  # a broken clouds.yaml raises whatever its parser raises
        raise ConfigError(
            f"cloud {cloud!r}: cannot read clouds.yaml: {' '.join(str(exc).split())}",
            path=path,
            section=o.DAEMON,
            option="cloud",
        ) from None


def check_coordination_url(path: str, url: str) -> None:
    """The URL parses and names an installed tooz driver whose requirements are installed."""

    def bad(why: str) -> ConfigError:
        shown = _PASSWORD.sub(r"\1***@", url)
        return ConfigError(
            f"{shown!r}: {why}", path=path, section=o.DAEMON, option="coordination_url"
        )

    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # ValueError when not an integer in 0..65535
    except ValueError as exc:
        raise bad(f"not a URL ({exc})") from None
    if not parts.scheme:
        raise bad("not a URL: expected e.g. redis://HOST:6379 or zookeeper://HOST:2181")
    drivers = tooz_drivers()
    if parts.scheme not in drivers:
        raise bad(f"no tooz driver {parts.scheme!r}; installed: {', '.join(drivers)}")
    from tooz import coordination

    try:
        coordination.get_coordinator(url, b"rpcdaemon-check-config")
    except Exception as exc:  # tooz raises ImportError, ValueError, its own errors
        raise bad(f"the {parts.scheme} driver refuses it: {' '.join(str(exc).split())}") from None


def tooz_drivers() -> list[str]:
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group="tooz.backends")})


def bind_error(path: str, address: str, exc: OSError) -> ConfigError:
    """The one line for a metrics address we cannot listen on (preflight and run alike)."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the host ({reason})"
    return ConfigError(
        f"cannot listen on {address}: {reason}",
        path=path,
        section=o.DAEMON,
        option="metrics_address",
    )


def check_metrics_address(path: str, address: str) -> None:
    """Resolve the host and bind the port for an instant, as the metrics server will."""
    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc), path=path, section=o.DAEMON, option="metrics_address") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise bind_error(path, address, exc) from None
