"""A seeded, reproducible corpus of hostile bus deliveries, and real heartbeats to mix in.

``hostile(seed, count)`` yields :class:`Case` objects: the raw body, the AMQP application
headers and content properties, and the category it was drawn from. Categories:

* ``random_bytes``: 0-512 random bytes;
* ``truncated``: a real ``report_state`` envelope cut at a random byte;
* ``deep``: arrays or objects nested 33 to 200,000 deep (Python's json raises RecursionError
  past about 1,000);
* ``non_finite``: a real heartbeat with ``NaN``, ``Infinity``, ``-Infinity`` or ``1e999``
  in a number field (legal for Python's json, never sent by an agent);
* ``wrong_type``: every field of ``agent_state`` (and ``args.time``) in turn replaced by a
  value of the wrong type or size: arrays, objects, numbers where strings belong, strings
  where numbers belong, out-of-range counts, 100k-character strings; many of the values hold
  :data:`SECRET`, which must never reach a log;
* ``bad_name``: control characters, line breaks, ANSI escapes and lone surrogates in
  ``host``/``agent_type``/``availability_zone``;
* ``forged``: a well-formed heartbeat from a host Neutron does not know (unique per case);
* ``huge``: a body over the 1 MiB limit (rare: they cost broker time);
* ``compressed``: a bz2 or zlib bomb with a ``compression`` header (inflates to 64 MiB;
  kombu would inflate it before any handler runs).

Every category but ``forged`` must be rejected; ``forged`` must be accepted and kept bounded.
"""

from __future__ import annotations

import bz2
import json
import random
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rpcdaemon.sim import wire

SECRET = "hunter2-CANARY-7f3a9c"
"""Planted in wrong fields: it must never appear in any log line."""

REJECTED = (
    "random_bytes",
    "truncated",
    "deep",
    "non_finite",
    "wrong_type",
    "bad_name",
    "huge",
    "compressed",
)
ACCEPTED = ("forged",)
WEIGHTS = {
    "random_bytes": 10,
    "truncated": 10,
    "deep": 4,
    "non_finite": 10,
    "wrong_type": 25,
    "bad_name": 8,
    "forged": 33,
}
"""Relative frequency of the cheap categories; ``huge`` and ``compressed`` are added by
count (``huge=``, ``compressed=``)."""

FIELDS = ("host", "agent_type", "binary", "topic", "availability_zone", "start_flag")
COUNTS = ("networks", "routers")
WRONG_VALUES: tuple[Any, ...] = (
    [SECRET],
    {"password": SECRET},
    12345,
    -1.5,
    True,
    "x" * 100_000,
    f"{SECRET}\n",
    [[[[[[[[SECRET]]]]]]]],
)
BAD_NAMES = (
    "net1\nagent L3 agent@net2 is DOWN",
    "\x1b[31mred\x1b[0m",
    "nul\x00byte",
    "tab\there",
    "\ud800lone-surrogate",
    "bell\x07",
    "del\x7f",
    "",
    "h" * 300,
)
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")


@dataclass(frozen=True)
class Case:
    category: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = "application/json"
    content_encoding: str | None = "utf-8"
    host: str | None = None  # the forged host, for ``forged``


def agent_state(host: str, agent_type: str = "L3 agent", **config: Any) -> dict[str, Any]:
    """A well-formed agent_state like a real L3/DHCP agent's."""
    configurations: dict[str, Any] = {"routers": 0, "agent_mode": "legacy"}
    if agent_type == "DHCP agent":
        configurations = {"networks": 0, "subnets": 0, "ports": 0}
    configurations.update(config)
    return {
        "binary": "neutron-l3-agent" if agent_type == "L3 agent" else "neutron-dhcp-agent",
        "topic": "l3_agent" if agent_type == "L3 agent" else "dhcp_agent",
        "agent_type": agent_type,
        "availability_zone": "nova",
        "configurations": configurations,
        "host": host,
    }


def report_state_body(state: Mapping[str, Any], *, now: float, start_flag: bool = False) -> bytes:
    """The wire body of a ``report_state`` call, exactly as the simulator's agents send it."""
    message = wire.report_state(state, now=now, reply_q="reply_hostile", start_flag=start_flag)
    return wire.envelope(message).encode()


def _message(args: Mapping[str, Any]) -> bytes:
    message = wire.rpc_message("report_state", args, now=1_800_000_000.0, call=False)
    return json.dumps(message).encode()


