"""A small HTTP/1.1 server for /metrics and the health probes that junk cannot hurt.

One selector thread accepts connections and reads request heads without blocking; a fixed
pool of worker threads builds and writes the responses. Every limit is explicit
(:class:`HttpLimits`):

* the whole request head must arrive within ``read_timeout`` of the accept (slowloris and
  idle connections are closed, whatever they drip);
* at most ``max_connections`` connections are read at once: a new connection over the cap
  closes the oldest one still reading, so a flood of idle sockets never locks out a probe;
* at most ``max_queued`` complete requests wait for the ``workers`` threads (503 beyond);
* request line + headers are capped at ``max_head_bytes`` (431 beyond);
* only GET and HEAD on a known path (405 / 404 otherwise); one request per connection
  (``Connection: close``); no traceback ever reaches a client.

So the server holds at most ``max_connections + workers + max_queued`` client sockets.
Nothing is logged per request: drops are counted (:meth:`HttpServer.stats`) and summarised
in one warning per ``report_every`` seconds.
"""

from __future__ import annotations

import errno
import logging
import queue
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rpcdaemon.httpserver.wire import (
    HttpLimits,
    Request,
    Response,
    Route,
    head_end,
    parse_head,
    render,
    text_response,
)

logger = logging.getLogger(__name__)

_ACCEPTS_PER_WAKE = 64


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    buf: bytearray = field(default_factory=bytearray)


