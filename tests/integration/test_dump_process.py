"""The daemon as a process (``python -m rpcdaemon -d -c cfg`` with plugins = Dump) against the
real broker: it prints every captured kind decoded and redacted, survives every malformed
message, and still prints what comes after."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Producer

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
KINDS = {"call": "rpc_call", "cast": "rpc_cast", "notification": "notification", "reply": "reply"}
SECRET = "gAAAAAB-very-secret-keystone-token"


def captures() -> list[dict[str, Any]]:
    out = []
    for path in sorted(WIRE.glob("*.json")):
        cap = json.loads(path.read_text())
        if "oslo_message_decoded" not in cap:
            continue
        headers = cap.get("headers") or {}
        cap["_routing_key"] = (headers.get("routing_keys") or [""])[0] or cap["delivery_info"][
            "routing_key"
        ]
        cap["_properties"] = headers.get("properties") or cap["properties"]
        out.append(cap)
    return out


def publish(
    conn: Connection,
    exchange: str,
    routing_key: str,
    body: bytes | str,
    *,
    content_type: str | None = "application/json",
    content_encoding: str | None = "utf-8",
    expiration: str | None = None,
) -> None:
    extra: dict[str, Any] = {}
    if expiration is not None:
        extra["expiration"] = int(expiration) / 1000.0
    Producer(conn.default_channel).publish(
        body.encode() if isinstance(body, str) else body,
        exchange=exchange,
        routing_key=routing_key,
        content_type=content_type,
        content_encoding=content_encoding,
        delivery_mode=2,
        priority=0,
        headers={},
        **extra,
    )


class Daemon:
    def __init__(self, cfg: Path, log: Path, *, umask: int = -1) -> None:
        self.log = log
        self._stderr = open(log, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            umask=umask,
        )
        self._out: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self._lock:
                self._out.append(raw.decode("utf-8", "replace"))

    @property
    def stdout(self) -> str:
        with self._lock:
            return "".join(self._out)

    def docs(self) -> list[dict[str, Any]]:
        text, docs, i = self.stdout, [], 0
        decoder = json.JSONDecoder()
        while i < len(text):
            if text[i].isspace():
                i += 1
                continue
            try:
                doc, i = decoder.raw_decode(text, i)
            except ValueError:
                break  # a document still being written
            docs.append(doc)
        return docs

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return bool(predicate())
            time.sleep(0.1)
        return bool(predicate())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        self._stderr.close()
        return self.proc.returncode


@pytest.fixture
def daemon(tmp_path: Path, amqp_url: str, exchange_name: str) -> Iterator[Daemon]:
    cfg = tmp_path / "rpcdaemon.conf"
    cfg.write_text(
        "[Daemon]\n"
        "plugins = Dump\n"
        f"rpchost = {amqp_url}\n"
        f"pidfile = {tmp_path / 'rpcdaemon.pid'}\n"
        f"logfile = {tmp_path / 'rpcdaemon.log'}\n"
        "[Dump]\n"
        "loglevel = DEBUG\n"
        f"queue = {exchange_name}\n"
    )
    running = Daemon(cfg, tmp_path / "stderr.log")
    try:
        yield running
    finally:
        running.stop()


def test_dump_process_prints_every_kind_redacted_and_survives_garbage(
    daemon: Daemon, amqp_url: str, exchange_name: str
) -> None:
    assert daemon.wait_for(lambda: "consuming from" in daemon.stderr()), daemon.stderr()
    queue_name = re.search(r"consuming from \S+: (\S+)", daemon.stderr())
    assert queue_name is not None
    caps = captures()
    secret_body = json.dumps(
        {
            "oslo.version": "2.0",
            "oslo.message": json.dumps(
                {
                    "method": "report_state",
                    "args": {
                        "agent_state": {
                            "agent_state": {
                                "host": "netX",
                                "agent_type": "L3 agent",
                                "password": "pw1",
                            }
                        }
                    },
                    "_context_auth_token": SECRET,
                    "_context_user_name": "admin",
                }
            ),
        }
    )
    malformed: list[tuple[bytes, str | None, str | None]] = [
        (b"not json at all", "application/json", "utf-8"),
        (b'{"a": "\xff"}', "application/json", "utf-8"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "binary"),
        (b"[1, 2]", "application/json", "utf-8"),
        (b'{"oslo.version": "2.0", "oslo.message": "{broken"}', "application/json", "utf-8"),
        (b'{"oslo.version": "2.0", "oslo.message": "[]"}', "application/json", "utf-8"),
        (b'{"nothing": "here"}', "application/json", "utf-8"),
        (b'"' + b"x" * 1_100_000 + b'"', "application/json", "utf-8"),
        (b"", None, None),
    ]
    expected: list[tuple[str, str | None]] = []
    with Connection(amqp_url) as conn:
        for cap in caps:
            props = cap["_properties"]
            publish(
                conn,
                exchange_name,
                cap["_routing_key"],
                cap["raw_body"],
                content_type=props.get("content_type"),
                content_encoding=props.get("content_encoding"),
                expiration=props.get("expiration"),
            )
            name = cap["method"] if cap["kind"] != "reply" else None
            expected.append((KINDS[cap["kind"]], name))
        for body, ctype, cenc in malformed:
            publish(
                conn,
                exchange_name,
                "q-reports-plugin",
                body,
                content_type=ctype,
                content_encoding=cenc,
            )
            # after every malformed message, a good one must still come through
            publish(conn, exchange_name, "q-plugin", json.dumps({"method": "ping", "args": {}}))
            expected.append(("rpc_cast", "ping"))
        publish(conn, exchange_name, "q-reports-plugin", secret_body)
        expected.append(("rpc_cast", "report_state"))

    assert daemon.wait_for(lambda: len(daemon.docs()) >= len(expected), timeout=30), (
        f"{len(daemon.docs())} of {len(expected)} printed; stderr: {daemon.stderr()[-2000:]}"
    )
    docs = daemon.docs()
    assert len(docs) == len(expected)
    got = [(d["kind"], d["method"] or d["event_type"]) for d in docs]
    assert got == expected
    assert daemon.proc.poll() is None, "the daemon died on a malformed message"

    for doc, cap in zip(docs, caps, strict=False):
        assert doc["exchange"] == exchange_name
        assert doc["routing_key"] == cap["_routing_key"]
        assert doc["envelope"] == "2.0"
        if doc["kind"] != "reply":  # replies carry no context
            assert "auth_token" in doc["context"] and doc["context"]["auth_token"] is None
        assert not any(k.startswith("_context_") for k in doc["fields"])
    report = next(d for d in docs if d["kind"] == "rpc_call" and d["method"] == "report_state")
    assert report["args"]["agent_state"]["agent_state"]["host"] == "net1"
    assert report["properties"]["expiration"] == "3000"
    notif = next(d for d in docs if d["event_type"] == "network.create.end")
    assert notif["payload"]["network"]["id"] == "5521ea7a-621c-4818-97db-cf01a9af7555"

    last = docs[-1]
    assert last["context"]["auth_token"] == "***"
    assert last["args"]["agent_state"]["agent_state"]["password"] == "***"
    assert last["context"]["user_name"] == "admin"
    assert SECRET not in daemon.stdout and "pw1" not in daemon.stdout
    assert SECRET not in daemon.stderr()

    assert daemon.stop() == 0
    with Connection(amqp_url) as conn:  # a clean stop deletes our queue
        channel = conn.channel()
        with pytest.raises(conn.channel_errors):
            channel.queue_declare(queue=queue_name.group(1), passive=True)


def test_dump_process_refuses_a_2014_filter(tmp_path: Path, amqp_url: str) -> None:
    cfg = tmp_path / "old.conf"
    cfg.write_text(
        "[Daemon]\nplugins = Dump\n"
        f"rpchost = {amqp_url}\n"
        "[Dump]\nqueue = neutron\nfilter = message['method'] == 'report_state'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "method == 'report_state'" in proc.stderr


def test_dump_process_output_is_private_and_its_log_is_clean(
    tmp_path: Path, amqp_url: str, exchange_name: str
) -> None:
    """Foreground, umask 0 (the worst case): [Dump] output is created 0600; hostile content
    (secrets in AMQP headers and in a multi-host URL, control characters) is masked in the
    output and can neither forge a line nor send escapes to the log on stderr."""
    output = tmp_path / "dump.jsonl"
    cfg = tmp_path / "rpcdaemon.conf"
    cfg.write_text(
        "[Daemon]\nplugins = Dump\n"
        f"rpchost = {amqp_url}\n"
        f"logfile = {tmp_path / 'rpcdaemon.log'}\n"
        f"[Dump]\nloglevel = DEBUG\nqueue = {exchange_name}\noutput = {output}\n"
    )
    daemon = Daemon(cfg, tmp_path / "stderr.log", umask=0)
    try:
        assert daemon.wait_for(lambda: "consuming from" in daemon.stderr()), daemon.stderr()
        hostile = "net1\n2026-11-24T06:00:00.000+00:00 1 CRITICAL rpcdaemon FORGED\x1b[2J"
        body = {
            "method": "report_state",
            "args": {
                "agent_state": {
                    "agent_state": {
                        "host": "net1",
                        "agent_type": "L3 agent",
                        "configurations": {"banner": hostile},
                    }
                },
                "transport_url": "rabbit://u:pwA@h1:5672,u:pwB@h2:5672/",
                "note": "password=pwC X-Auth-Token: pwD",
            },
        }
        with Connection(amqp_url) as conn:
            Producer(conn.default_channel).publish(
                json.dumps(body).encode(),
                exchange=exchange_name,
                routing_key="q-reports-plugin",
                content_type="application/json",
                content_encoding="utf-8",
                headers={"Authorization": "Bearer pwE", "x-trace": "t-1"},
            )
            publish(conn, exchange_name, "q-plugin", b'{"method": "x\\u001b[2J\\nFORGED"')
        assert daemon.wait_for(lambda: output.exists() and output.read_text().count("\n") >= 1)
        assert stat.S_IMODE(output.stat().st_mode) == 0o600
        text = output.read_text()
        assert not [s for s in ("pwA", "pwB", "pwC", "pwD", "pwE") if s in text], text
        doc = json.loads(text.splitlines()[0])
        assert doc["args"]["transport_url"] == "rabbit://u:***@h1:5672,u:***@h2:5672/"
        assert doc["properties"]["application_headers"]["x-trace"] == "t-1"
        state = doc["args"]["agent_state"]["agent_state"]
        assert state["configurations"]["banner"] == hostile  # data, printed as JSON
    finally:
        assert daemon.stop() == 0
    log = daemon.stderr()
    assert "\x1b" not in log and "pwE" not in log
    assert not [line for line in log.splitlines() if "FORGED" in line.split(" ", 1)[0]]


def test_dump_process_refuses_a_double_quoted_filter(tmp_path: Path, amqp_url: str) -> None:
    cfg = tmp_path / "quoted.conf"
    cfg.write_text(
        "[Daemon]\nplugins = Dump\n"
        f"rpchost = {amqp_url}\n"
        '[Dump]\nqueue = neutron\nfilter = method == "report_state"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "method == 'report_state'" in proc.stderr and "single quotes" in proc.stderr
