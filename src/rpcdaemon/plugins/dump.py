"""Dump: print bus traffic decoded, secrets redacted, optionally filtered.

Each message is turned into this view (the same fields the filter sees and the output shows):

============== ==========================================================================
``exchange``     exchange it was published to (``neutron``)
``routing_key``  routing key (``q-reports-plugin``, ``notifications.info``, ``l3_agent.net1``)
``kind``         ``rpc_call``, ``rpc_cast``, ``notification`` or ``reply``
``envelope``     oslo.messaging envelope version: ``2.0`` or ``1.0`` (bare)
``method``       RPC method (``report_state``, ``router_added_to_agent``) or null
``event_type``   notification event type (``network.delete.end``) or null
``publisher_id`` notification publisher or null
``priority``     notification priority (``INFO``) or null
``args``         RPC arguments (``args.agent_state.agent_state.host``)
``payload``      notification payload (``payload.network.id``)
``context``      the ``_context_*`` fields without the prefix (``context.request_id``)
``fields``       every other field of the message (``version``, ``_msg_id``, ``result``, ...)
``properties``   AMQP properties (``content_type``, ``expiration``, ``application_headers``)
``time``         (output only, not filterable) when Dump printed it, UTC ISO 8601
============== ==========================================================================

Secrets are redacted *before* filtering and printing (:mod:`rpcdaemon.plugins.redact`), at
any depth: every key whose name contains one of ``[Dump] redact`` (token, password, secret,
passwd, credential) or a built-in secret name (auth_token, authorization, cookie, passphrase,
private_key, ssh_key, api_key, access_key; pass, pwd, psk as a whole part of the name) shows
``"***"`` (a null stays null); inside strings, URL passwords (every host of a multi-host
``transport_url``), ``password=``/``token=``/``X-Auth-Token:`` values and ``Authorization:``
headers are masked.

``[Dump] filter`` is a JMESPath expression (https://jmespath.org) over that view; a message is
printed when the result is truthy in JMESPath's sense (not null, false, "" or an empty list or
object). Strings are in single quotes. Examples::

    method == 'report_state'
    method == 'report_state' && args.agent_state.agent_state.agent_type == 'L3 agent'
    kind == 'notification' && starts_with(event_type, 'network.')
    contains(to_string(@), 'net1')

The 2014 Python-expression filter (``message['method'] == 'report_state'``) is refused at load
time with the equivalent JMESPath shown, and so is a comparison with a double-quoted name
(``method == "report_state"``: in JMESPath that is a field, so it matched the wrong messages).

Output: ``[Dump] output`` set -> one JSON line per message appended to that file (flushed per
line; created mode 0600 whatever the umask); else in the foreground (``-d``) -> pretty JSON on
stdout; else -> this module's logger at DEBUG, as the 2014 daemon did. Any nesting depth
prints (:mod:`rpcdaemon.plugins.jsontext`).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.lexer

from rpcdaemon.core.events import BusMessage
from rpcdaemon.plugins.base import Binding
from rpcdaemon.plugins.jsontext import dumps, to_jsonable
from rpcdaemon.plugins.redact import redact
from rpcdaemon.settings import DumpSettings, Settings

logger = logging.getLogger(__name__)

VIEW_FIELDS = (
    "exchange",
    "routing_key",
    "kind",
    "envelope",
    "method",
    "event_type",
    "publisher_id",
    "priority",
    "args",
    "payload",
    "context",
    "fields",
    "properties",
)
_PROMOTED = frozenset({"method", "args", "event_type", "payload", "publisher_id", "priority"})
EXAMPLE = "method == 'report_state'"
WARN_EVERY = 60.0
OUTPUT_MODE = 0o600  # [Dump] output is created owner-only, whatever the umask


# -- the filter -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledFilter:
    """A validated JMESPath filter."""

    text: str
    expression: Any  # jmespath.parser.ParsedResult

    def matches(self, view: Mapping[str, Any]) -> bool:
        """True when the expression's result is truthy (JMESPath rules: 0 is truthy)."""
        return _truthy(self.expression.search(view))


def _truthy(value: Any) -> bool:
    return value is not None and value is not False and value not in ("", [], {})


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")
_PYTHON_SIGNS = re.compile(
    r"\b(?:message|body|msg|self|config)\s*\["
    r"|\b(?:str|len|repr|isinstance|getattr|hasattr|dict|list)\s*\("
    r"|\.get\s*\("
    r"|\s(?:in|not|and|or|is)\s"
    r"|^\s*not\s"
    r"|\b(?:True|False|None)\b"
)


