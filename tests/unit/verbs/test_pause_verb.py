"""``rpcdaemon pause`` confirms that a daemon answering on its metrics_address sees the
pause, and says so loudly when it does not (the daemon would go on acting)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rpcdaemon import config
from rpcdaemon.adapters.pausestore import CachedPause, FilePauseStore
from rpcdaemon.core.statusmodel import SOURCE_DAEMON, ClusterStatus, PauseState, to_json
from rpcdaemon.verbs.common import Context
from rpcdaemon.verbs.pause import pause_verb


@pytest.fixture
def fake_daemon() -> Iterator[Callable[[Callable[[], PauseState | None]], str]]:
    """A ``/status`` endpoint whose pause comes from ``read`` (as the daemon's CachedPause)."""
    servers: list[ThreadingHTTPServer] = []

    def start(read: Callable[[], PauseState | None]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                doc = to_json(ClusterStatus(source=SOURCE_DAEMON, agents=(), pause=read()))
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def context(tmp_path: Path, address: str, pause_file: Path) -> Context:
    path = tmp_path / "rpcdaemon.conf"
    path.write_text(
        "[Daemon]\nplugins = L3Agent\ncloud = nowhere\n"
        f"pause_file = {pause_file}\nmetrics_address = {address}\n[L3Agent]\n"
    )
    return Context(config.load(str(path), foreground=True))


def test_pause_confirms_the_daemon_sees_it(
    tmp_path: Path, fake_daemon: Callable[[Callable[[], PauseState | None]], str]
) -> None:
    pause_file = tmp_path / "pause.json"
    address = fake_daemon(CachedPause(FilePauseStore(pause_file), every=0.2).get)
    out = io.StringIO()
    code = pause_verb(
        context(tmp_path, address, pause_file), duration=None, reason="rmq", out=out,
        confirm_timeout=3.0,
    )  # fmt: skip
    assert code == 0, out.getvalue()
    assert "sees the pause" in out.getvalue()


def test_pause_warns_loudly_when_the_daemon_does_not_see_it(
    tmp_path: Path, fake_daemon: Callable[[Callable[[], PauseState | None]], str]
) -> None:
    other = FilePauseStore(tmp_path / "elsewhere.json")  # the daemon reads another file
    address = fake_daemon(other.get)
    out = io.StringIO()
    code = pause_verb(
        context(tmp_path, address, tmp_path / "pause.json"), duration=600, reason="rmq", out=out,
        confirm_timeout=0.5,
    )  # fmt: skip
    assert code == 1
    assert "DOES NOT SEE THE PAUSE" in out.getvalue() and "not paused" in out.getvalue()


def test_pause_without_an_answering_daemon_just_notes_it(tmp_path: Path) -> None:
    out = io.StringIO()
    ctx = context(tmp_path, "127.0.0.1:1", tmp_path / "pause.json")
    assert pause_verb(ctx, duration=None, reason="", out=out) == 0
    assert "cannot confirm" in out.getvalue() and (tmp_path / "pause.json").exists()
