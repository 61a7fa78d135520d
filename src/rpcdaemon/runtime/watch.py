"""The threads the daemon needs, watched: a dead one is reported (/healthz) and ends the
process with a non-zero exit, rather than leaving a process that does nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable

ELECTOR_THREAD = "rpcdaemon-elector"
"""The leader elector's worker thread (``adapters/coordination.py``)."""


class ThreadWatch:
    """Threads by object, by name (started elsewhere: found once they run), and pools."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread | None] = {}
        self._pools: list[Callable[[], tuple[str, ...]]] = []

    def add(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads[thread.name] = thread

    def add_named(self, name: str) -> None:
        """A thread another module starts: watched from the first time it is seen alive."""
        with self._lock:
            self._threads.setdefault(name, None)

    def add_pool(self, dead: Callable[[], tuple[str, ...]]) -> None:
        """A pool that reports its own dead workers (the executor)."""
        with self._lock:
            self._pools.append(dead)

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._threads)

    def dead(self) -> tuple[str, ...]:
        """Watched threads that ran and ended, plus dead pool workers."""
        with self._lock:
            unseen = [n for n, t in self._threads.items() if t is None]
            if unseen:
                running = {t.name: t for t in threading.enumerate()}
                for name in unseen:
                    if name in running:
                        self._threads[name] = running[name]
            found = [n for n, t in self._threads.items() if t is not None and not t.is_alive()]
            pools = list(self._pools)
        for pool in pools:
            found.extend(pool())
        return tuple(found)
