"""Turn the ini file (2014 options and new ones) into frozen :class:`Settings`.

Every problem is a :class:`ConfigError` naming the file, the ``[section]`` and the option, in
one line. Non-fatal findings (a missing neutron.conf, ...) go to ``Settings.warnings``.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import importlib
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from rpcdaemon.config import options as o
from rpcdaemon.config.api import resolve_api, resolve_timeout
from rpcdaemon.config.convert import convert as _convert
from rpcdaemon.config.detection import detector_policy, timer_warnings
from rpcdaemon.config.neutronconf import read_neutron_conf
from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins import registry
from rpcdaemon.settings import AgentPluginSettings, DaemonSettings, DumpSettings, Settings

logger = logging.getLogger(__name__)

_DEFAULT = "DEFAULT"
_NO_DEFAULT_SECTION = "\x00rpcdaemon-no-default-section"
_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@/;]*@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def amqp_url_from_rpchost(rpchost: str) -> str:
    """``10.0.0.5`` / ``rabbit.example`` / ``host:5673`` / ``fd00::5`` -> an amqp:// URL with
    the RabbitMQ defaults (guest/guest, port 5672, vhost /). A URL (``amqp://``, ``pyamqp://``,
    ``amqps://``, ``memory://``, kombu's ``;``-separated failover list, ...) is kept as is.
    Raises ValueError for anything else."""
    text = rpchost.strip()
    if not text:
        raise ValueError("empty")
    if _SCHEME.match(text):
        for url in text.split(";"):
            _check_url(url.strip())
        return text
    host, port = text, "5672"
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(text)
        host, port = inner, rest[1:] or port
        ipaddress.IPv6Address(host)
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif text.count(":") > 1:
        ipaddress.IPv6Address(text)  # a bare IPv6 address
    if ":" in host:
        host_part = f"[{host}]"
    elif _HOST.match(host):
        host_part = host
    else:
        raise ValueError(text)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    return f"amqp://guest:guest@{host_part}:{port}//"


def _check_url(url: str) -> None:
    """A kombu URL: a known transport, balanced brackets, a port in 1..65535."""
    from kombu.transport import TRANSPORT_ALIASES

    parts = urllib.parse.urlsplit(url)  # ValueError: "Invalid IPv6 URL"
    if parts.scheme not in TRANSPORT_ALIASES:
        raise ValueError(f"unknown transport {parts.scheme!r}")
    if parts.port == 0:  # .port raises ValueError unless 0..65535
        raise ValueError("port 0")
    if parts.hostname and ":" not in parts.hostname and not _HOST.match(parts.hostname):
        raise ValueError(f"bad host {parts.hostname!r}")


def load(path: str, *, foreground: bool = False, dry_run: bool = False) -> Settings:
    """Read and validate ``path``. Raises ConfigError (one line: file, [section], option)."""
    parser = _read(path)
    sections = _check_layout(parser, path)
    warnings: list[str] = []

    def value(section: str, name: str) -> Any:
        opt = o.find(section, name)
        assert opt is not None, (section, name)
        raw = _raw(parser, section, name)
        where = section
        if raw is not None and not (
            parser.has_section(section) and parser.has_option(section, name)
        ):
            where = _DEFAULT  # the error names the section the value was written in
        return _convert(opt, opt.default if raw is None else raw, path, where)

    def is_set(section: str, name: str) -> bool:
        return _raw(parser, section, name) is not None

    plugins = _plugins(value(o.DAEMON, "plugins"), path, warnings)
    rpchost = value(o.DAEMON, "rpchost")
    try:
        amqp_url = amqp_url_from_rpchost(rpchost)
    except ValueError as exc:
        detail = f" ({exc})" if str(exc) != rpchost.strip() else ""
        shown = _PASSWORD.sub(r"\1***@", rpchost)
        raise ConfigError(
            f"{shown!r} is not an IP address, host name, HOST:PORT or kombu URL{detail}",
            path=path,
            section=o.DAEMON,
            option="rpchost",
        ) from None
    loglevel = value(o.DAEMON, "loglevel")
    if foreground and not is_set(o.DAEMON, "loglevel"):
        loglevel = "DEBUG"
    daemon = DaemonSettings(
        plugins=plugins,
        rpchost=rpchost,
        amqp_url=amqp_url,
        pidfile=value(o.DAEMON, "pidfile"),
        logfile=value(o.DAEMON, "logfile"),
        loglevel=loglevel,
        log_format=value(o.DAEMON, "log_format"),
        check_interval=value(o.DAEMON, "check_interval"),
        cloud=value(o.DAEMON, "cloud"),
        dry_run=dry_run or value(o.DAEMON, "dry_run"),
        max_concurrency=value(o.DAEMON, "max_concurrency"),
        resync_interval=value(o.DAEMON, "resync_interval"),
        full_resync_interval=value(o.DAEMON, "full_resync_interval"),
        metrics_address=value(o.DAEMON, "metrics_address"),
        coordination_url=value(o.DAEMON, "coordination_url"),
        pause_file=value(o.DAEMON, "pause_file"),
        reconnect_max_backoff=value(o.DAEMON, "reconnect_max_backoff"),
        prefetch=value(o.DAEMON, "prefetch"),
        detection=detector_policy(value),
        foreground=foreground,
    )
    dump_filter = value(o.DUMP, "filter")
    if dump_filter is not None:
        check_filter(dump_filter, path=path)
    l3 = _agent(o.L3, value, path, warnings) if o.L3 in plugins else None
    dhcp = _agent(o.DHCP, value, path, warnings) if o.DHCP in plugins else None
    dump = None
    if o.DUMP in plugins:
        dump = DumpSettings(
            loglevel=value(o.DUMP, "loglevel"),
            queue=value(o.DUMP, "queue"),
            routing_key=value(o.DUMP, "routing_key"),
            filter=dump_filter,
            output=value(o.DUMP, "output"),
            redact=value(o.DUMP, "redact"),
            queue_expire=value(o.DUMP, "queue_expire"),
        )
    for name in sections:
        if name not in o.SECTIONS and name != _DEFAULT:
            warnings.append(f"{path}: [{name}] is a third-party plugin's section: not checked")
    if daemon.cloud is None:
        for agent in (l3, dhcp):
            if agent is None or agent.neutron.auth is not None or agent.neutron.path is None:
                continue
            said = any(f"[{agent.name}] conffile" in line for line in warnings)
            if not said:
                warnings.append(
                    f"{path}: [{agent.name}] has no Neutron credentials: neither [Daemon] cloud "
                    "nor usable credentials in its conffile; it cannot start until one is set"
                )
    planners = [agent for agent in (l3, dhcp) if agent is not None]
    timeout = resolve_timeout(
        path=path,
        daemon_timeout=value(o.DAEMON, "timeout"),
        plugin_timeouts=[
            (a.name, a.timeout if is_set(a.name, "timeout") else None) for a in planners
        ],
    )
    l3 = dataclasses.replace(l3, timeout=timeout) if l3 is not None else None
    dhcp = dataclasses.replace(dhcp, timeout=timeout) if dhcp is not None else None
    api = resolve_api(path=path, cloud=daemon.cloud, timeout=timeout, agents=planners)
    down_written_in = {
        a.name: where
        for a in planners
        if (where := _written_in(parser, a.name, "agent_down_time")) is not None
        and value(a.name, "agent_down_time") is not None
    }
    warnings += timer_warnings(path, daemon.detection, planners, down_written_in=down_written_in)
    return Settings(
        path=path,
        daemon=daemon,
        l3=l3,
        dhcp=dhcp,
        dump=dump,
        api=api,
        warnings=tuple(warnings),
    )


def check_filter(text: str, *, path: str | None) -> None:
    """Validate a [Dump] filter with the Dump plugin's compiler (skipped if it is absent)."""
    try:
        dump_module = importlib.import_module("rpcdaemon.plugins.dump")
    except ImportError:
        logger.debug("rpcdaemon.plugins.dump is not importable: [Dump] filter not validated")
        return
    try:
        dump_module.compile_filter(text)
    except ValueError as exc:
        message = " ".join(str(exc).split()) or "invalid expression"
        raise ConfigError(message, path=path, section=o.DUMP, option="filter") from exc


def _read(path: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(
        interpolation=None, strict=True, default_section=_NO_DEFAULT_SECTION
    )
    try:
        with open(path, encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError("no such file", path=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=path) from None
    except PermissionError:
        raise ConfigError("permission denied", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", path=path) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"line {exc.lineno}: an option before any [section]: {exc.line.strip()!r}", path=path
        ) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(
            f"line {exc.lineno}: section [{exc.section}] appears twice", path=path
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(
            f"line {exc.lineno}: option set twice in this section",
            path=path,
            section=exc.section,
            option=exc.option,
        ) from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise ConfigError(
            f"line {lineno}: syntax error: {line.strip()!r} (expected 'name = value')", path=path
        ) from None
    except configparser.Error as exc:
        raise ConfigError(" ".join(str(exc).split()), path=path) from None
    return parser


def _check_layout(parser: configparser.RawConfigParser, path: str) -> list[str]:
    sections = parser.sections()
    third_party = set(registry.available()) - set(o.SECTIONS)
    for section in sections:
        if section in o.SECTIONS or section in third_party:
            continue
        if section == _DEFAULT:
            for key in parser.options(section):
                if not any(o.find(s, key) for s in o.SECTIONS):
                    raise ConfigError(
                        "unknown option (it is an option of no section)",
                        path=path,
                        section=section,
                        option=key,
                    )
            continue
        hint = _did_you_mean(section, o.SECTIONS)
        raise ConfigError(
            f"unknown section{hint}; valid sections: " + ", ".join(f"[{s}]" for s in o.SECTIONS),
            path=path,
            section=section,
        )
    if o.DAEMON not in sections:
        raise ConfigError(f"no [{o.DAEMON}] section: is this an rpcdaemon config file?", path=path)
    for section in o.SECTIONS:
        if not parser.has_section(section):
            continue
        valid = [opt.name for opt in o.options_of(section)]
        for key in parser.options(section):
            if key not in valid:
                raise ConfigError(
                    f"unknown option{_did_you_mean(key, valid)}; valid options: "
                    + ", ".join(valid),
                    path=path,
                    section=section,
                    option=key,
                )
    return sections


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    folded = {c.lower(): c for c in choices}
    if word.lower() in folded:
        return f" (did you mean {folded[word.lower()]}?)"
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _written_in(parser: configparser.RawConfigParser, section: str, name: str) -> str | None:
    """The section ``name`` is written in for ``section``: itself, else [DEFAULT], else None."""
    for sect in (section, _DEFAULT):
        if parser.has_section(sect) and parser.has_option(sect, name):
            return sect
    return None


def _raw(parser: configparser.RawConfigParser, section: str, name: str) -> str | None:
    sect = _written_in(parser, section, name)
    return None if sect is None else parser.get(sect, name) or ""


def _plugins(names: tuple[str, ...], path: str, warnings: list[str]) -> tuple[str, ...]:
    valid = registry.available()
    if not names:
        raise ConfigError(
            "names no plugin; valid plugins: " + ", ".join(valid),
            path=path,
            section=o.DAEMON,
            option="plugins",
        )
    seen: list[str] = []
    for name in names:
        if name not in valid:
            raise ConfigError(
                f"unknown plugin {name!r}{_did_you_mean(name, list(valid))}; valid plugins: "
                + ", ".join(valid),
                path=path,
                section=o.DAEMON,
                option="plugins",
            )
        if name in seen:
            warnings.append(f"{path}: [{o.DAEMON}] plugins: {name} is listed twice")
            continue
        seen.append(name)
    return tuple(seen)


def _agent(
    section: str, value: Callable[[str, str], Any], path: str, warnings: list[str]
) -> AgentPluginSettings:
    conffile: str | None = value(section, "conffile")
    neutron = read_neutron_conf(conffile, section=section, settings_path=path, warnings=warnings)
    explicit_down: float | None = value(section, "agent_down_time")
    fields: Mapping[str, Any] = {}
    if section == o.L3:
        fields = {"restore_ha_redundancy": value(section, "restore_ha_redundancy")}
    else:
        fields = {"agents_per_network": value(section, "agents_per_network")}
    routing_keys: tuple[str, ...] = value(section, "routing_keys")
    if not routing_keys:
        raise ConfigError("names no routing key", path=path, section=section, option="routing_keys")
    return AgentPluginSettings(
        name=section,
        conffile=conffile,
        loglevel=value(section, "loglevel"),
        timeout=value(section, "timeout"),
        queue_expire=value(section, "queue_expire"),
        neutron=neutron,
        exchange=value(section, "exchange") or neutron.control_exchange,
        agent_down_time=explicit_down if explicit_down is not None else neutron.agent_down_time,
        routing_keys=routing_keys,
        max_dead_fraction=value(section, "max_dead_fraction"),
        max_moves_per_pass=value(section, "max_moves_per_pass"),
        confirm_with_api=value(section, "confirm_with_api"),
        notifications=value(section, "notifications"),
        notification_topic=value(section, "notification_topic"),
        **fields,
    )
