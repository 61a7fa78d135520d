"""Read what rpcdaemon needs from a plugin's ``conffile`` (neutron.conf).

neutron.conf is an oslo.config file: ``[DEFAULT]`` is an ordinary section there (its keys do
not leak into the others), values are never %-interpolated, and duplicate keys occur in the
wild (the last one wins, as in oslo.config).
"""

from __future__ import annotations

import configparser
import logging
import math
import os
from collections.abc import Callable

from rpcdaemon.config.bounds import BOUNDS
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import NEUTRON_REPORT_INTERVAL, KeystoneAuth, NeutronConf

logger = logging.getLogger(__name__)

_DEFAULT = "DEFAULT"
_AUTHTOKEN = "keystone_authtoken"
_AGENT = "agent"
_NO_DEFAULT_SECTION = "\x00rpcdaemon-no-default-section"

_Getter = Callable[[str, str], "str | None"]


def _parser() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(
        strict=False,
        allow_no_value=True,
        interpolation=None,
        default_section=_NO_DEFAULT_SECTION,
        inline_comment_prefixes=None,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser


def read_neutron_conf(
    path: str | None, *, section: str, settings_path: str, warnings: list[str]
) -> NeutronConf:
    """Parse ``path``. A missing file is not fatal (a warning is appended); a broken one is."""
    if path is None:
        return NeutronConf(path=None)
    if not os.path.exists(path):
        warnings.append(
            f"{settings_path}: [{section}] conffile: {path} does not exist; using "
            "agent_down_time 75 and exchange neutron, and no credentials from it"
        )
        return NeutronConf(path=path)
    parser = _parser()
    try:
        with open(path, encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            f"cannot read {path}: {reason}", path=settings_path, section=section, option="conffile"
        ) from exc

    def get(sect: str, key: str) -> str | None:
        if not parser.has_section(sect):
            return None
        value = parser.get(sect, key, fallback=None)
        if value is None:
            return None
        value = value.strip().strip('"').strip("'").strip()
        return value or None

    def seconds(sect: str, key: str, raw: str) -> float:
        """A number of seconds within BOUNDS[key], or a ConfigError naming the file."""
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        bound = BOUNDS[key]
        if not (math.isfinite(number) and bound.admits(number)):
            raise ConfigError(
                f"{path} [{sect}] {key} = {raw!r} is not a number of seconds {bound.text(' s')}",
                path=settings_path,
                section=section,
                option="conffile",
            )
        return number

    raw_down = get(_DEFAULT, "agent_down_time")
    down_time = 75.0 if raw_down is None else seconds(_DEFAULT, "agent_down_time", raw_down)
    found = _report_interval(parser, get)
    report_interval = NEUTRON_REPORT_INTERVAL
    if found is not None:
        report_interval = seconds(found[0], "report_interval", found[1])
    exchange = get(_DEFAULT, "control_exchange") or "neutron"
    auth = _auth(get, path=path, section=section, settings_path=settings_path, warnings=warnings)
    return NeutronConf(
        path=path,
        agent_down_time=down_time,
        control_exchange=exchange,
        auth=auth,
        report_interval=report_interval,
        agent_down_time_set=raw_down is not None,
        report_interval_set=found is not None,
    )


def _report_interval(parser: configparser.RawConfigParser, get: _Getter) -> tuple[str, str] | None:
    """(section as written, raw value) of ``[agent] report_interval``, or None when unset.

    oslo.config lower-cases group names (all but DEFAULT), so Neutron's ``AGENT`` group is
    ``[agent]``, ``[AGENT]`` or ``[Agent]``; when several are written the last one wins."""
    found = None
    for sect in parser.sections():
        if sect.lower() == _AGENT:
            raw = get(sect, "report_interval")
            if raw is not None:
                found = (sect, raw)
    return found


def _auth(
    get: _Getter, *, path: str, section: str, settings_path: str, warnings: list[str]
) -> KeystoneAuth | None:
    auth_type = get(_AUTHTOKEN, "auth_type") or get(_AUTHTOKEN, "auth_plugin")
    modern = {k: get(_AUTHTOKEN, k) for k in ("auth_url", "username", "password", "project_name")}
    if all(modern.values()) and auth_type in (None, "password", "v3password"):
        return KeystoneAuth(
            auth_url=str(modern["auth_url"]),
            username=str(modern["username"]),
            password=str(modern["password"]),
            project_name=str(modern["project_name"]),
            user_domain_name=get(_AUTHTOKEN, "user_domain_name") or "Default",
            project_domain_name=get(_AUTHTOKEN, "project_domain_name") or "Default",
            region_name=get(_AUTHTOKEN, "region_name"),
            interface=get(_AUTHTOKEN, "interface"),
            source="keystone_authtoken",
        )
    # The 2014 set: admin_user / admin_password / admin_tenant_name (+ auth_url, auth_uri, or
    # auth_protocol://auth_host:auth_port), in [keystone_authtoken] or [DEFAULT].
    for sect in (_AUTHTOKEN, _DEFAULT):
        user, password = get(sect, "admin_user"), get(sect, "admin_password")
        tenant = get(sect, "admin_tenant_name")
        url = _legacy_auth_url(get, sect)
        if user and password and tenant and url:
            return KeystoneAuth(
                auth_url=url,
                username=user,
                password=password,
                project_name=tenant,
                region_name=get(sect, "region_name") or get(_DEFAULT, "region_name"),
                source="admin_user",
            )
    if any(modern.values()) or auth_type is not None:
        missing = ", ".join(k for k, v in modern.items() if not v)
        detail = f"missing {missing}" if missing else f"auth_type {auth_type} is not password"
        warnings.append(
            f"{settings_path}: [{section}] conffile: {path} [keystone_authtoken] has no usable "
            f"password credentials ({detail}); set [Daemon] cloud to a clouds.yaml entry"
        )
    return None


def _legacy_auth_url(get: _Getter, sect: str) -> str | None:
    url = get(sect, "auth_url") or get(sect, "auth_uri")
    if url:
        return url
    host = get(sect, "auth_host")
    if not host:
        return None
    protocol = get(sect, "auth_protocol") or "http"
    port = get(sect, "auth_port") or "35357"
    return f"{protocol}://{host}:{port}/v2.0"