def _looks_like_python(text: str) -> bool:
    return bool(_PYTHON_SIGNS.search(_QUOTED.sub("''", text)))


_SUBSCRIPT_CHAIN = re.compile(
    r"\b(?P<root>message|body|msg)?(?P<chain>(?:\s*\[\s*(?:'[^']*'|\"[^\"]*\")\s*\])+)"
)
_ONE_KEY = re.compile(r"\[\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")
_IN_STR = re.compile(
    r"(?P<needle>'[^']*'|\"[^\"]*\")\s+in\s+(?:str|repr)\s*\(\s*(?:message|body|msg)\s*\)"
)


def _key_path(keys: Sequence[str]) -> str:
    parts = list(keys)
    if parts and parts[0].startswith("_context_"):
        parts = ["context", parts[0][len("_context_") :], *parts[1:]]
    return ".".join(p if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) else f'"{p}"' for p in parts)


def _translate(text: str) -> str:
    """Best-effort JMESPath for a 2014 Python-expression filter (shown, never run as-is)."""
    out = _IN_STR.sub(lambda m: f"contains(to_string(@), '{m.group('needle')[1:-1]}')", text)

    def chain(m: re.Match[str]) -> str:
        keys = [a or b for a, b in _ONE_KEY.findall(m.group("chain"))]
        path = _key_path(keys)
        return path if m.group("root") else "." + path

    out = _SUBSCRIPT_CHAIN.sub(chain, out)
    out = re.sub(r"\.get\(\s*'([^']*)'\s*\)", r".\1", out)
    out = re.sub(r"\"([^\"]*)\"", r"'\1'", out)  # Python "x" is a string; in JMESPath 'x'
    out = re.sub(r"\band\b", "&&", out)
    out = re.sub(r"\bor\b", "||", out)
    out = re.sub(r"\bnot\s+", "!", out)
    for word, literal in (("True", "`true`"), ("False", "`false`"), ("None", "`null`")):
        out = re.sub(rf"\b{word}\b", literal, out)
    return " ".join(out.split())


def compile_filter(text: str) -> CompiledFilter:
    """Validate ``[Dump] filter``. Raises ValueError with a one-line message showing the
    JMESPath syntax for a 2014 Python-expression filter or any invalid expression."""
    fields = ", ".join(VIEW_FIELDS)
    stripped = text.strip()
    if _looks_like_python(stripped):
        suggestion = _translate(stripped)
        try:
            jmespath.compile(suggestion)
        except jmespath.exceptions.JMESPathError:
            suggestion = EXAMPLE
        raise ValueError(
            f"filter {stripped!r} is a 2014 Python-expression filter, which is no longer run; "
            f"write it in JMESPath, e.g. {suggestion} (fields: {fields})"
        )
    try:
        expression = jmespath.compile(stripped)
    except jmespath.exceptions.JMESPathError as exc:
        why = getattr(exc, "msg", None) or str(exc)
        column = getattr(exc, "lex_position", None)
        where = f" at column {column}" if isinstance(column, int) else ""
        raise ValueError(
            f"filter {stripped!r} is not a valid JMESPath expression ({' '.join(str(why).split())}"
            f"{where}); e.g. {EXAMPLE} && args.agent_state.agent_state.host == 'net1' "
            f"(fields: {fields})"
        ) from None
    quoted = _quoted_operands(stripped)
    if quoted:
        fixed = stripped
        for start, end, name in reversed(quoted):
            fixed = fixed[:start] + "'" + name.replace("'", "\\'") + "'" + fixed[end:]
        raise ValueError(
            f"filter {stripped!r} compares with a double-quoted name, which JMESPath reads as "
            f"a field, not a string (it matches the wrong messages); strings take single "
            f'quotes: {fixed} (a field whose name needs quotes: @."name")'
        )
    unknown = sorted(_functions_in(expression.parsed) - _KNOWN_FUNCTIONS)
    if unknown:
        raise ValueError(
            f"filter {stripped!r} calls unknown JMESPath function(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_KNOWN_FUNCTIONS))}; e.g. {EXAMPLE}"
        )
    return CompiledFilter(stripped, expression)


