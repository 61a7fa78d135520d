"""BusConsumer against the real RabbitMQ: messages published exactly as oslo.messaging does
(captured raw bodies and properties), fresh exchanges and queues per test."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from rpcdaemon.adapters.amqp import BusConsumer, QueueSpec, private_queue_name
from rpcdaemon.adapters.codec import CodecStats
from rpcdaemon.core.events import BusMessage, MessageKind
from rpcdaemon.plugins.base import Binding

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

WIRE = Path(__file__).resolve().parent.parent / "fixtures" / "wire"
KINDS = {
    "call": MessageKind.RPC_CALL,
    "cast": MessageKind.RPC_CAST,
    "notification": MessageKind.NOTIFICATION,
    "reply": MessageKind.REPLY,
}


def captures() -> list[dict[str, Any]]:
    """Every capture that carries an oslo message, with its real routing key."""
    out = []
    for path in sorted(WIRE.glob("*.json")):
        cap = json.loads(path.read_text())
        if "oslo_message_decoded" not in cap:
            continue
        headers = cap.get("headers") or {}
        keys = headers.get("routing_keys") or [cap["delivery_info"]["routing_key"]]
        props = headers.get("properties") or cap["properties"]  # firehose: the originals
        cap["_routing_key"] = keys[0] or "reply_x"
        cap["_properties"] = props
        cap["_name"] = path.stem
        out.append(cap)
    return out


def publish(
    url: str,
    exchange: str,
    routing_key: str,
    body: bytes | str,
    *,
    content_type: str | None = "application/json",
    content_encoding: str | None = "utf-8",
    expiration_ms: str | None = None,
) -> None:
    """Publish the way oslo.messaging's rabbit driver does: raw JSON, delivery_mode 2."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    with Connection(url) as conn:
        producer = Producer(conn.default_channel)
        kwargs: dict[str, Any] = {}
        if expiration_ms is not None:
            kwargs["expiration"] = int(expiration_ms) / 1000.0
        producer.publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            content_type=content_type,
            content_encoding=content_encoding,
            delivery_mode=2,
            priority=0,
            headers={},
            **kwargs,
        )


class Running:
    """A BusConsumer on a thread, with what it received and its connection changes."""

    def __init__(
        self,
        url: str,
        specs: list[QueueSpec],
        inbox: queue.Queue[BusMessage],
        **kwargs: Any,
    ) -> None:
        self.changes: list[bool] = []
        self.up = threading.Event()
        self.down = threading.Event()
        self.inbox = inbox
        self.stats = CodecStats()

        def changed(value: bool) -> None:
            self.changes.append(value)
            (self.up if value else self.down).set()
            (self.down if value else self.up).clear()

        self.consumer = BusConsumer(
            url, specs, stats=self.stats, on_connection_change=changed, **kwargs
        )
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)
        self.thread.start()

    def get(self, timeout: float = 10.0) -> BusMessage:
        return self.inbox.get(timeout=timeout)

    def stop(self) -> float:
        started = time.monotonic()
        self.consumer.stop()
        self.thread.join(timeout=10)
        return time.monotonic() - started


@pytest.fixture
def start(amqp_url: str) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def _start(
        bindings: tuple[Binding, ...],
        *,
        handler: Callable[[BusMessage], None] | None = None,
        exclusive: bool = False,
        expires: float = 60.0,
        url: str | None = None,
        **consumer_kwargs: Any,
    ) -> Running:
        inbox: queue.Queue[BusMessage] = queue.Queue()
        spec = QueueSpec(
            name=private_queue_name("test"),
            bindings=bindings,
            expires=expires,
            handler=handler or inbox.put,
            exclusive=exclusive,
        )
        running = Running(
            url or amqp_url, [spec], inbox, reconnect_max_backoff=2.0, **consumer_kwargs
        )
        running.spec = spec  # type: ignore[attr-defined]
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


def queue_state(url: str, name: str) -> tuple[int, int] | None:
    """(messages, consumers) of a queue, or None if it does not exist (passive declare)."""
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            ok = channel.queue_declare(queue=name, passive=True)
        except conn.channel_errors as exc:
            if getattr(exc, "code", None) == 404:
                return None
            raise
        return ok.message_count, ok.consumer_count


def declare_fails(url: str, name: str, **kwargs: Any) -> int | None:
    """Declare ``name`` with these flags; return the AMQP error code (406: inequivalent)."""
    kwargs.setdefault("auto_delete", False)  # py-amqp's default is True
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=name, **kwargs)
        except conn.channel_errors as exc:
            return getattr(exc, "code", -1)
        return None


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_private_queue_name_is_recognisable_and_unique() -> None:
    a, b = private_queue_name("l3"), private_queue_name("l3")
    assert a.startswith("rpcdaemon-l3-") and a != b
    assert len(a.rsplit("-", 1)[1]) == 8


