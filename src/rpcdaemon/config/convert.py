"""Turn one raw ini value into its typed value, bounded, or a one-line ConfigError."""

from __future__ import annotations

import math
import os
import re
from typing import Any

from rpcdaemon.config import options as o
from rpcdaemon.config.bounds import AMQP_NAMES, AMQP_SHORTSTR, BOUNDS, CHOICES
from rpcdaemon.core.errors import ConfigError

_NUMERIC_WORDS: dict[o.Kind, str] = {
    o.Kind.POS_FLOAT: "a number of seconds",
    o.Kind.POS_NUMBER: "a number",
    o.Kind.POS_INT: "an integer",
    o.Kind.FRACTION: "a number",
    o.Kind.COUNT_OR_ALL: '"all" or an integer',
}


def expected(opt: o.Option) -> str:
    """What a value of ``opt`` must be, with its range when it has one."""
    if opt.name in CHOICES:
        return "one of " + ", ".join(CHOICES[opt.name])
    bound = BOUNDS.get(opt.name)
    if bound is None or opt.kind not in _NUMERIC_WORDS:
        return opt.kind.expected
    unit = " s" if opt.kind is o.Kind.POS_FLOAT else ""
    return f"{_NUMERIC_WORDS[opt.kind]} {bound.text(unit)}"


_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def _number(kind: o.Kind, text: str) -> float:
    """Decimal notation only: no inf/nan, no 1_000, no hex. Raises ValueError."""
    if kind in (o.Kind.POS_INT, o.Kind.COUNT_OR_ALL):
        if not _INT.match(text):
            raise ValueError(text)
        return int(text)
    if not _FLOAT.match(text):
        raise ValueError(text)
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def convert(opt: o.Option, raw: str, path: str, section: str) -> Any:
    value = _convert_kind(opt, raw, path, section)
    if opt.name in AMQP_NAMES:
        names = value if isinstance(value, tuple) else (value,) if value else ()
        extra = len(".info") if opt.name == "notification_topic" else 0
        for name in names:
            if len(name.encode()) + extra > AMQP_SHORTSTR:
                raise ConfigError(
                    f"{name[:20]!r}... is {len(name.encode())} bytes long; an AMQP name is at "
                    f"most {AMQP_SHORTSTR - extra}",
                    path=path,
                    section=section,
                    option=opt.name,
                )
    return value


def _convert_kind(opt: o.Option, raw: str, path: str, section: str) -> Any:
    text = raw.strip()
    kind = opt.kind

    def bad() -> ConfigError:
        return ConfigError(
            f"{raw!r} is not {expected(opt)}", path=path, section=section, option=opt.name
        )

    def bounded(number: float) -> float:
        bound = BOUNDS.get(opt.name)
        ok = number > 0 if bound is None else bound.admits(number)
        if not ok:
            why = f" ({bound.why})" if bound is not None else ""
            raise ConfigError(
                f"{raw!r} is out of range: expected {expected(opt)}{why}",
                path=path,
                section=section,
                option=opt.name,
            )
        return number

    try:
        if kind in (o.Kind.OPT_STR, o.Kind.OPT_PATH) and not text:
            return None
        if kind is o.Kind.STR:
            if not text:
                raise bad()
            if opt.name in CHOICES:
                if text.lower() not in CHOICES[opt.name]:
                    raise bad()
                return text.lower()
            return text
        if kind is o.Kind.OPT_STR:
            return text
        if kind in (o.Kind.PATH, o.Kind.OPT_PATH):
            if not text:
                raise bad()
            return os.path.abspath(os.path.expanduser(text))
        if kind in (o.Kind.POS_FLOAT, o.Kind.POS_NUMBER, o.Kind.FRACTION):
            if not text and opt.default_note:
                return None  # computed elsewhere (e.g. agent_down_time from neutron.conf)
            return float(bounded(_number(kind, text)))
        if kind is o.Kind.POS_INT:
            return int(bounded(_number(kind, text)))
        if kind is o.Kind.BOOL:
            return parse_bool(text)
        if kind is o.Kind.LEVEL:
            level = text.upper()
            level = "WARNING" if level == "WARN" else level
            if level not in o.LOG_LEVELS:
                raise bad()
            return level
        if kind is o.Kind.WORDS:
            return words(text)
        if kind is o.Kind.COUNT_OR_ALL:
            if text.lower() == "all":
                return None
            return int(bounded(_number(kind, text)))
        if kind is o.Kind.HOSTPORT:
            return parse_hostport(text)
    except ValueError:
        raise bad() from None
    raise AssertionError(kind)


_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
_SPLIT = re.compile(r"[\s,]+")


def words(raw: str) -> tuple[str, ...]:
    return tuple(w for w in _SPLIT.split(raw.strip()) if w)


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(raw)


def parse_hostport(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(raw)
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(raw)
    return text