_KNOWN_FUNCTIONS = frozenset(jmespath.functions.Functions().FUNCTION_TABLE)
_COMPARATORS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
_PATH_NEXT = frozenset({"dot", "lbracket", "filter", "flatten"})
_DOUBLE_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def _quoted_operands(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of each "double-quoted" identifier that is a whole operand of a
    comparison (``method == "report_state"``): in 2014 and in Python that was a string."""
    tokens = list(jmespath.lexer.Lexer().tokenize(text))
    found: list[tuple[int, int, str]] = []
    for i, token in enumerate(tokens):
        if token["type"] != "quoted_identifier":
            continue
        before = tokens[i - 1]["type"] if i > 0 else None
        after = tokens[i + 1]["type"] if i + 1 < len(tokens) else None
        if before == "dot" or after in _PATH_NEXT:
            continue  # part of a path: a."b-c" or "b-c".d
        if before in _COMPARATORS or after in _COMPARATORS:
            match = _DOUBLE_QUOTED.match(text, token["start"])
            if match is not None:
                found.append((match.start(), match.end(), str(token["value"])))
    return found


def _functions_in(node: Any) -> set[str]:
    """Names of every function the parsed expression calls (jmespath resolves them lazily)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "function_expression" and isinstance(item.get("value"), str):
                found.add(item["value"])
            stack.extend(item.get("children") or [])
        elif isinstance(item, list):
            stack.extend(item)
    return found


# -- the view -------------------------------------------------------------------------------


def message_view(message: BusMessage) -> dict[str, Any]:
    """The dict Dump filters and prints (not yet redacted), made of JSON types only
    (AMQP timestamps and bytes in headers become strings), so every JMESPath function works."""
    view: dict[str, Any] = {
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "kind": message.kind.value,
        "envelope": message.envelope_version,
        "method": message.method,
        "event_type": message.event_type,
        "publisher_id": message.publisher_id,
        "priority": message.priority,
        "args": dict(message.args),
        "payload": message.payload,
        "context": dict(message.context),
        "fields": {k: v for k, v in message.body.items() if k not in _PROMOTED},
        "properties": dict(message.properties),
    }
    jsonable: dict[str, Any] = to_jsonable(view)
    return jsonable


# -- the plugin -----------------------------------------------------------------------------


class DumpPlugin:
    """Observer: never plans. One private queue bound to ``[Dump] queue`` / ``routing_key``."""

    name = "Dump"

    def __init__(self, settings: Settings, *, stdout: TextIO | None = None) -> None:
        self._settings: DumpSettings = settings.dump or DumpSettings()
        self._foreground = settings.daemon.foreground
        self._stdout = stdout
        self._filter = compile_filter(self._settings.filter) if self._settings.filter else None
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._warned_at: dict[str, float] = {}
        self.printed = 0

    def bindings(self) -> Sequence[Binding]:
        return (Binding(self._settings.queue, self._settings.routing_key),)

    def observe(self, message: BusMessage) -> None:
        try:
            view = redact(message_view(message), self._secret_words())
            if self._filter is not None and not self._matches(view):
                return
            self._emit(view)
        except Exception:  # observe must not raise; say so now and then
            self._warn("observe", "Dump could not print a message", exc_info=True)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- internals ---------------------------------------------------------------------------

    def _secret_words(self) -> tuple[str, ...]:
        return (*self._settings.redact, "auth_token")

    def _matches(self, view: Mapping[str, Any]) -> bool:
        assert self._filter is not None
        try:
            return self._filter.matches(view)
        except (jmespath.exceptions.JMESPathError, RecursionError) as exc:  # a null, too deep
            self._warn("filter", "Dump filter %r failed on a message: %s", self._filter.text, exc)
            return False

    def _emit(self, view: Mapping[str, Any]) -> None:
        stamped = {"time": datetime.datetime.now(datetime.UTC).isoformat(), **view}
        with self._lock:
            if self._settings.output:
                if self._file is None:
                    self._file = open_private(self._settings.output)
                line = dumps(stamped)
                self._file.write(line + "\n")
                self._file.flush()
            elif self._foreground:
                text = dumps(stamped, indent=2)
                out = self._stdout or sys.stdout
                try:
                    print(text, file=out, flush=True)
                except BrokenPipeError:
                    self._warn("stdout", "Dump cannot write to stdout (closed pipe)")
                    return
            else:
                if not logger.isEnabledFor(logging.DEBUG):
                    return
                logger.debug("%s", dumps(stamped))
            self.printed += 1

    def _warn(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        last = self._warned_at.get(key)
        if last is None or now - last >= WARN_EVERY:
            self._warned_at[key] = now
            logger.warning(msg, *args, exc_info=exc_info)


def open_private(path: str) -> TextIO:
    """Open ``path`` to append UTF-8 text, creating it mode 0600 (umask can only narrow it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(path, flags, OUTPUT_MODE)
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
