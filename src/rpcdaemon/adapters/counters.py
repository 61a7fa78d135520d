"""Counters and a rate-limited logger for the bus consumer (thread-safe)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class CodecStats:
    """Thread-safe counters of what the consumer decoded, rejected and failed to handle.

    ``snapshot()`` keys: ``decoded``, ``handler_errors``, ``rejected`` (total) and
    ``rejected.<reason>`` for each reason seen.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoded = 0
        self._handler_errors = 0
        self._rejected: dict[str, int] = {}

    def record_decoded(self) -> None:
        with self._lock:
            self._decoded += 1

    def record_rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] = self._rejected.get(reason, 0) + 1

    def record_handler_error(self) -> None:
        with self._lock:
            self._handler_errors += 1

    @property
    def decoded(self) -> int:
        with self._lock:
            return self._decoded

    def rejected(self) -> dict[str, int]:
        """Rejections by reason."""
        with self._lock:
            return dict(self._rejected)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = {
                "decoded": self._decoded,
                "handler_errors": self._handler_errors,
                "rejected": sum(self._rejected.values()),
            }
            out.update({f"rejected.{reason}": n for reason, n in self._rejected.items()})
            return out


class RateLimitedLog:
    """At most one log line per key per ``interval`` seconds, with a count of suppressed ones."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(
        self, level: int, key: str, msg: str, *args: object, exc_info: bool = False
    ) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` ago.
        Returns whether a line was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            self._log.log(
                level,
                msg + " (%d similar suppressed)",
                *args,
                suppressed,
                exc_info=exc_info,
            )
        else:
            self._log.log(level, msg, *args, exc_info=exc_info)
        return True
