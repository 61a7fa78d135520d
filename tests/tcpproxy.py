"""A small TCP proxy for tests: forward 127.0.0.1:<port> to a target, cut and restore it.

``cut()`` closes every forwarded connection (both ends see the socket close) and refuses
new ones until ``restore()``: to the client it looks like the server went away, the way a
broker restart or a network failure looks to a kombu consumer. The listening socket stays
open, so the client keeps the same URL across the cut. One thread owns every socket.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from types import TracebackType

logger = logging.getLogger(__name__)

_CHUNK = 65536
_TICK = 0.05


class TcpProxy:
    """Forward ``listen_host:<port>`` (a free port) to ``target``. Use as a context manager."""

    def __init__(self, target: tuple[str, int], *, listen_host: str = "127.0.0.1") -> None:
        self.target = target
        self._server = socket.create_server((listen_host, 0))
        self._server.setblocking(False)
        self._lock = threading.Lock()
        self._cut = False
        self._close_requested = threading.Event()
        self._closed_all = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcpproxy", daemon=True)
        self._open = 0
        self.accepted = 0
        self.refused = 0

    @property
    def port(self) -> int:
        return int(self._server.getsockname()[1])

    def url(self, scheme: str = "amqp", userinfo: str = "guest:guest", path: str = "//") -> str:
        return f"{scheme}://{userinfo}@127.0.0.1:{self.port}{path}"

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._cut

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self, timeout: float = 5.0) -> None:
        """Close every forwarded connection, refuse new ones until :meth:`restore`."""
        with self._lock:
            self._cut = True
        self._closed_all.clear()
        self._close_requested.set()
        if not self._closed_all.wait(timeout):
            raise RuntimeError("tcpproxy: the forwarding thread did not close its connections")

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the forwarding thread ------------------------------------------------------------

    def _run(self) -> None:
        peers: dict[socket.socket, socket.socket] = {}
        with selectors.DefaultSelector() as sel:
            sel.register(self._server, selectors.EVENT_READ)
            try:
                while not self._stop.is_set():
                    if self._close_requested.is_set():
                        self._close_requested.clear()
                        count = len(peers) // 2
                        for sock in list(peers):
                            self._drop(sel, peers, sock)
                        logger.info("tcpproxy %d: cut, %d connection(s) closed", self.port, count)
                        self._closed_all.set()
                    for key, _ in sel.select(timeout=_TICK):
                        ready = key.fileobj
                        if ready is self._server:
                            self._accept(sel, peers)
                        elif isinstance(ready, socket.socket):
                            self._pump(sel, peers, ready)
            finally:
                for sock in list(peers):
                    self._drop(sel, peers, sock)

    def _accept(
        self, sel: selectors.BaseSelector, peers: dict[socket.socket, socket.socket]
    ) -> None:
        try:
            client, _ = self._server.accept()
        except BlockingIOError:
            return
        if self.is_cut:
            self.refused += 1
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError as exc:
            logger.info("tcpproxy %d: cannot reach %s: %s", self.port, self.target, exc)
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.settimeout(5)
        peers[client], peers[upstream] = upstream, client
        sel.register(client, selectors.EVENT_READ)
        sel.register(upstream, selectors.EVENT_READ)
        self.accepted += 1
        with self._lock:
            self._open = len(peers) // 2

    def _pump(
        self,
        sel: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
        sock: socket.socket,
    ) -> None:
        other = peers.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(_CHUNK)
            if not data:
                raise ConnectionResetError("closed by peer")
            other.sendall(data)
        except OSError:
            self._drop(sel, peers, sock)

    def _drop(
        self,
        sel: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
        sock: socket.socket,
    ) -> None:
        other = peers.pop(sock, None)
        pair = (sock,) if other is None else (sock, other)
        if other is not None:
            peers.pop(other, None)
        for s in pair:
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            self._open = len(peers) // 2
