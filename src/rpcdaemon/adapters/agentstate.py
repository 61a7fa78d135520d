"""The checks a ``report_state``'s ``agent_state`` must pass to become a heartbeat. Pure.

Every field the daemon reads must have the right type and a bounded size, and every number
must be finite and in range (see :func:`check_report_state`). An answer names our field and the
JSON kind found, never the value: a password in a wrong field must not reach a log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays accepted in one message (a heartbeat has 5)."""
MAX_NAME = 255
"""Longest host, agent_type, binary, topic or availability_zone accepted (characters)."""
MAX_TIME = 64
"""Longest ``args.time`` accepted (an ISO 8601 time has 26 characters)."""
MAX_COUNT = 1_000_000
"""Largest resource count an agent may report (``configurations.networks``, ``routers``...)."""
MAX_INT = 2**63 - 1
"""Largest magnitude of any integer in an ``agent_state``."""
MAX_STATE_NODES = 4096
"""Most JSON values (objects, arrays, scalars) in one ``agent_state``."""
MAX_STATE_STRING = 65_536
"""Longest string anywhere in an ``agent_state`` (characters)."""
COUNT_KEYS = frozenset(
    {
        "networks",
        "routers",
        "subnets",
        "ports",
        "devices",
        "interfaces",
        "floating_ips",
        "ex_gw_ports",
    }
)
"""``configurations`` keys that are resource counts: ints in ``[0, MAX_COUNT]``."""


def kind_of(value: Any) -> str:
    """The JSON kind of ``value`` and its size, for a log line that must not quote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, Mapping):
        return f"an object of {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    return f"a {type(value).__name__}"


def state_of(args: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str | None]:
    """``args.agent_state.agent_state`` (every agent since Grizzly) or ``args.agent_state``."""
    outer = args.get("agent_state")
    if not isinstance(outer, Mapping):
        return None, f"agent_state is {kind_of(outer)}, not an object"
    nested = outer.get("agent_state", outer)
    if not isinstance(nested, Mapping):
        return None, f"agent_state.agent_state is {kind_of(nested)}, not an object"
    return nested, None


def _bad_name(value: Any, field: str, *, required: bool, limit: int = MAX_NAME) -> str | None:
    """Why ``value`` is not a name we can keep and log (None: fine)."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        return f"{field} is {kind_of(value)}, not a string"
    if required and not value:
        return f"{field} is empty"
    if len(value) > limit:
        return f"{field} has {len(value)} characters (limit {limit})"
    if not value.isprintable():  # control characters, lone surrogates, line breaks
        return f"{field} contains a control character or a lone surrogate"
    return None


def _bad_tree(value: Any, field: str) -> str | None:
    """A bounded walk of a JSON value: size, depth, every number finite and bounded.
    Iterative (no recursion); exact type checks first, as JSON gives exact types."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_STATE_NODES:
            return f"{field} has more than {MAX_STATE_NODES} values"
        kind = type(item)
        if kind is str:
            if len(item) > MAX_STATE_STRING:
                return f"{field} holds a string of {len(item)} characters"
        elif kind is bool or item is None:
            continue
        elif kind is int:
            if not -MAX_INT <= item <= MAX_INT:
                return f"{field} holds an integer out of range"
        elif kind is float:
            if not math.isfinite(item):
                return f"{field} holds a non-finite number"
        elif kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                return f"{field} nests deeper than {MAX_DEPTH}"
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str) or len(key) > MAX_STATE_STRING:
                        return f"{field} has a key that is not a short string"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            return _bad_scalar(item, field)
    return None


def _bad_scalar(item: Any, field: str) -> str | None:
    """A value of a type json never produces (a subclass, from a caller's Mapping)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return None if -MAX_INT <= item <= MAX_INT else f"{field} holds an integer out of range"
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{field} holds a non-finite number"
    if isinstance(item, str):
        return None if len(item) <= MAX_STATE_STRING else f"{field} holds a long string"
    return f"{field} holds {kind_of(item)}"


def check_report_state(args: Mapping[str, Any]) -> str | None:
    """Why the ``args`` of a ``report_state`` cannot be a heartbeat (None: it can).

    Every field the daemon reads must have the right type and a bounded size: ``host`` and
    ``agent_type`` non-empty printable strings (no control characters, no lone surrogates)
    of at most ``MAX_NAME`` characters; ``binary``, ``topic``, ``availability_zone`` the same
    or null; ``start_flag`` a boolean or null; ``args.time`` a string of at most ``MAX_TIME``
    characters or null; ``configurations`` an object or null whose resource counts
    (``COUNT_KEYS``) are integers in ``[0, MAX_COUNT]``; and the whole ``agent_state`` at most
    ``MAX_STATE_NODES`` values, ``MAX_DEPTH`` deep, every number finite and every integer
    within ``MAX_INT``. The answer names the field and the kind found, never the value.
    """
    state, problem = state_of(args)
    if state is None:
        return problem
    for field, required in (
        ("host", True),
        ("agent_type", True),
        ("binary", False),
        ("topic", False),
        ("availability_zone", False),
    ):
        problem = _bad_name(state.get(field), field, required=required)
        if problem is not None:
            return problem
    start_flag = state.get("start_flag")
    if start_flag is not None and not isinstance(start_flag, bool):
        return f"start_flag is {kind_of(start_flag)}, not a boolean"
    agent_time = args.get("time")
    if agent_time is not None:
        if not isinstance(agent_time, str):
            return f"time is {kind_of(agent_time)}, not a string"
        if len(agent_time) > MAX_TIME:
            return f"time has {len(agent_time)} characters (limit {MAX_TIME})"
    configurations = state.get("configurations")
    if configurations is None:
        return _bad_tree(state, "agent_state")
    if not isinstance(configurations, Mapping):
        return f"configurations is {kind_of(configurations)}, not an object"
    for key in COUNT_KEYS & configurations.keys():
        count = configurations[key]
        if isinstance(count, bool) or not isinstance(count, int):
            return f"configurations.{key} is {kind_of(count)}, not an integer"
        if not 0 <= count <= MAX_COUNT:
            return f"configurations.{key} is out of range [0, {MAX_COUNT}]"
    return _bad_tree(state, "agent_state")


__all__ = [
    "COUNT_KEYS",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NAME",
    "MAX_STATE_NODES",
    "MAX_STATE_STRING",
    "MAX_TIME",
    "check_report_state",
    "kind_of",
    "state_of",
]
