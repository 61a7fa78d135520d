"""Find and load plugins by name, and call them so that one bad plugin cannot stop the rest.

Plugins are listed as entry points of the group ``rpcdaemon.plugins`` (the built-in ones in
rpcdaemon's own pyproject.toml, third-party ones in theirs). Nothing is loaded at import time:
the daemon calls :func:`load` once at startup, for the plugins the config enables. When the
distribution metadata is missing (running from a source tree that was never installed), the
built-in table below is used.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins.base import Plugin
from rpcdaemon.settings import Settings

logger = logging.getLogger(__name__)

GROUP = "rpcdaemon.plugins"
BUILTIN: dict[str, str] = {
    "L3Agent": "rpcdaemon.plugins.l3agent:L3AgentPlugin",
    "DHCPAgent": "rpcdaemon.plugins.dhcpagent:DHCPAgentPlugin",
    "Dump": "rpcdaemon.plugins.dump:DumpPlugin",
}

T = TypeVar("T")


def available() -> dict[str, str]:
    """Plugin name -> ``module:attribute``: the built-in table, then every entry point."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN and ep.value != BUILTIN[ep.name]:
            logger.warning("entry point %s = %s ignored: a built-in plugin", ep.name, ep.value)
            continue
        found.setdefault(ep.name, ep.value)
    return found


def load_class(name: str) -> type[Any]:
    """Import the plugin class registered as ``name``. Raises ConfigError."""
    table = available()
    target = table.get(name)
    if target is None:
        raise ConfigError(
            f"unknown plugin {name!r}; valid plugins: " + ", ".join(table),
            section="Daemon",
            option="plugins",
        )
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"plugin {name} ({target}) cannot be loaded: {type(exc).__name__}: {exc}",
            section="Daemon",
            option="plugins",
        ) from exc
    if not isinstance(obj, type):
        raise ConfigError(f"plugin {name} ({target}) is not a class", section="Daemon")
    return obj


def load(settings: Settings) -> tuple[Plugin, ...]:
    """Construct every enabled plugin as ``cls(settings)``, in the configured order."""
    plugins: list[Plugin] = []
    for name in settings.daemon.plugins:
        cls = load_class(name)
        try:
            plugin = cls(settings)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"plugin {name} refused its settings: {exc}", path=settings.path, section=name
            ) from exc
        if not isinstance(plugin, Plugin):
            raise ConfigError(
                f"plugin {name} ({cls.__module__}.{cls.__qualname__}) does not implement "
                "the Plugin protocol (name, bindings(), observe())",
                section="Daemon",
                option="plugins",
            )
        logger.info("loaded plugin %s (%s.%s)", name, cls.__module__, cls.__qualname__)
        plugins.append(plugin)
    return tuple(plugins)


class PluginFailures:
    """Thread-safe count of exceptions raised by plugins, per plugin name."""

    # The first few failures of a plugin are logged with a traceback; after that one line
    # per LOG_EVERY failures, so a plugin failing on every message cannot flood the log.
    LOG_FIRST = 5
    LOG_EVERY = 100

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, plugin: str) -> int:
        with self._lock:
            count = self._counts.get(plugin, 0) + 1
            self._counts[plugin] = count
            return count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


DEFAULT_FAILURES = PluginFailures()


def call_isolated(
    plugin: str,
    fn: Callable[..., T],
    *args: Any,
    failures: PluginFailures | None = None,
    **kwargs: Any,
) -> T | None:
    """Call ``fn(*args, **kwargs)`` for ``plugin``; log and count an exception, never raise it.

    Returns fn's result, or None when it raised.
    """
    try:
        return fn(*args, **kwargs)
    except Exception:
        counter = failures if failures is not None else DEFAULT_FAILURES
        count = counter.record(plugin)
        if count <= PluginFailures.LOG_FIRST:
            logger.exception("plugin %s failed in %s (failure #%d)", plugin, _name(fn), count)
        elif count % PluginFailures.LOG_EVERY == 0:
            logger.error(
                "plugin %s keeps failing in %s: %d failures so far", plugin, _name(fn), count
            )
        return None


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
