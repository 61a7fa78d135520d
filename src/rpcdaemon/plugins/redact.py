"""Secret redaction for anything we print (Dump's output and the daemon's log): pure,
iterative (no recursion limit: any nesting depth), shape-preserving.

Two layers:

* **keys**: a mapping value whose key names a secret (``password``, ``X-Auth-Token``,
  ``Authorization``, ``private_key``, ``db_pass``, ...) becomes ``"***"``, and so does the
  second item of a ``[name, value]`` pair (headers as a list); a null stays null;
* **text**: inside every string (values, keys, log lines), the password of each
  ``scheme://user:password@host`` (every host of a multi-host ``transport_url``, passwords
  holding ``/`` or ``@``), ``key=value`` / ``key: value`` pairs whose key names a secret
  (``password=`` in a DSN, ``?token=`` in a URL, ``X-Auth-Token: ...``, ``"password": "..."``),
  ``--password value`` and the whole value of ``Authorization:`` / ``Cookie:`` become ``***``.

Key names are compared case-insensitively with separators ignored (``api_key``, ``apiKey``,
``API-KEY``); short words (``pass``, ``pwd``, ``psk``) must be a whole part of the name
(``db_pass`` yes, ``bypass``/``passive`` no). Unquoted values end at white space or
``& ; , " ' < > \\``: a secret holding one of those is masked only up to it unless quoted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# the [Dump] redact default (settings.DumpSettings.redact)
DEFAULT_SECRET_WORDS = ("token", "password", "secret", "passwd", "credential")
# always masked, whatever [Dump] redact says: substrings of the (separator-free) key name
ALWAYS_SECRET_WORDS = (
    *DEFAULT_SECRET_WORDS,
    "passphrase",
    "authorization",
    "cookie",
    "private_key",
    "ssh_key",
    "api_key",
    "access_key",
)
# whole parts of the key name only (split on separators)
SHORT_SECRET_WORDS = ("pass", "pwd", "psk")
_HEADER_WORDS = ("authorization", "cookie")  # the whole value (scheme + credentials) is secret

_SEPARATORS = re.compile(r"[^a-z0-9]+")


def _normal(text: str) -> str:
    return _SEPARATORS.sub("", text.lower())


def is_secret_key(key: str, words: Iterable[str] = ()) -> bool:
    """True when ``key`` names a secret: it contains one of ``words`` or
    :data:`ALWAYS_SECRET_WORDS` (case and separators ignored) or has a part equal to one of
    :data:`SHORT_SECRET_WORDS`."""
    return _matcher(tuple(words)).secret_key(key)


def redact(value: Any, words: Iterable[str] = DEFAULT_SECRET_WORDS) -> Any:
    """Return a copy of ``value`` (mappings become dicts, tuples lists) with every secret
    masked: keys naming a secret (``words`` plus the built-in ones) get ``"***"`` (a null
    stays null, so the shape stays visible) and secrets inside strings (keys included) are
    masked by :func:`redact_text`. Iterative: any depth works. A container met twice (a
    cycle) becomes ``"<cycle>"``."""
    return _matcher(tuple(words)).walk(value)


def redact_text(text: str, words: Iterable[str] = ()) -> str:
    """``text`` with the secrets it holds replaced by ``***`` (see the module doc)."""
    return _matcher(tuple(words)).text(text)


class _Matcher:
    def __init__(self, words: tuple[str, ...]) -> None:
        long_words = {_normal(w) for w in (*ALWAYS_SECRET_WORDS, *words)}
        self._long = tuple(sorted(w for w in long_words if w))
        self._short = frozenset(SHORT_SECRET_WORDS)
        self._kv, self._flag = _text_patterns(self._long)
        self._known: dict[str, bool] = {}

    def secret_key(self, key: str) -> bool:
        hit = self._known.get(key)
        if hit is None:
            normal = _normal(key)
            hit = any(w in normal for w in self._long) or bool(
                self._short.intersection(_SEPARATORS.split(key.lower()))
            )
            if len(self._known) < 4096:
                self._known[key] = hit
        return hit

    def _secret_pair(self, items: list[Any] | tuple[Any, ...]) -> bool:
        return (
            len(items) == 2
            and isinstance(items[0], str)
            and items[1] is not None
            and self.secret_key(items[0])
        )

    def text(self, text: str) -> str:
        if "://" in text and "@" in text:
            text = _URL.sub(_mask_url, text)
        if ":" in text or "=" in text:
            text = _HEADER.sub(_mask_value, text)
            text = self._kv.sub(_mask_value, text)
        if "--" in text:
            text = self._flag.sub(_mask_value, text)
        return text

    def walk(self, value: Any) -> Any:
        root: list[Any] = [None]
        stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
        seen: set[int] = set()
        while stack:
            src, dst, slot = stack.pop()
            if isinstance(src, str):
                dst[slot] = self.text(src)
            elif isinstance(src, Mapping | list | tuple):
                if id(src) in seen:
                    dst[slot] = "<cycle>"
                    continue
                seen.add(id(src))
                if isinstance(src, Mapping):
                    out: dict[str, Any] = {}
                    for key, item in src.items():
                        name = str(key)
                        shown = self.text(name)
                        if item is not None and self.secret_key(name):
                            out[shown] = MASK
                        else:
                            out[shown] = None
                            stack.append((item, out, shown))
                    dst[slot] = out
                else:
                    items: list[Any] = [None] * len(src)
                    stack.extend((item, items, i) for i, item in enumerate(src))
                    if self._secret_pair(src):  # ["Authorization", "Bearer ..."]
                        stack.pop()
                        items[1] = MASK
                    dst[slot] = items
            else:
                dst[slot] = src
        return root[0]


@functools.lru_cache(maxsize=32)
def _matcher(words: tuple[str, ...]) -> _Matcher:
    return _Matcher(words)


# -- text patterns --------------------------------------------------------------------------

# scheme://<rest up to white space or a quote>; user:password@ is found in _mask_url
_URL = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*+://)(?P<rest>[^\s\"'<>`]++)"
)
_QUOTED = (  # the closing quote may be missing (a line cut short): mask to the line's end
    r"(?P<dq>\")(?P<dv>(?:[^\"\\\n]|\\.)*+)\"?"
    r"|(?P<sq>')(?P<sv>(?:[^'\\\n]|\\.)*+)'?"
    r"|(?P<eq>\\+\")(?P<ev>(?:[^\"\\\n]|\\++(?!\"))*+)(?:\\+\")?"
)
_BARE = r"(?P<bv>[^\s&;,\"'<>\\]++)"
_SEP = r"(?P<kq>\\*[\"'])?(?P<sep>[ \t]*[:=][ \t]*)"
_HEADER = re.compile(
    r"(?<![\w.-])(?P<key>[\w.-]*?(?:"
    + "|".join(_HEADER_WORDS)
    + "))"
    + _SEP
    + r"(?:"
    + _QUOTED
    + r"|(?P<hv>[^\r\n\"'\\]++))",
    re.IGNORECASE,
)


def _text_patterns(words: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    loose = "|".join(
        "[_.-]?".join(re.escape(c) for c in word) for word in sorted(words, key=len, reverse=True)
    )
    short = "|".join(re.escape(w) for w in SHORT_SECRET_WORDS)
    key = rf"(?=[\w.-]*?(?:{loose}|(?<![a-z0-9])(?:{short})(?![a-z0-9])))[\w.-]++"
    kv = re.compile(
        rf"(?<![\w.-])(?P<key>{key})" + _SEP + r"(?:" + _QUOTED + "|" + _BARE + ")",
        re.IGNORECASE,
    )
    flag = re.compile(
        rf"(?<![\w-])--(?P<key>{key})(?P<sep>[ \t]+)(?:" + _QUOTED + "|" + _BARE + ")",
        re.IGNORECASE,
    )
    return kv, flag


def _mask_value(m: re.Match[str]) -> str:
    groups = m.groupdict()
    for name in ("dv", "sv", "ev", "bv", "hv"):
        if groups.get(name) is not None:
            start, end = m.span(name)
            if start == end or m.string.startswith(MASK + "@", start):
                return m.group(0)  # empty, or the user:***@host of a URL, already masked
            whole = m.start(0)
            text = m.group(0)
            return text[: start - whole] + MASK + text[end - whole :]
    return m.group(0)


def _mask_url(m: re.Match[str]) -> str:
    """Mask the password of every ``user:password@host`` of the authority. The authority
    runs to the first ``/ ? #`` after the last ``@`` (a password may hold ``/`` or ``@``);
    hosts are separated by commas, and a comma-separated piece with no ``@`` before one that
    has it is taken as part of that one's user info. When some hosts have a password and
    some only a user, a password may hold ``@,``: everything from the first ``:`` to the
    last ``@`` is masked (over-masking rather than leaking)."""
    rest = m.group("rest")
    last_at = rest.rfind("@")
    if last_at < 0:
        return m.group(0)
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop, last_at)
        if 0 <= found < end:
            end = found
    out: list[str] = []
    pending: list[str] = []
    with_password = without = 0
    for piece in rest[:end].split(","):
        pending.append(piece)
        if "@" not in piece:
            continue
        group = ",".join(pending)
        pending = []
        at = group.rfind("@")
        colon = group.find(":", 0, at)
        if colon < 0:
            without += 1
            out.append(group)
        else:
            with_password += 1
            out.append(group[: colon + 1] + MASK + group[at:])
    if with_password and without:  # "u:p1@h1,u@h2" or a password holding "@,": ambiguous
        colon = rest.find(":", 0, last_at)
        return m.group("head") + rest[: colon + 1] + MASK + rest[last_at:]
    out.extend(pending)
    return m.group("head") + ",".join(out) + rest[end:]
