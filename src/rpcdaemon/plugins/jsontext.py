"""JSON for what Dump prints, at any nesting depth.

The C ``json`` module recurses (about 1,000 levels, less on a deep stack) and raises
RecursionError beyond; a message nested that deep must still print. Both functions take the
fast C path and fall back to an iterative walk only when it raises RecursionError.
"""

from __future__ import annotations

import datetime
import json
from typing import Any


def json_default(value: Any) -> Any:
    """What json.dumps cannot encode: bytes as UTF-8 text, dates in ISO 8601, else str()."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` made of JSON types only (dict with str keys, list, str, int, float,
    bool, None), as ``json.loads(json.dumps(value, default=json_default))`` gives."""
    try:
        return json.loads(json.dumps(value, default=json_default))
    except RecursionError:
        return _to_jsonable(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``json.dumps(value, sort_keys=True, indent=indent, default=json_default)``, the same
    text, without a depth limit."""
    try:
        return json.dumps(value, sort_keys=True, indent=indent, default=json_default)
    except RecursionError:
        return _dumps(_to_jsonable(value), indent)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(json_default(key))


def _to_jsonable(value: Any) -> Any:
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    seen: set[int] = set()
    while stack:
        src, dst, slot = stack.pop()
        if isinstance(src, dict | list | tuple):
            if id(src) in seen:
                dst[slot] = "<cycle>"
                continue
            seen.add(id(src))
            if isinstance(src, dict):
                out: dict[str, Any] = {}
                for key, item in src.items():
                    name = _key(key)
                    out[name] = None
                    stack.append((item, out, name))
                dst[slot] = out
            else:
                items: list[Any] = [None] * len(src)
                stack.extend((item, items, i) for i, item in enumerate(src))
                dst[slot] = items
        elif src is None or isinstance(src, str | bool | int | float):
            dst[slot] = src
        else:
            dst[slot] = json_default(src)
    return root[0]


def _dumps(value: Any, indent: int | None) -> str:
    out: list[str] = []
    item_sep = ", " if indent is None else ","
    # each frame: [iterator of items, closing bracket, depth, first item still to come]
    stack: list[list[Any]] = []

    def newline(depth: int) -> str:
        return "" if indent is None else "\n" + " " * (indent * depth)

    def open_value(item: Any, depth: int) -> None:
        if isinstance(item, dict) and item:
            out.append("{")
            stack.append([iter(sorted(item.items())), "}", depth + 1, True])
        elif isinstance(item, list) and item:
            out.append("[")
            stack.append([iter(item), "]", depth + 1, True])
        else:
            out.append(json.dumps(item))

    open_value(value, 0)
    while stack:
        frame = stack[-1]
        try:
            item = next(frame[0])
        except StopIteration:
            stack.pop()
            out.append(newline(frame[2] - 1) + frame[1])
            continue
        if not frame[3]:
            out.append(item_sep)
        frame[3] = False
        out.append(newline(frame[2]))
        if frame[1] == "}":
            out.append(json.dumps(item[0]) + ": ")
            item = item[1]
        open_value(item, frame[2])
    return "".join(out)
