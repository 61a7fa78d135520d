"""The simulated Neutron API over real HTTP (``http.server``), with a minimal Keystone v3.

``SimNeutronServer(cloud)`` listens on 127.0.0.1 (a free port by default). Knobs: ``latency`` and
``jitter`` (seconds added to every request), ``faults`` (a :class:`FaultPlan`: random 500, 503,
hung requests and dropped connections), ``auth`` (``"noauth"`` like the rig, or ``"keystone"``:
then every /v2.0 call needs a valid ``X-Auth-Token`` from ``POST /identity/v3/auth/tokens``).
``calls`` counts requests per (method, endpoint template).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import random
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from rpcdaemon.sim import endpoints as _endpoints  # noqa: F401  (registers the /v2.0 routes)
from rpcdaemon.sim.cloud import SimCloud
from rpcdaemon.sim.keystone import UNAUTHORIZED, Keystone
from rpcdaemon.sim.routes import Request, Response, dispatch, error, match
from rpcdaemon.sim.state import INTERNAL_ERROR

logger = logging.getLogger(__name__)

IDENTITY_PREFIX = "/identity"


@dataclasses.dataclass
class FaultPlan:
    """Random failures injected before a request reaches the cloud (so it changes nothing).

    Rates are probabilities in [0, 1], checked in this order: drop (close the connection with no
    answer), timeout (hold the request ``timeout_seconds``, then drop), 503, 500. ``only(method,
    endpoint_template)`` limits faults to some endpoints, e.g.
    ``lambda m, t: m == "POST" and t.endswith("/l3-routers")``. Keystone is never faulted.
    """

    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    timeout_seconds: float = 30.0
    seed: int | None = None
    only: Callable[[str, str], bool] | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def pick(self, method: str, template: str) -> str | None:
        """The fault for this request: "drop", "timeout", "503", "500" or None."""
        if self.only is not None and not self.only(method, template):
            return None
        with self._lock:
            roll = self._random.random()
        for name, rate in (
            ("drop", self.rate_drop),
            ("timeout", self.rate_timeout),
            ("503", self.rate_503),
            ("500", self.rate_500),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None


class CallCounter:
    """Thread-safe request counts per (method, endpoint template)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def add(self, method: str, template: str) -> None:
        with self._lock:
            self._counts[(method, template)] += 1

    def get(self, method: str, template: str) -> int:
        with self._lock:
            return self._counts[(method, template)]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (~40 ms per request on Linux), which no real Neutron adds.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sim api %s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        if path.startswith(IDENTITY_PREFIX):
            self._reply(owner.identity(method, path[len(IDENTITY_PREFIX) :] or "/", raw))
            return
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            owner.calls.add(method, "<bad-body>")
            self._reply(error(400, "HTTPBadRequest", "Malformed request body"))
            return
        request = Request(
            method=method,
            path=path,
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            body=body,
            base_url=owner.network_url,
        )
        response = owner.handle(request, self.headers.get("X-Auth-Token"))
        if response is None:  # a dropped connection
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._reply(response)

    def _reply(self, response: Response) -> None:
        payload = b"" if response.status == 204 else json.dumps(response.body).encode()
        self.send_response(response.status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Openstack-Request-Id", f"req-{random.getrandbits(128):032x}")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: with more concurrent clients the kernel
    # drops SYNs and every extra connection waits for a 1 s TCP retransmit. uWSGI, which
    # serves the real API, listens with a backlog of 100.
    request_queue_size = 128
    owner: SimNeutronServer


class SimNeutronServer:
    """Neutron's REST API for a :class:`SimCloud` on a real socket. Use as a context manager."""

    def __init__(
        self,
        cloud: SimCloud,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: str = "noauth",
        latency: float = 0.0,
        jitter: float = 0.0,
        faults: FaultPlan | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        if auth not in ("noauth", "keystone"):
            raise ValueError(f"auth must be 'noauth' or 'keystone', not {auth!r}")
        self.cloud = cloud
        self.auth = auth
        self.latency = latency
        self.jitter = jitter
        self.faults = faults
        self.keystone = Keystone(users if users is not None else {"admin": "secret"})
        self.calls = CallCounter()
        self._stopping = threading.Event()
        self._random = random.Random()
        self._host = host
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def network_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.network_url}{IDENTITY_PREFIX}/v3"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="sim-neutron-api"
        )
        self._thread.daemon = True
        self._thread.start()
        logger.info("simulated Neutron API on %s (auth %s)", self.network_url, self.auth)

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimNeutronServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request handling (called on the HTTP server's threads) ----------------------------------

    def handle(self, request: Request, token: str | None) -> Response | None:
        """A Neutron request. None means: drop the connection without an answer."""
        delay = self.latency + (self._random.uniform(0, self.jitter) if self.jitter > 0 else 0.0)
        if delay > 0:
            self._stopping.wait(delay)
        if self.auth == "keystone" and request.path != "/" and self.keystone.check(token) is None:
            self.calls.add(request.method, "<unauthorized>")
            return Response(
                401, UNAUTHORIZED, {"WWW-Authenticate": f"Keystone uri='{self.auth_url}'"}
            )
        template = match(request.method, request.path)[0]
        fault = self.faults.pick(request.method, template) if self.faults is not None else None
        if fault is not None:
            self.calls.add(request.method, template)
            logger.debug("sim api: injecting %s on %s %s", fault, request.method, request.path)
            if fault == "drop":
                return None
            if fault == "timeout":
                assert self.faults is not None
                self._stopping.wait(self.faults.timeout_seconds)
                return None
            if fault == "503":
                return Response(503, {"message": "Service Unavailable"}, {"Retry-After": "1"})
            return error(500, "HTTPInternalServerError", INTERNAL_ERROR)
        template, response = dispatch(self.cloud, request)
        self.calls.add(request.method, template)
        return response

    def identity(self, method: str, path: str, raw: bytes) -> Response:
        base = f"{self.network_url}{IDENTITY_PREFIX}"
        self.calls.add(method, f"{IDENTITY_PREFIX}{path}")
        if method == "GET" and path == "/":
            return Response(300, self.keystone.versions_doc(base))
        if method == "GET" and path == "/v3":
            return Response(200, self.keystone.version_doc(base))
        if path == "/v3/auth/tokens" and method == "POST":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            issued = self.keystone.issue(body, network_url=self.network_url)
            if issued is None:
                return Response(401, UNAUTHORIZED)
            token, data = issued
            return Response(201, data, {"X-Subject-Token": token})
        if path == "/v3/auth/tokens" and method == "GET":
            return Response(200, {})
        return Response(404, {"error": {"code": 404, "title": "Not Found", "message": "Not found"}})
