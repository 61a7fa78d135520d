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
when it was moved or deleted, and on :meth:`LogHandle.reopen` (SIGHUP, for logrotate); it
creates the file mode 0640 whatever the umask.

Every record is made safe before it is written (:class:`SafeFormatter`): control characters,
ANSI escapes, line/paragraph separators, bidi overrides and lone surrogates are escaped
(``\\n``, ``\\x1b``, ``\\ud800``), so one record is one line and a host name cannot forge a
line; secrets in the text are masked (:func:`rpcdaemon.plugins.redact.redact_text`); a
traceback keeps its first :data:`HEAD_FRAMES` and last :data:`TAIL_FRAMES` frames with a
"N frames omitted" line between, and at most :data:`MAX_CHAIN` chained exceptions.

``[Daemon] log_format = json`` writes one JSON object a line: ``ts``, ``level``, ``logger``,
``message``, ``pid``, ``thread``, ``traceback`` when there is one, and the action fields
(:data:`ACTION_FIELDS`, see :func:`action_fields`) when the call passed them in ``extra``.
On stderr under systemd (``JOURNAL_STREAM`` names stderr), every line starts with the
sd-daemon(3) priority ``<N>`` so journald files it at the record's level.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from rpcdaemon.core.errors import ConfigError
from rpcdaemon.plugins.redact import redact_text
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
LOG_FORMATS = ("text", "json")
LOG_MODE = 0o640  # the log file is created rw-r----- whatever the umask
HEAD_FRAMES = 5
TAIL_FRAMES = 15
MAX_CHAIN = 5
MAX_EXCEPTION_CHARS = 4096
MAX_MESSAGE_CHARS = 1_048_576
ACTION_FIELDS = ("plugin", "action", "resource", "agent", "reason", "outcome")
# sd-daemon(3) priorities
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}


def action_fields(
    plugin: str,
    action: str,
    resource: str,
    agent: str | None,
    reason: str,
    outcome: str | None = None,
) -> dict[str, str | None]:
    """The ``extra`` of a log call that records an action, e.g.
    ``logger.info("moving %s", r, extra=action_fields("L3Agent", "add_router", r, a, why))``:
    JSON logs carry them as fields (text logs show the message only). ``outcome`` (ok,
    already, failed, skipped) is left out when None."""
    fields: dict[str, str | None] = {
        "plugin": plugin,
        "action": action,
        "resource": resource,
        "agent": agent,
        "reason": reason,
    }
    if outcome is not None:
        fields["outcome"] = outcome
    return fields


# -- making a record safe -------------------------------------------------------------------

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    char = m.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitize(text: str) -> str:
    """``text`` on one printable line: control characters (newlines, ANSI escapes), line and
    paragraph separators, bidi overrides and lone surrogates become backslash escapes."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def clean(text: str) -> str:
    """Redacted, capped at :data:`MAX_MESSAGE_CHARS`, sanitized."""
    text = redact_text(text)
    if len(text) > MAX_MESSAGE_CHARS:
        cut = len(text) - MAX_MESSAGE_CHARS
        text = f"{text[:MAX_MESSAGE_CHARS]}...[{cut} characters cut]"
    return sanitize(text)


_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, multi-line like Python's, but bounded: per exception the
    first HEAD_FRAMES and last TAIL_FRAMES frames, at most MAX_CHAIN chained exceptions, the
    exception's text redacted, cut at MAX_EXCEPTION_CHARS and on one line."""
    chain: list[tuple[traceback.TracebackException, str]] = []
    current: traceback.TracebackException | None = traceback.TracebackException.from_exception(
        exc, lookup_lines=True
    )
    link = ""
    while current is not None and len(chain) < MAX_CHAIN:
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    lines: list[str] = []
    if current is not None:
        lines.append(f"[{MAX_CHAIN}+ chained exceptions: the oldest ones omitted]")
    for te, link_text in reversed(chain):
        frames = list(te.stack)
        if frames:
            lines.append("Traceback (most recent call last):")
            lines.extend(_frames(frames))
        what = "".join(te.format_exception_only()).rstrip("\n")
        if len(what) > MAX_EXCEPTION_CHARS:
            what = f"{what[:MAX_EXCEPTION_CHARS]}...[{len(what) - MAX_EXCEPTION_CHARS} cut]"
        lines.append(sanitize(redact_text(what)))
        if link_text:
            lines.extend(("", link_text, ""))
    return "\n".join(lines)


