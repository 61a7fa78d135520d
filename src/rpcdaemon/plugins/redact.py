"""Secret redaction for anything we print: pure, recursive, shape-preserving."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
DEFAULT_SECRET_WORDS = ("token", "password", "secret", "passwd", "credential")

# user:password@ in URLs (transport_url, connection strings) inside any string value
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


def is_secret_key(key: str, words: Iterable[str]) -> bool:
    lowered = key.lower()
    return any(word and word.lower() in lowered for word in words)


def redact(value: Any, words: Iterable[str] = DEFAULT_SECRET_WORDS) -> Any:
    """Return a copy of ``value`` where every mapping key whose name contains one of ``words``
    (case-insensitive, at any depth) has its value replaced by ``"***"``. A null stays null
    (so the shape stays visible), and passwords embedded in URLs become ``***`` too."""
    words = tuple(words)
    return _redact(value, words)


def _redact(value: Any, words: tuple[str, ...]) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if item is not None and is_secret_key(name, words):
                out[name] = MASK
            else:
                out[name] = _redact(item, words)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, words) for item in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", value)
    return value
