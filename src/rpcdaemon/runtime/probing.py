"""Probes of agent queues, run beside the reactor (it never waits for a probe).

The detector (:mod:`rpcdaemon.core.detector`) asks for a probe when every agent of a host is
silent past its rhythm. :class:`ProbeRunner` sends the probes on its own thread through a
``probe`` function (the adapter's :meth:`rpcdaemon.adapters.probe.RpcProber.probe_outcomes`:
one RPC call per queue, and per queue ``answered``; ``silent``: unanswered while the broker
still counts a consumer on it; or ``no_consumer``, ``unroutable``, ``refused``) and hands
every result to ``on_result`` (the intake, which wakes the reactor). Requests waiting together are
sent together: two hosts dying at once cost one timeout, not two. A probe function that
raises is *our* trouble, reported as the result's ``error``: it proves nothing about the host.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from rpcdaemon.core.detection import ProbeRequest, ProbeResult

logger = logging.getLogger(__name__)

PROBER_THREAD = "rpcdaemon-prober"
MAX_WAITING = 64
"""Requests waiting beyond this are answered at once with an error (a flood of silent hosts
is a disruption: the brake holds anyway)."""

ProbeFunction = Callable[[Sequence[str], float], Mapping[str, str]]
ANSWERED = "answered"
HELD = "silent"  # unanswered, but a consumer holds the queue: a frozen or powered-off host


class ProbeRunner:
    """One thread, started on the first request; :meth:`stop` ends it."""

    def __init__(
        self,
        probe: ProbeFunction,
        *,
        timeout: float,
        on_result: Callable[[ProbeResult], None],
        clock: Callable[[], float] = time.monotonic,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._probe = probe
        self._timeout = timeout
        self._on_result = on_result
        self._clock = clock
        self._close = close
        self._queue: queue.SimpleQueue[ProbeRequest | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0  # requests submitted, result not yet handed over
        self.sent = 0  # queues probed
        self.answered = 0  # of which answered
        self.failed = 0  # probe rounds that failed on our side

    def submit(self, request: ProbeRequest) -> None:
        """Any thread: probe ``request`` soon; its result reaches ``on_result``."""
        if self._queue.qsize() >= MAX_WAITING:
            self._on_result(ProbeResult(request, frozenset(), self._clock(), "too many probes"))
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=PROBER_THREAD, daemon=True)
                self._thread.start()
            self._outstanding += 1
        self._queue.put(request)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted request has its result handed over (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def stop(self) -> None:
        self._queue.put(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self._timeout + 5)

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._round(batch)
                        return
                    batch.append(more)
                self._round(batch)
        finally:
            if self._close is not None:
                try:
                    self._close()
                except Exception:
                    logger.debug("closing the prober failed", exc_info=True)

    def _round(self, batch: list[ProbeRequest]) -> None:
        queues = sorted({q for r in batch for q in r.queues + r.control})
        error: str | None = None
        answered: frozenset[str] = frozenset()
        held: frozenset[str] = frozenset()
        try:
            replies = self._probe(queues, self._timeout)
            answered = frozenset(q for q, outcome in replies.items() if outcome == ANSWERED)
            held = frozenset(q for q, outcome in replies.items() if outcome == HELD)
        except Exception as exc:  # our trouble (broker, connection): proves nothing
            error = f"{type(exc).__name__}: {exc}"
            self.failed += 1
            logger.warning("probing %d queue(s) failed on our side: %s", len(queues), error)
        else:
            self.sent += len(queues)
            self.answered += len(answered)
            logger.info(
                "probe: %d of %d queue(s) answered; unanswered: %s",
                len(answered),
                len(queues),
                ", ".join(f"{q} ({replies.get(q, 'lost')})" for q in queues if q not in answered)
                or "none",
            )
        finished = self._clock()
        for request in batch:
            try:
                self._on_result(ProbeResult(request, answered, finished, error, held))
            except Exception:
                logger.exception("probe result observer failed")
        with self._idle:
            self._outstanding -= len(batch)
            self._idle.notify_all()