def _frames(frames: list[traceback.FrameSummary]) -> list[str]:
    omitted = len(frames) - HEAD_FRAMES - TAIL_FRAMES
    parts = [frames] if omitted <= 0 else [frames[:HEAD_FRAMES], frames[-TAIL_FRAMES:]]
    out: list[str] = []
    for i, part in enumerate(parts):
        if i:
            out.append(f"  ... {omitted} frames omitted ...")
        text = "".join(traceback.StackSummary.from_list(part).format())
        out.extend(sanitize(redact_text(x)) for x in text.rstrip("\n").split("\n"))
    return out


def _traceback_text(record: logging.LogRecord) -> str:
    parts: list[str] = []
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(format_exception(record.exc_info[1]))
    elif record.exc_text:
        parts.append("\n".join(sanitize(x) for x in record.exc_text.split("\n")[-40:]))
    if record.stack_info:
        stack = record.stack_info.split("\n")
        if len(stack) > 41:
            stack = [stack[0], f"  ... {len(stack) - 41} lines omitted ...", *stack[-40:]]
        parts.append("\n".join(sanitize(x) for x in stack))
    return "\n".join(parts)


class SafeFormatter(logging.Formatter):
    """The daemon's formatter: ``text`` (FORMAT) or ``json`` (one object a line), with
    sanitized, redacted, bounded records, and the journald ``<N>`` prefix on each line
    when ``journal`` is true. ISO 8601 local times with milliseconds and UTC offset."""

    def __init__(self, log_format: str = "text", *, journal: bool = False) -> None:
        super().__init__(FORMAT)
        self.log_format = log_format
        self.journal = journal

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created).astimezone()
        return stamp.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = clean(record.getMessage())
        except Exception as exc:  # bad %-args: say so rather than lose the record
            message = clean(f"unformattable log record {record.msg!r}: {exc}")
        trace = _traceback_text(record)
        if self.log_format == "json":
            text = self._json(record, message, trace)
        else:
            safe = logging.makeLogRecord(record.__dict__)
            safe.name, safe.threadName = sanitize(record.name), sanitize(str(record.threadName))
            safe.message, safe.asctime = message, self.formatTime(record)
            text = self._style.format(safe)
            if trace:
                text = f"{text}\n{trace}"
        if self.journal:
            prefix = f"<{_PRIORITY.get(record.levelno, 7)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        return text

    def _json(self, record: logging.LogRecord, message: str, trace: str) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": sanitize(record.name),
            "message": message,
            "pid": record.process,
            "thread": sanitize(str(record.threadName)),
        }
        fields: Mapping[str, Any] = record.__dict__
        for name in ACTION_FIELDS:
            if name in fields:
                value = fields[name]
                doc[name] = value if value is None else clean(str(value))
        if trace:
            doc["traceback"] = trace
        return json.dumps(doc, ensure_ascii=True)


class ReopenableFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler (reopens when the file was moved away) with an explicit reopen().
    It creates the file mode LOG_MODE (0640) with os.open, whatever the umask was."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, LOG_MODE)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors="backslashreplace")

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


def stderr_is_journal() -> bool:
    """True when stderr is connected to journald (systemd sets JOURNAL_STREAM=dev:inode)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure(
    settings: Settings, *, stream: bool | None = None, log_format: str | None = None
) -> LogHandle:
    """Install the one handler on the root logger and set the levels. ``stream`` forces
    stderr (default: stderr in the foreground, the logfile otherwise); ``log_format``
    overrides ``[Daemon] log_format``. Raises ConfigError when the log file cannot be
    opened or the format is unknown."""
    use_stream = settings.daemon.foreground if stream is None else stream
    fmt = log_format or str(getattr(settings.daemon, "log_format", "text"))
    if fmt not in LOG_FORMATS:
        raise ConfigError(
            f"log_format {fmt!r} is not one of {', '.join(LOG_FORMATS)}",
            path=settings.path,
            section="Daemon",
            option="log_format",
        )
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
    handler.setFormatter(SafeFormatter(fmt, journal=use_stream and stderr_is_journal()))
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