class HttpServer:
    """Serves ``routes`` (path -> handler) on ``address`` until :meth:`stop`."""

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, Route],
        *,
        limits: HttpLimits | None = None,
        name: str = "rpcdaemon-http",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = address
        self._routes = dict(routes)
        self._limits = limits or HttpLimits()
        self._name = name
        self._clock = clock
        self._conns: dict[int, _Conn] = {}  # insertion order = accept order = deadline order
        self._queue: queue.Queue[_Conn | None] = queue.Queue(self._limits.max_queued)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._reported: Counter[str] = Counter()
        self._next_report = 0.0
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._accept_paused_until: float | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("HttpServer not started")
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._threads = [threading.Thread(target=self._loop, name=self._name, daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"{self._name}-worker-{i}", daemon=True)
            for i in range(self._limits.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if not self._threads:
            return
        self._stopping.set()
        self._wake()
        for thread in self._threads:
            thread.join(timeout=self._limits.write_timeout + 1.0)
        self._threads = []

    def threads(self) -> tuple[threading.Thread, ...]:
        """The selector thread and the workers (to watch for liveness)."""
        return tuple(self._threads)

    def stats(self) -> dict[str, int]:
        """Counters: ``accepted``, ``code.<status>``, ``dropped.<reason>``."""
        with self._stats_lock:
            return dict(self._stats)

    def open_connections(self) -> int:
        return len(self._conns)

    # -- selector thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._turn()
            except Exception:  # keep serving: a bug here must not take the probes down
                logger.exception("HTTP server loop failed; continuing")
                time.sleep(0.1)
        self._shutdown()

    def _turn(self) -> None:
        now = self._clock()
        timeout = 0.5
        if self._conns:
            first = next(iter(self._conns.values()))
            timeout = min(timeout, max(0.0, first.deadline - now))
        if self._accept_paused_until is not None:
            timeout = min(timeout, max(0.0, self._accept_paused_until - now))
        for key, _ in self._sel.select(timeout):
            if key.data is None:
                self._accept()
            elif key.data == "wake":
                self._drain_wake()
            else:
                self._read(key.data)
        now = self._clock()
        self._expire(now)
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            assert self._listener is not None
            self._accept_paused_until = None
            self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._report(now)

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors elsewhere in the process: back off instead of spinning
                    self._count("dropped.no_fd")
                    self._sel.unregister(self._listener)
                    self._accept_paused_until = self._clock() + 0.1
                return
            self._count("accepted")
            while len(self._conns) >= self._limits.max_connections:
                self._close(next(iter(self._conns)), "evicted")
            sock.setblocking(False)
            conn = _Conn(sock, self._clock() + self._limits.read_timeout)
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _read(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        try:
            data = conn.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            self._close(fd, "reset")
            return
        if not data:
            self._close(fd, "incomplete")
            return
        conn.buf += data
        end = head_end(conn.buf)
        limit = self._limits.max_head_bytes
        if end is None and len(conn.buf) <= limit:
            return
        if end is None or end > limit:
            self._answer_now(fd, text_response(431, "request head too large"), "too_large")
            return
        self._sel.unregister(conn.sock)
        del self._conns[fd]
        try:
            self._queue.put_nowait(conn)
        except queue.Full:
            self._conns[fd] = conn  # so _answer_now finds it
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)
            self._answer_now(fd, text_response(503, "busy, retry"), "busy")

    def _answer_now(self, fd: int, response: Response, reason: str) -> None:
        """Best-effort small answer from the selector thread (never blocks), then close."""
        self._count(f"dropped.{reason}")  # counted first: the client may look at once
        self._count(f"code.{response.status}")
        try:
            self._conns[fd].sock.send(render(response))
        except OSError:
            pass
        self._close(fd, None)

    def _expire(self, now: float) -> None:
        while self._conns:
            fd, conn = next(iter(self._conns.items()))
            if conn.deadline > now:
                return
            self._close(fd, "timeout")

    def _close(self, fd: int, reason: str | None) -> None:
        if reason is not None:
            self._count(f"dropped.{reason}")
        conn = self._conns.pop(fd)
        self._sel.unregister(conn.sock)
        conn.sock.close()

    @property
    def _sel(self) -> selectors.BaseSelector:
        assert self._selector is not None
        return self._selector

    def _wake(self) -> None:
        try:
            assert self._wake_w is not None
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass

    def _report(self, now: float) -> None:
        if now < self._next_report:
            return
        self._next_report = now + self._limits.report_every
        stats = self.stats()
        dropped = {
            k.removeprefix("dropped."): v - self._reported[k]
            for k, v in stats.items()
            if k.startswith("dropped.") and k != "dropped.incomplete" and v > self._reported[k]
        }
        self._reported.update({f"dropped.{k}": v for k, v in dropped.items()})
        if dropped:
            logger.warning(
                "HTTP endpoint closed connections early (%s) in the last %gs: idle, slow or "
                "junk clients, or a connection flood; the probes keep being served",
                ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())),
                self._limits.report_every,
            )

    def _shutdown(self) -> None:
        for fd in list(self._conns):
            self._close(fd, "stopping")
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._selector is not None:
            self._selector.close()
        for _ in range(self._limits.workers):
            self._queue.put(None)

    # -- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while (conn := self._queue.get()) is not None:
            try:
                self._serve(conn)
            except Exception:  # the worker must survive anything a request does
                logger.exception("HTTP worker failed on a request; continuing")
            finally:
                conn.sock.close()

    def _serve(self, conn: _Conn) -> None:
        end = head_end(conn.buf)
        assert end is not None
        parsed = parse_head(bytes(conn.buf[:end]).rstrip(b"\r\n"))
        head_only = isinstance(parsed, Request) and parsed.method == "HEAD"
        response = parsed if isinstance(parsed, Response) else self._route(parsed)
        conn.sock.setblocking(True)
        conn.sock.settimeout(self._limits.write_timeout)
        self._count(f"code.{response.status}")
        try:
            conn.sock.sendall(render(response, head_only=head_only))
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._count("dropped.write_failed")
            return
        if len(conn.buf) > end or "content-length" in getattr(parsed, "headers", {}):
            _linger(conn.sock)

    def _route(self, request: Request) -> Response:
        route = self._routes.get(request.path)
        if route is None:
            return text_response(404, "not found; try " + ", ".join(sorted(self._routes)))
        if request.method not in ("GET", "HEAD"):
            return text_response(405, "only GET and HEAD", Allow="GET, HEAD")
        try:
            return route(request)
        except Exception:
            logger.exception("HTTP handler for %s failed", request.path)
            return text_response(500, "internal error")

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] += 1


def _linger(sock: socket.socket) -> None:
    """Read what the client still sends (briefly), so closing does not reset our answer."""
    sock.settimeout(0.2)
    try:
        for _ in range(16):
            if not sock.recv(4096):
                return
    except OSError:
        return
