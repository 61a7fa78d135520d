"""A bounded, expiring store for records of agents Neutron does not know.

The bus is open to every service: heartbeats may come from hosts that are not Neutron agents
(forged, or a node not registered yet). :class:`Strangers` keeps their latest record so
that a node Neutron learns about a moment later is judged at once, but never more than a
limit, and never past an expiry: least recently heard first out. Every operation is O(1)
amortised. Pure: ``now`` is an argument.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Strangers(Generic[K, V]):
    """Records by key, each with an expiry; ordered by when it was last put."""

    def __init__(self) -> None:
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def put(self, key: K, value: V, *, expires_at: float) -> None:
        """Store (or refresh) ``key``; a key not held until now counts as an arrival."""
        if self._entries.pop(key, None) is None:
            self._arrivals += 1
        self._entries[key] = (value, expires_at)

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        return entry[0] if entry is not None else None

    def take_arrivals(self) -> int:
        """Keys first put (or put again after being dropped) since the last call."""
        count, self._arrivals = self._arrivals, 0
        return count

    def expire(self, now: float) -> int:
        """Drop the entries whose expiry has passed, least recently put first; stops at the
        first live one (an entry behind a longer-lived one goes when that one does).
        Returns how many were dropped."""
        dropped = 0
        while self._entries:
            key = next(iter(self._entries))
            if self._entries[key][1] >= now:
                break
            del self._entries[key]
            dropped += 1
        return dropped

    def trim(self, limit: int) -> int:
        """Drop the least recently put entries beyond ``limit``; returns how many."""
        dropped = 0
        while len(self._entries) > max(0, limit):
            self._entries.popitem(last=False)
            dropped += 1
        return dropped

    def items(self) -> Iterator[tuple[K, V]]:
        return ((key, value) for key, (value, _) in self._entries.items())
