"""The only place where log handlers are configured.

Everything (rpcdaemon, kombu, openstacksdk, ...) goes to one destination: the ``[Daemon]
logfile`` when detached, stderr in the foreground (-d, dump). Levels:

* ``rpcdaemon`` (and every module logger under it) at ``[Daemon] loglevel``;
* each plugin's loggers at that plugin's ``loglevel``: ``rpcdaemon.plugins.<name>`` (the
  plugin module) and ``rpcdaemon.<name>`` (the runtime acting for it, e.g. the executor's
  ``rpcdaemon.l3agent.executor``; get one with :func:`plugin_logger`), ``<name>`` lower-case;
* chatty libraries (amqp, kombu, urllib3, keystoneauth, openstack, stevedore, tooz) at INFO
  or quieter, whatever the daemon level.

Handlers have no level of their own, so a plugin at DEBUG logs DEBUG even when the daemon
is at INFO (that is how [Dump] loglevel = DEBUG works). The file handler reopens its file
when it was moved or deleted, and on :meth:`LogHandle.reopen` (SIGHUP, for logrotate).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from rpcdaemon.core.errors import ConfigError
from rpcdaemon.settings import Settings

logger = logging.getLogger(__name__)

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s [%(threadName)s] %(message)s"
LIBRARIES: tuple[str, ...] = (
    "amqp",
    "kombu",
    "urllib3",
    "keystoneauth",
    "openstack",
    "stevedore",
    "tooz",
    "iso8601",
)
_ROOT = "rpcdaemon"


class IsoFormatter(logging.Formatter):
    """ISO 8601 local time with milliseconds and UTC offset: 2026-11-24T06:01:02.123+00:00."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created).astimezone()
        return stamp.isoformat(timespec="milliseconds")


class ReopenableFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler (reopens when the file was moved away) with an explicit reopen()."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.flush()
                self.stream.close()
            self.stream = self._open()
            self._statstream()
        finally:
            self.release()


def plugin_logger_names(plugin: str) -> tuple[str, str]:
    low = plugin.lower()
    return (f"{_ROOT}.plugins.{low}", f"{_ROOT}.{low}")


def plugin_logger(plugin: str, component: str) -> logging.Logger:
    """The logger for runtime code acting for ``plugin``: it logs at the plugin's level."""
    return logging.getLogger(f"{_ROOT}.{plugin.lower()}.{component}")


@dataclass
class LogHandle:
    handler: logging.Handler

    def reopen(self) -> None:
        """Reopen the log file (SIGHUP); a no-op for stderr."""
        if isinstance(self.handler, ReopenableFileHandler):
            self.handler.reopen()
            logger.info("log file reopened: %s", self.handler.baseFilename)


def configure(settings: Settings, *, stream: bool | None = None) -> LogHandle:
    """Install the one handler on the root logger and set the levels. ``stream`` forces
    stderr (default: stderr in the foreground, the logfile otherwise). Raises ConfigError
    when the log file cannot be opened."""
    use_stream = settings.daemon.foreground if stream is None else stream
    handler: logging.Handler
    if use_stream:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = ReopenableFileHandler(settings.daemon.logfile, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot open {settings.daemon.logfile}: {exc.strerror or exc}",
                path=settings.path,
                section="Daemon",
                option="logfile",
            ) from None
    handler.setFormatter(IsoFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    level = logging.getLevelName(settings.daemon.loglevel)
    root.setLevel(level)
    logging.getLogger(_ROOT).setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    # tooz logs a lost lock with a full traceback at WARNING, and again at ERROR on release;
    # rpcdaemon.adapters.coordination reports the step-down itself, in one line.
    logging.getLogger("tooz").setLevel(max(level, logging.CRITICAL))
    for plugin_name, plugin_level in _plugin_levels(settings).items():
        for name in plugin_logger_names(plugin_name):
            logging.getLogger(name).setLevel(plugin_level)
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    return LogHandle(handler)


def _plugin_levels(settings: Settings) -> dict[str, str]:
    levels: dict[str, str] = {}
    if settings.l3 is not None:
        levels[settings.l3.name] = settings.l3.loglevel
    if settings.dhcp is not None:
        levels[settings.dhcp.name] = settings.dhcp.loglevel
    if settings.dump is not None:
        levels["Dump"] = settings.dump.loglevel
    return levels


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None = None
    if args.exc_value is not None:
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger(_ROOT).critical("thread %s died", name, exc_info=exc_info)
