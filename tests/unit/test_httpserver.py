"""The HTTP endpoint under abuse, over real sockets: floods, slowloris, junk, half-closes.

The flood test runs the server in a child process (with a low descriptor limit) so that
/proc/<pid>/fd counts the server's descriptors only, not the test's 1,200 client sockets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcdaemon.httpserver import HttpLimits, HttpServer, Request, Response, parse_head

FAST = HttpLimits(read_timeout=1.0, write_timeout=2.0, max_connections=8, workers=2, max_queued=2)


def _ok(request: Request) -> Response:
    return Response(200, f"{request.method} {request.path} {request.query}".encode())


def _boom(request: Request) -> Response:
    raise RuntimeError("secret detail /etc/rpcdaemon.conf")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(("127.0.0.1", 0), {"/ok": _ok, "/boom": _boom}, limits=FAST)
    srv.start()
    yield srv
    srv.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _exchange(port: int, payload: bytes, *, shut_wr: bool = False) -> bytes:
    """Send ``payload``, read until the server closes; returns what came back."""
    with _connect(port) as sock:
        sock.sendall(payload)
        if shut_wr:
            sock.shutdown(socket.SHUT_WR)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def _get(port: int, path: str) -> bytes:
    return _exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def test_get_head_404_405(server: HttpServer) -> None:
    raw = _get(server.port, "/ok?x=1")
    assert _status(raw) == 200 and raw.endswith(b"\r\n\r\nGET /ok x=1")
    assert b"Connection: close" in raw and b"Content-Length: 11\r\n" in raw
    raw = _exchange(server.port, b"HEAD /ok HTTP/1.1\r\n\r\n")
    assert _status(raw) == 200 and raw.endswith(b"\r\n\r\n") and b"Content-Length: 9\r\n" in raw
    assert _status(_get(server.port, "/nope")) == 404
    raw = _exchange(server.port, b"POST /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert _status(raw) == 405 and b"Allow: GET, HEAD" in raw
    assert _status(_exchange(server.port, b"DELETE /ok HTTP/1.0\r\n\r\n")) == 405


def test_a_failing_handler_answers_500_without_details(server: HttpServer) -> None:
    raw = _get(server.port, "/boom")
    assert _status(raw) == 500
    assert b"secret" not in raw and b"Traceback" not in raw
    assert _status(_get(server.port, "/ok")) == 200  # the worker survived


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff\xfe" * 100 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\n\n",  # TLS
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /ok\r\n\r\n",  # HTTP/0.9
        b"GET  /ok HTTP/1.1\r\n\r\n",
        b"GET http://evil/ok HTTP/1.1\r\n\r\n",
        b"GET /ok HTTP/1.1\r\n folded\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET /ok HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n",
        b"\r\n\r\n",
    ],
)
def test_junk_gets_400_and_the_server_keeps_answering(server: HttpServer, junk: bytes) -> None:
    assert _status(_exchange(server.port, junk)) == 400
    assert _status(_get(server.port, "/ok")) == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=600).map(lambda b: b + b"\r\n\r\n"),
        st.text(max_size=300).map(lambda t: ("GET /ok HTTP/1.1\r\n" + t + "\r\n\r\n").encode()),
    )
)
def test_random_bytes_never_hurt_the_server(server: HttpServer, junk: bytes) -> None:
    raw = _exchange(server.port, junk)
    assert raw == b"" or _status(raw) in (200, 400, 404, 405, 431)
    assert _status(_get(server.port, "/ok")) == 200
    assert all(t.is_alive() for t in server.threads())


def test_parse_head_accepts_a_plain_request() -> None:
    req = parse_head(b"GET /metrics?a=b HTTP/1.1\r\nAccept: text/plain\r\nHost: h:1")
    assert req == Request("GET", "/metrics", "a=b", {"accept": "text/plain", "host": "h:1"})


@pytest.mark.parametrize("size", [9000, 200_000])
def test_huge_heads_get_431(server: HttpServer, size: int) -> None:
    payload = b"GET /ok HTTP/1.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with _connect(server.port) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after the first 8 KiB: also fine, as long as it answered
        raw = _read_all(sock)
    assert _status(raw) == 431
    assert server.stats()["dropped.too_large"] >= 1
    assert _status(_get(server.port, "/ok")) == 200


def test_half_closed_after_a_full_request_is_answered(server: HttpServer) -> None:
    raw = _exchange(server.port, b"GET /ok HTTP/1.1\r\n\r\n", shut_wr=True)
    assert _status(raw) == 200


def test_half_closed_mid_request_is_dropped(server: HttpServer) -> None:
    start = time.monotonic()
    assert _exchange(server.port, b"GET /ok HTTP/1.1\r\nHo", shut_wr=True) == b""
    assert time.monotonic() - start < 0.5  # closed on EOF, not on the read timeout
    assert _status(_get(server.port, "/ok")) == 200


def test_slowloris_is_closed_at_the_read_timeout(server: HttpServer) -> None:
    with _connect(server.port) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /ok HTTP/1.1\r\n")
        closed_after = None
        for i in range(40):  # one header byte every 0.1 s: never completes
            time.sleep(0.1)
            try:
                sock.sendall(b"X-%d: y\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            assert _status(_get(server.port, "/ok")) == 200  # others are served meanwhile
    assert closed_after is not None and 0.9 <= closed_after < 2.5
    assert server.stats()["dropped.timeout"] >= 1


def test_a_full_worker_queue_answers_503_at_once() -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response(200, b"slow")

    limits = HttpLimits(read_timeout=3.0, workers=1, max_queued=1)
    srv = HttpServer(("127.0.0.1", 0), {"/slow": slow}, limits=limits)
    srv.start()
    try:
        held = [_connect(srv.port) for _ in range(2)]  # one on the worker, one queued
        for sock in held:
            sock.sendall(b"GET /slow HTTP/1.1\r\n\r\n")
            time.sleep(0.1)
        start = time.monotonic()
        raw = _get(srv.port, "/slow")
        assert _status(raw) == 503 and time.monotonic() - start < 0.5
        release.set()
        assert [_status(_read_all(s)) for s in held] == [200, 200]
        for sock in held:
            sock.close()
    finally:
        release.set()
        srv.stop()


def test_over_the_connection_cap_the_oldest_idle_one_is_closed(server: HttpServer) -> None:
    idle = [_connect(server.port) for _ in range(FAST.max_connections)]
    time.sleep(0.1)
    assert _status(_get(server.port, "/ok")) == 200
    assert idle[0].recv(10) == b""  # evicted: the server closed it
    assert server.stats()["dropped.evicted"] >= 1
    assert server.open_connections() <= FAST.max_connections
    for sock in idle:
        sock.close()


def test_stop_closes_everything_and_the_threads_end() -> None:
    srv = HttpServer(("127.0.0.1", 0), {"/ok": _ok}, limits=FAST)
    srv.start()
    idle = _connect(srv.port)
    threads = srv.threads()
    assert len(threads) == 1 + FAST.workers and all(t.is_alive() for t in threads)
    srv.stop()
    assert not any(t.is_alive() for t in threads)
    assert idle.recv(10) == b""
    idle.close()


# -- a flood of idle connections against the real MetricsServer, in a child process --------

CHILD = """
import resource, sys, time
from prometheus_client import CollectorRegistry
from rpcdaemon.core.status import StatusSnapshot
from rpcdaemon.httpserver import HttpLimits
from rpcdaemon.metrics import MetricsServer, install
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
status = lambda: StatusSnapshot(bus_connected=True, last_tick_at=time.monotonic())
reg = CollectorRegistry()
install(reg, status)
srv = MetricsServer("127.0.0.1:0", reg, status, limits=HttpLimits(read_timeout=%(rt)s))
srv.start()
print(srv.port, flush=True)
sys.stdin.read()
srv.stop()
"""


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_1200_idle_connections_neither_exhaust_fds_nor_block_healthz() -> None:
    limits = HttpLimits(read_timeout=3.0)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD % {"rt": limits.read_timeout}],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    idle: list[socket.socket] = []
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        assert _status(_get(port, "/healthz")) == 200
        baseline = _fds(child.pid)
        worst_probe = 0.0
        peak = baseline
        for i in range(1200):
            idle.append(_connect(port))
            if i % 100 == 99:
                start = time.monotonic()
                raw = _get(port, "/healthz")
                worst_probe = max(worst_probe, time.monotonic() - start)
                assert _status(raw) == 200, raw[:200]
                peak = max(peak, _fds(child.pid))
        bound = limits.max_connections + limits.workers + limits.max_queued
        assert worst_probe < 1.0
        assert peak - baseline <= bound, (baseline, peak)
        raw = _get(port, "/metrics")
        assert b'rpcdaemon_http_connections_dropped_total{reason="evicted"}' in raw
        time.sleep(limits.read_timeout + 1.0)
        assert _fds(child.pid) <= baseline + 1  # the idle survivors timed out
        assert child.poll() is None
    finally:
        for sock in idle:
            sock.close()
        child.communicate("", timeout=10)