def _wrong_type(rng: random.Random) -> bytes:
    state = agent_state(f"net{rng.randint(1, 3)}")
    args: dict[str, Any] = {"agent_state": {"agent_state": state}, "time": "2027-01-15T08:00:00"}
    value = rng.choice(WRONG_VALUES)
    where = rng.choice(
        [*FIELDS, *(f"configurations.{c}" for c in COUNTS), "configurations", "time", "outer"]
    )
    if where == "time":
        args["time"] = value if not isinstance(value, str) or len(value) > 64 else [value]
    elif where == "outer":
        args["agent_state"] = value
    elif where == "configurations":
        state["configurations"] = value if not isinstance(value, dict) else [value]
    elif where.startswith("configurations."):
        count = rng.choice([-1, 10**7, 2**70, 3.5, "12", True, [SECRET], {"password": SECRET}])
        state["configurations"][where.split(".", 1)[1]] = count
    elif where == "start_flag":
        state["start_flag"] = value if not isinstance(value, bool) else "true"
    else:
        state[where] = value if value != "" else 0
    return _message(args)


def _non_finite(rng: random.Random) -> bytes:
    """A real host's heartbeat (``net1``-``net3``: the rigs' agents) with a non-finite count;
    with ``start_flag`` half the time, so that the start-up grace reads ``networks``."""
    state = agent_state(f"net{rng.randint(1, 3)}", rng.choice(["L3 agent", "DHCP agent"]))
    token = rng.choice(NON_FINITE)
    key = rng.choice(["networks", "routers", "subnets", "ports", "extra"])
    marker = 424242424242
    state["configurations"][key] = marker
    start_flag = rng.random() < 0.5
    text = report_state_body(state, now=1_800_000_000.0, start_flag=start_flag).decode()
    return text.replace(str(marker), token).encode()


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([33, 40, 100, 999, 1_001, 5_000, 100_000, 200_000])
    if rng.random() < 0.5:
        return ("[" * depth + "]" * depth).encode()
    inner = json.dumps(agent_state("net1"))
    return (
        '{"method": "report_state", "args": ' + '{"a": ' * depth + inner + "}" * depth + "}"
    ).encode()


def _bad_name(rng: random.Random) -> bytes:
    state = agent_state(f"net{rng.randint(1, 3)}")
    where = rng.choice(["host", "agent_type", "availability_zone", "binary"])
    name = rng.choice(BAD_NAMES)
    state[where] = name if name or where in ("host", "agent_type") else "\n"
    return _message({"agent_state": {"agent_state": state}})


def bomb(kind: str, inflated: int = 64 * 1024 * 1024) -> tuple[bytes, str]:
    """A body that inflates to ``inflated`` bytes of JSON-ish text, and its compression type."""
    raw = b"[" + b" " * (inflated - 2) + b"]"
    if kind == "bz2":
        return bz2.compress(raw, 9), "application/x-bz2"
    return zlib.compress(raw, 9), "application/x-gzip"


def hostile(
    seed: int, count: int, *, huge: int = 0, compressed: int = 0, bomb_size: int = 64 << 20
) -> Iterator[Case]:
    """``count`` cheap cases drawn by ``WEIGHTS``, then ``huge`` and ``compressed`` ones
    spread among them; reproducible for a given ``seed``."""
    rng = random.Random(seed)
    categories = list(WEIGHTS)
    weights = [WEIGHTS[c] for c in categories]
    specials = ["huge"] * huge + ["compressed"] * compressed
    slots = set(rng.sample(range(count + len(specials)), len(specials))) if specials else set()
    bombs = [bomb("bz2", bomb_size), bomb("zlib", bomb_size)]
    truncatable = report_state_body(agent_state("net1"), now=1_800_000_000.0)
    forged = 0
    for index in range(count + len(specials)):
        if index in slots:
            kind = specials.pop()
            if kind == "huge":
                yield Case(
                    "huge", b'{"method": "report_state", "pad": "' + b"A" * (1 << 20) + b'"}'
                )
            else:
                body, compression = bombs[rng.randrange(2)]
                yield Case("compressed", body, headers={"compression": compression})
            continue
        category = rng.choices(categories, weights)[0]
        if category == "random_bytes":
            size = rng.randint(0, 512)
            yield Case(category, bytes(rng.getrandbits(8) for _ in range(size)))
        elif category == "truncated":
            yield Case(category, truncatable[: rng.randint(0, len(truncatable) - 1)])
        elif category == "deep":
            yield Case(category, _deep(rng))
        elif category == "non_finite":
            yield Case(category, _non_finite(rng))
        elif category == "wrong_type":
            yield Case(category, _wrong_type(rng))
        elif category == "bad_name":
            yield Case(category, _bad_name(rng))
        else:
            forged += 1
            host = f"forged-{seed}-{forged}-{rng.getrandbits(32):08x}"
            agent_type = rng.choice(["L3 agent", "DHCP agent"])
            body = report_state_body(agent_state(host, agent_type), now=1_800_000_000.0)
            yield Case(category, body, host=host)