def test_every_capture_arrives_decoded(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    caps = captures()
    keys = sorted({c["_routing_key"] for c in caps})
    running = start(tuple(Binding(exchange_name, k) for k in keys))
    assert running.up.wait(10), "consumer did not connect"
    for cap in caps:
        props = cap["_properties"]
        publish(
            amqp_url,
            exchange_name,
            cap["_routing_key"],
            cap["raw_body"],
            content_type=props.get("content_type"),
            content_encoding=props.get("content_encoding"),
            expiration_ms=props.get("expiration"),
        )
    got = [running.get() for _ in caps]
    by_key = {(m.routing_key, m.method or m.event_type or "reply") for m in got}
    assert len(by_key) == len(got) or len(got) == len(caps)
    for cap, message in zip(caps, got, strict=True):  # one connection: order is kept
        assert message.exchange == exchange_name
        assert message.routing_key == cap["_routing_key"]
        assert message.kind is KINDS[cap["kind"]], cap["_name"]
        if message.kind is MessageKind.NOTIFICATION:
            assert message.event_type == cap["method"]
        elif message.kind is not MessageKind.REPLY:
            assert message.method == cap["method"]
        assert message.properties.get("content_type") == "application/json"
        assert message.properties.get("expiration") == cap["_properties"].get("expiration")
    assert running.stats.snapshot()["decoded"] == len(caps)
    assert running.changes == [True]


def test_queue_is_durable_with_x_expires_and_not_neutrons(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    running = start((Binding(exchange_name, "q-reports-plugin"),), expires=42.0)
    assert running.up.wait(10)
    name = running.spec.name  # type: ignore[attr-defined]
    assert queue_state(amqp_url, name) == (0, 1)
    # the broker accepts exactly our flags and refuses any other: proof of what it holds
    assert declare_fails(amqp_url, name, durable=True, arguments={"x-expires": 42000}) is None
    assert declare_fails(amqp_url, name, durable=False, arguments={"x-expires": 42000}) == 406
    assert declare_fails(amqp_url, name, durable=True, arguments={"x-expires": 60000}) == 406
    assert declare_fails(amqp_url, name, durable=True) == 406


def test_exclusive_queue_when_asked(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    running = start((Binding(exchange_name, "#"),), exclusive=True)
    assert running.up.wait(10)
    name = running.spec.name  # type: ignore[attr-defined]
    # another connection may not touch an exclusive queue: 405 RESOURCE_LOCKED
    assert declare_fails(amqp_url, name, passive=True) == 405
    publish(amqp_url, exchange_name, "q-reports-plugin", json.dumps({"method": "m", "args": {}}))
    assert running.get().method == "m"


MALFORMED = [
    (b"this is not json", "application/json", "utf-8"),
    (b'{"a": "\xff\xfe"}', "application/json", "utf-8"),
    (b"\x80\x04K\x01.", "application/x-python-serialize", "binary"),
    (b"[1, 2, 3]", "application/json", "utf-8"),
    (b'{"oslo.version": "2.0", "oslo.message": "{nope"}', "application/json", "utf-8"),
    (b'{"hello": "world"}', "application/json", "utf-8"),
    (b'"' + b"x" * 1_100_000 + b'"', "application/json", "utf-8"),
    (b"", None, None),
]


def test_malformed_messages_are_acked_and_later_good_ones_arrive(
    amqp_url: str,
    exchange_name: str,
    start: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rpcdaemon.adapters.amqp")
    running = start((Binding(exchange_name, "q-reports-plugin"),))
    assert running.up.wait(10)
    for body, ctype, cenc in MALFORMED:
        publish(
            amqp_url,
            exchange_name,
            "q-reports-plugin",
            body,
            content_type=ctype,
            content_encoding=cenc,
        )
    good = (WIRE / "report_state_cast.json").read_text()
    publish(amqp_url, exchange_name, "q-reports-plugin", json.loads(good)["raw_body"])
    message = running.get()
    assert message.method == "report_state" and message.kind is MessageKind.RPC_CAST
    assert running.inbox.empty()
    snap = running.stats.snapshot()
    assert snap["rejected"] == len(MALFORMED)
    assert snap["decoded"] == 1
    assert {k for k in snap if k.startswith("rejected.")} == {
        "rejected.not_json",
        "rejected.bad_encoding",
        "rejected.bad_content_type",
        "rejected.not_object",
        "rejected.bad_envelope",
        "rejected.missing_field",
        "rejected.too_large",
    }
    name = running.spec.name  # type: ignore[attr-defined]
    assert wait_until(lambda: queue_state(amqp_url, name) == (0, 1)), "queue did not drain"
    dropped = [r for r in caplog.records if "dropped a message" in r.getMessage()]
    assert 1 <= len(dropped) <= len(MALFORMED)  # rate-limited per reason
    assert running.consumer.connected


def test_handler_exception_is_isolated(
    amqp_url: str,
    exchange_name: str,
    start: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: queue.Queue[BusMessage] = queue.Queue()

    def handler(message: BusMessage) -> None:
        seen.put(message)
        if message.method == "boom":
            raise RuntimeError("plugin bug")

    running = start((Binding(exchange_name, "q-plugin"),), handler=handler)
    assert running.up.wait(10)
    publish(amqp_url, exchange_name, "q-plugin", json.dumps({"method": "boom", "args": {}}))
    publish(amqp_url, exchange_name, "q-plugin", json.dumps({"method": "fine", "args": {}}))
    assert seen.get(timeout=10).method == "boom"
    assert seen.get(timeout=10).method == "fine"
    assert running.stats.snapshot()["handler_errors"] == 1
    name = running.spec.name  # type: ignore[attr-defined]
    assert wait_until(lambda: queue_state(amqp_url, name) == (0, 1))
    assert any("plugin bug" in (r.exc_text or "") for r in caplog.records)


def test_waits_for_a_missing_exchange_then_proceeds(
    amqp_url: str, start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rpcdaemon.adapters.amqp")
    name = f"rpcdtest-late-{uuid.uuid4().hex[:8]}"
    running = start((Binding(name, "q-reports-plugin"),))
    assert wait_until(lambda: any("does not exist" in r.getMessage() for r in caplog.records))
    time.sleep(2.5)  # a retry or two later: still waiting, still one log line
    assert not running.consumer.connected and running.changes == []
    assert sum("does not exist" in r.getMessage() for r in caplog.records) == 1
    queue_name = running.spec.name  # type: ignore[attr-defined]
    assert queue_state(amqp_url, queue_name) is None  # nothing declared while waiting
    with Connection(amqp_url) as conn:
        exchange = Exchange(name, type="topic", durable=False, auto_delete=False)
        exchange(conn.default_channel).declare()
        try:
            assert running.up.wait(15), "did not proceed once the exchange appeared"
            publish(amqp_url, name, "q-reports-plugin", json.dumps({"method": "m", "args": {}}))
            assert running.get().method == "m"
        finally:
            running.stop()
            exchange(conn.default_channel).delete()


def test_stop_is_prompt_and_deletes_our_queue(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    running = start((Binding(exchange_name, "q-reports-plugin"),))
    assert running.up.wait(10)
    name = running.spec.name  # type: ignore[attr-defined]
    assert queue_state(amqp_url, name) == (0, 1)
    running.stop()
    assert not running.thread.is_alive()
    assert queue_state(amqp_url, name) is None
    assert running.changes == [True, False]
    assert not running.consumer.connected


def test_stop_while_the_broker_is_unreachable_is_prompt(start: Callable[..., Running]) -> None:
    running = start(
        (Binding("neutron", "q-reports-plugin"),), url="amqp://guest:guest@127.0.0.1:1//"
    )
    time.sleep(1.5)
    assert running.changes == [] and not running.consumer.connected
    running.stop()
    assert not running.thread.is_alive()


def test_queue_deleted_behind_our_back_is_redeclared(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    running = start((Binding(exchange_name, "q-reports-plugin"),))
    assert running.up.wait(10)
    name = running.spec.name  # type: ignore[attr-defined]
    with Connection(amqp_url) as conn:
        conn.default_channel.queue_delete(queue=name)  # RabbitMQ cancels our consumer
    assert running.down.wait(10)
    assert running.up.wait(10), "did not come back after the consumer was cancelled"
    assert queue_state(amqp_url, name) == (0, 1)  # the same name, declared again
    publish(amqp_url, exchange_name, "q-reports-plugin", json.dumps({"method": "m", "args": {}}))
    assert running.get().method == "m"
    assert running.changes == [True, False, True]


# --- hostile input at the edge ---------------------------------------------------------

SECRET = "hunter2-CANARY-amqp"


def vm_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def publish_with_headers(
    url: str, exchange: str, key: str, body: bytes, headers: dict[str, Any]
) -> None:
    with Connection(url) as conn:
        Producer(conn.default_channel).publish(
            body,
            exchange=exchange,
            routing_key=key,
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers,
        )


def test_compressed_bodies_are_refused_before_kombu_inflates_them(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    import bz2
    import zlib

    from kombu import compression

    inflated: list[int] = []

    def decoder(body: bytes) -> bytes:  # a fake codec: records that kombu inflated a body
        inflated.append(len(body))
        return body

    compression.register(lambda b: b, decoder, "application/x-rpcdaemon-test")
    bomb = b"[" + b" " * (64 * 1024 * 1024 - 2) + b"]"  # 64 MiB of JSON once inflated
    bodies = [
        (b'{"method": "m", "args": {}}', "application/x-rpcdaemon-test"),
        (bz2.compress(bomb, 9), "application/x-bz2"),
        (zlib.compress(bomb, 9), "application/x-gzip"),
    ]
    assert all(len(body) < 100_000 for body, _ in bodies)
    running = start((Binding(exchange_name, "q-reports-plugin"),))
    assert running.up.wait(10)
    before = vm_rss_kib()
    for body, kind in bodies:
        publish_with_headers(
            amqp_url, exchange_name, "q-reports-plugin", body, {"compression": kind}
        )
    publish(amqp_url, exchange_name, "q-reports-plugin", json.dumps({"method": "ok", "args": {}}))
    assert running.get().method == "ok"
    assert running.stats.snapshot().get("rejected.compressed") == 3
    assert inflated == [], "kombu inflated a compressed body before our screen"
    assert vm_rss_kib() - before < 32 * 1024, "memory grew: a bomb was inflated"
    name = running.spec.name  # type: ignore[attr-defined]
    assert wait_until(lambda: queue_state(amqp_url, name) == (0, 1))  # all acked


def test_the_size_limit_applies_to_raw_bytes(
    amqp_url: str, exchange_name: str, start: Callable[..., Running]
) -> None:
    running = start((Binding(exchange_name, "k"),), max_size=1000)
    assert running.up.wait(10)
    padded = json.dumps({"method": "big", "args": {"pad": "x" * 2000}})
    publish(amqp_url, exchange_name, "k", padded)
    publish(amqp_url, exchange_name, "k", json.dumps({"method": "small", "args": {}}))
    assert running.get().method == "small"
    assert running.stats.snapshot().get("rejected.too_large") == 1


def test_rejections_log_reasons_and_sizes_never_values(
    amqp_url: str,
    exchange_name: str,
    start: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="rpcdaemon")
    running = start((Binding(exchange_name, "#"),))
    assert running.up.wait(10)
    state = {"host": {"password": SECRET}, "agent_type": "L3 agent"}
    bad = {"method": "report_state", "args": {"agent_state": {"agent_state": state}}}
    publish(amqp_url, exchange_name, "q-plugin", json.dumps(bad))
    publish(amqp_url, exchange_name, f"key.{SECRET}.\n", SECRET)
    publish(amqp_url, exchange_name, "q-plugin", json.dumps({"method": [SECRET]}))
    publish(amqp_url, exchange_name, "q-plugin", json.dumps({"method": "ok", "args": {}}))
    assert running.get().method == "ok"
    assert wait_until(lambda: running.stats.snapshot().get("rejected", 0) == 3)
    text = caplog.text
    assert "bad_heartbeat" in text and "not_json" in text
    assert SECRET not in text and "hunter2" not in text


def test_consumer_lag_is_measured_reported_and_logged_once_each_way(
    amqp_url: str,
    exchange_name: str,
    start: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rpcdaemon.core.events import ConsumerLag

    caplog.set_level(logging.INFO, logger="rpcdaemon")
    lags: list[ConsumerLag] = []
    done = threading.Event()
    count = 1000

    def slow(message: BusMessage) -> None:
        time.sleep(0.004)  # about 250 messages a second
        if message.args.get("i") == count - 1:
            done.set()

    running = start(
        (Binding(exchange_name, "k"),),
        handler=slow,
        on_lag=lags.append,
        lag_interval=0.2,
        lag_log_seconds=1.0,
        prefetch=10,
    )
    assert running.up.wait(10)
    with Connection(amqp_url) as conn:
        producer = Producer(conn.default_channel)
        for i in range(count):
            producer.publish(
                json.dumps({"method": "m", "args": {"i": i}}),
                exchange=exchange_name,
                routing_key="k",
                content_type="application/json",
            )
    assert done.wait(30)
    assert wait_until(lambda: bool(lags) and lags[-1] == ConsumerLag(0, 0.0), timeout=5)
    peak = max(lags, key=lambda lag: lag.seconds)
    assert peak.messages > 300 and peak.seconds >= 1.0, peak
    assert running.consumer.lag == ConsumerLag(0, 0.0)
    assert caplog.text.count("our consumer lags") == 1
    assert caplog.text.count("our consumer caught up") == 1
