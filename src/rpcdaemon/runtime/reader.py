"""The Neutron reads of a pass, off the reactor thread.

A snapshot is many HTTP calls of up to the API ``timeout`` each: read on the reactor
thread, it would stop the ticks (no heartbeat judged, no death declared, ``/healthz``
stale, systemd's watchdog unfed). :class:`Reads` runs one read at a time on its own
daemon thread; the reactor starts it, keeps ticking, and takes the result (a value or
the exception) on its own thread when it is done, then plans, guards and hands over.

``inline=True`` runs the read on the caller's thread at once (hand-driven tests that
step the reactor with a fake clock).

Shutdown: the thread is a daemon and nobody joins it; a read still in flight when the
daemon stops is abandoned (its result is never used), so it cannot hold the stop past
the existing grace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """A finished read: its ``kind`` and ``tag`` as started, its value or its error."""

    kind: str
    tag: str
    value: T | None
    error: BaseException | None


class Reads:
    """At most one read in flight. ``start`` and ``take`` belong to the reactor thread."""

    def __init__(self, *, on_done: Callable[[], None] = lambda: None, inline: bool = False):
        self._on_done = on_done
        self._inline = inline
        self._lock = threading.Lock()
        self._busy = False
        self._done: Done[object] | None = None
        self._kind: str | None = None

    @property
    def busy(self) -> bool:
        """A read is in flight (started, not yet taken)."""
        with self._lock:
            return self._busy and self._done is None

    @property
    def kind(self) -> str | None:
        """The kind of the read in flight (or finished and not taken)."""
        with self._lock:
            return self._kind if self._busy else None

    def start(self, kind: str, tag: str, read: Callable[[], object]) -> None:
        with self._lock:
            if self._busy:
                raise RuntimeError(f"a {self._kind} read is already in flight")
            self._busy, self._kind, self._done = True, kind, None
        if self._inline:
            self._run(kind, tag, read)
            return
        threading.Thread(
            target=self._run, args=(kind, tag, read), name=f"rpcd-read-{kind}", daemon=True
        ).start()

    def take(self) -> Done[object] | None:
        """The finished read, once (None: none finished)."""
        with self._lock:
            done, self._done = self._done, None
            if done is not None:
                self._busy, self._kind = False, None
            return done

    def _run(self, kind: str, tag: str, read: Callable[[], object]) -> None:
        try:
            done: Done[object] = Done(kind, tag, read(), None)
        except BaseException as exc:  # handed to the reactor, which logs it
            done = Done(kind, tag, None, exc)
        with self._lock:
            self._done = done
        try:
            self._on_done()
        except Exception:
            logger.exception("read hook failed")
