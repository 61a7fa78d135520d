"""Simulated agents on a real bus (RabbitMQ, or kombu's ``memory://`` in one process).

``SimBus(cloud, url)`` runs one thread that owns one kombu connection and does three things:

* every ``report_interval`` (plus a little jitter) each running agent of the cloud sends a
  ``report_state`` RPC call to ``<exchange>/q-reports-plugin``, byte for byte in oslo.messaging's
  shape (envelope 2.0, ``_msg_id``, ``_reply_q``, the 23 ``_context_*`` keys, ``expiration`` =
  report_interval in ms); ``start_flag: true`` on an agent's first report;
* like neutron-server, it consumes its OWN exclusive queue bound to ``q-reports-plugin`` and calls
  ``cloud.heartbeat()`` at receive time, so the API's ``alive`` follows the bus;
* it publishes what the cloud says Neutron would send (RPC casts/calls to ``<topic>.<host>``,
  fanouts, and, with ``notifications=True``, notifications on ``notifications.info``);
* like each agent's own RPC server, it consumes ``<topic>.<host>`` for every agent process
  that is up (running or frozen) and answers every call, one of a method the agent does not
  have included (``NoSuchMethod``, as oslo.messaging does: :mod:`.agentrpc`). rpcdaemon's
  node-death probe is such a call.

Agents can be killed (no heartbeats, process gone: router adds block then 500, nothing
consumes its queues), frozen (no heartbeats, the process still answers RPC), cut off (no
heartbeats, RPC no longer reaches it), and revived; so can every agent of a host at once
(``kill_node``: a node that dies takes its L3, DHCP, Open vSwitch and metadata agents).
"""

from __future__ import annotations

import enum
import logging
import queue
import random
import socket
import threading
import time
import uuid
from typing import Any

import kombu as _kombu

from rpcdaemon.sim import wire
from rpcdaemon.sim.agentrpc import AgentServers, agent_queues
from rpcdaemon.sim.cloud import SimCloud, SimEvent

logger = logging.getLogger(__name__)

# kombu ships no type information: use it through an Any-typed handle
kombu: Any = _kombu

SERVER_HOST = "sim-controller"
DEFAULT_EXCHANGE = kombu.Exchange("", type="direct")  # replies: routed by queue name


class AgentState(str, enum.Enum):
    RUNNING = "running"
    FROZEN = "frozen"
    KILLED = "killed"  # the process exited on a live host: its connection is closed
    CUT = "cut"  # the host is cut off the bus
    DOWN = "down"  # the node died (power, kernel, uplink)


SERVING = frozenset({AgentState.RUNNING, AgentState.FROZEN})
"""States in which the agent's RPC server consumes its queues and answers."""
HOLDING = frozenset({AgentState.CUT, AgentState.DOWN})
"""States in which the broker still counts the agent's consumers (a dead or cut-off host's
connections linger until the broker's heartbeat timeout, about 60 s) but nothing answers.
A KILLED process on a live host has its connection closed by the kernel at once."""


class SimBus:
    """Simulated agents' heartbeats and neutron-server's report_state consumer, on one bus."""

    def __init__(
        self,
        cloud: SimCloud,
        url: str,
        *,
        report_interval: float = 30.0,
        exchange: str = "neutron",
        notifications: bool = True,
        jitter: float = 0.05,
        seed: int | None = None,
    ) -> None:
        self.cloud = cloud
        self.url = url
        self.report_interval = report_interval
        self.exchange_name = exchange
        self.notifications = notifications
        self.jitter = jitter
        self.queue_name = f"rpcdaemon-sim-server-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.sent = 0
        self.received = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._states: dict[str, AgentState] = {}
        self._start_flag: dict[str, bool] = {}
        self._due: dict[str, float] = {}
        self._outbox: queue.Queue[SimEvent] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._reply_q = f"reply_{uuid.uuid4().hex}"
        self._fanouts: set[str] = set()
        self._servers: AgentServers | None = None  # the bus thread's, while connected
        self._answered = 0  # calls answered in the sessions before the current one

    # -- control ----------------------------------------------------------------------------------

    def start(self, *, wait: float = 10.0) -> None:
        """Start the bus thread; returns once it consumes (or after ``wait`` seconds)."""
        self.cloud.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="sim-bus", daemon=True)
        self._thread.start()
        if not self._ready.wait(wait):
            logger.warning("sim bus: not consuming after %.0fs (is %s reachable?)", wait, self.url)

    def stop(self) -> None:
        self.cloud.unsubscribe(self._on_event)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def rpc_answered(self) -> int:
        """Calls the agents' RPC servers answered (probes included), since start."""
        servers = self._servers
        with self._lock:
            return self._answered + (servers.calls if servers is not None else 0)

    def state(self, agent_id: str) -> AgentState:
        with self._lock:
            return self._states.get(agent_id, AgentState.RUNNING)

    def kill(self, agent_id: str) -> None:
        """The agent's process is gone: no heartbeats, nothing answers its RPC queue."""
        self._set(agent_id, AgentState.KILLED, process=False)

    def freeze(self, agent_id: str) -> None:
        """No more heartbeats (a hung reporting loop); the process still answers RPC."""
        self._set(agent_id, AgentState.FROZEN, process=True)

    def cut(self, agent_id: str) -> None:
        """Cut off from the bus: no heartbeats arrive and RPC calls to it time out."""
        self._set(agent_id, AgentState.CUT, process=False)

    def revive(self, agent_id: str, *, restart: bool = True) -> None:
        """Heartbeats again at once; ``restart`` sends ``start_flag: true`` first (a new process)."""
        self._set(agent_id, AgentState.RUNNING, process=True)
        with self._lock:
            self._start_flag[agent_id] = restart
            self._due[agent_id] = 0.0

    def kill_node(self, host: str) -> list[str]:
        """The node dies (power, kernel, uplink): every agent of ``host`` at once, the Open
        vSwitch and metadata agents too; their connections linger at the broker (nothing
        closes them) and answer nothing. Returns their ids."""
        return self._set_host(host, AgentState.DOWN, process=False)

    def stop_node(self, host: str) -> list[str]:
        """Every agent process of ``host`` exits on a live host (``systemctl stop
        neutron-*``, an upgrade): the kernel closes their connections at once."""
        return self._set_host(host, AgentState.KILLED, process=False)

    def freeze_node(self, host: str) -> list[str]:
        """Every agent of ``host`` stops reporting; their processes still answer RPC."""
        return self._set_host(host, AgentState.FROZEN, process=True)

    def cut_node(self, host: str) -> list[str]:
        """``host`` is cut off the bus: no heartbeats, RPC calls to it time out."""
        return self._set_host(host, AgentState.CUT, process=False)

    def revive_node(self, host: str, *, restart: bool = True) -> list[str]:
        """Every agent of ``host`` reports again (``restart``: as new processes)."""
        ids = self._set_host(host, AgentState.RUNNING, process=True)
        with self._lock:
            for agent_id in ids:
                self._start_flag[agent_id] = restart
                self._due[agent_id] = 0.0
        return ids

    def _set_host(self, host: str, state: AgentState, *, process: bool) -> list[str]:
        ids = sorted(str(a["id"]) for a in self.cloud.agents() if a["host"] == host)
        if not ids:
            raise KeyError(f"no agent on host {host!r}")
        for agent_id in ids:
            self.cloud.set_agent_process(agent_id, process)
        with self._lock:  # all at once: no heartbeat of the host slips in between
            for agent_id in ids:
                self._states[agent_id] = state
        logger.info("sim bus: node %s (%d agents) is now %s", host, len(ids), state.value)
        return ids

    def _set(self, agent_id: str, state: AgentState, *, process: bool) -> None:
        self.cloud.set_agent_process(agent_id, process)  # raises for an unknown agent
        with self._lock:
            self._states[agent_id] = state
        logger.info("sim bus: agent %s is now %s", agent_id, state.value)

    def _on_event(self, event: SimEvent) -> None:
        if event.kind == "notification" and not self.notifications:
            return
        self._outbox.put(event)

    # -- the bus thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.5
            except Exception as exc:  # connection loss: log, back off, reconnect
                if self._stop.is_set():
                    break
                logger.warning("sim bus: %s; reconnecting in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _session(self) -> None:
        options = {"polling_interval": 0.05} if self.url.startswith("memory") else {}
        with kombu.Connection(self.url, transport_options=options, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            exchange = kombu.Exchange(
                self.exchange_name, type="topic", durable=False, auto_delete=False
            )
            server_queue = kombu.Queue(
                self.queue_name,
                exchange=exchange,
                routing_key=wire.REPORT_STATE_TOPIC,
                durable=False,
                exclusive=True,
                auto_delete=True,
            )
            consume_channel = conn.channel()
            publish_channel = conn.channel()
            exchange(publish_channel).declare()
            producer = kombu.Producer(publish_channel, exchange=exchange, auto_declare=False)
            servers = AgentServers(
                kombu,
                conn.channel(),
                exchange,
                lambda reply, reply_q: self._reply(producer, reply, reply_q),
                private=self.exchange_name != "neutron",
                answering=self._answers,
            )
            self._servers = servers
            with kombu.Consumer(
                consume_channel, queues=[server_queue], on_message=self._on_message
            ):
                servers.sync(self._serving(self.cloud.agents()))
                self._ready.set()
                logger.info("sim bus: consuming %s on %s", self.queue_name, self.exchange_name)
                try:
                    while not self._stop.is_set():
                        agents = self.cloud.agents()
                        servers.sync(self._serving(agents))
                        self._heartbeats(producer, agents)
                        self._flush(producer, publish_channel)
                        try:
                            conn.drain_events(timeout=0.05)
                        except TimeoutError:
                            pass
                finally:
                    self._servers = None
                    with self._lock:
                        self._answered += servers.calls
                    if self._stop.is_set():
                        servers.delete_queues()
                    self._cleanup(publish_channel)

    def _serving(self, agents: list[dict[str, Any]]) -> dict[str, str]:
        """Routing key -> agent type of every queue an agent's connection still consumes:
        live processes (which answer) and dead or cut-off hosts' lingering ones (which do
        not, :meth:`_answers`)."""
        want: dict[str, str] = {}
        with self._lock:
            for agent in agents:
                state = self._states.get(str(agent["id"]), AgentState.RUNNING)
                if state in SERVING or state in HOLDING:
                    for key in agent_queues(str(agent["agent_type"]), str(agent["host"])):
                        want[key] = str(agent["agent_type"])
        return want

    def _answers(self, routing_key: str) -> bool:
        """Bus thread, per request: does the agent consuming ``routing_key`` answer now?"""
        for agent in self.cloud.agents():
            if routing_key in agent_queues(str(agent["agent_type"]), str(agent["host"])):
                with self._lock:
                    state = self._states.get(str(agent["id"]), AgentState.RUNNING)
                return state in SERVING
        return False

    def _reply(self, producer: Any, reply: dict[str, Any], reply_q: str) -> None:
        """An agent's answer: to the default exchange, routing key = the caller's reply
        queue (oslo's ``direct_send``; not ``mandatory`` here: a caller gone is no error)."""
        producer.publish(
            wire.envelope(reply),
            exchange=DEFAULT_EXCHANGE,
            routing_key=reply_q,
            headers={},
            retry=False,
            **wire.BASE_PROPERTIES,
        )

    def _cleanup(self, channel: Any) -> None:
        if self.exchange_name == "neutron":
            return  # the real fanout exchanges are Neutron's
        for name in self._fanouts:
            try:
                kombu.Exchange(name, type="fanout")(channel).delete()
            except Exception:  # best effort on the way out
                logger.debug("sim bus: could not delete %s", name)

    def _on_message(self, message: Any) -> None:
        try:
            inner = wire.decode(message.body)
            if inner and inner.get("method") == "report_state":
                state = inner["args"]["agent_state"]["agent_state"]
                self.cloud.heartbeat(str(state["host"]), str(state["agent_type"]), state=state)
                with self._lock:
                    self.received += 1
        except Exception:
            logger.exception("sim bus: could not handle a message on %s", self.queue_name)
        finally:
            message.ack()

    def _heartbeats(self, producer: Any, agents: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for agent in agents:
            agent_id = str(agent["id"])
            with self._lock:
                if self._states.get(agent_id, AgentState.RUNNING) is not AgentState.RUNNING:
                    continue
                due = self._due.get(agent_id)
                if due is None:  # a new agent: it starts now
                    self._start_flag.setdefault(agent_id, True)
                    due = 0.0
                if due > now:
                    continue
                start_flag = self._start_flag.pop(agent_id, False)
                spread = self._random.uniform(-self.jitter, self.jitter)
                self._due[agent_id] = now + self.report_interval * (1.0 + spread)
            message = wire.report_state(
                wire.agent_state_of(agent),
                now=time.time(),
                reply_q=self._reply_q,
                start_flag=start_flag,
            )
            producer.publish(
                wire.envelope(message),
                routing_key=wire.REPORT_STATE_TOPIC,
                expiration=self.report_interval,
                headers={},
                retry=False,
                **wire.BASE_PROPERTIES,
            )
            with self._lock:
                self.sent += 1

    def _flush(self, producer: Any, channel: Any) -> None:
        while True:
            try:
                event = self._outbox.get_nowait()
            except queue.Empty:
                return
            now = time.time()
            extra: dict[str, Any] = {}
            exchange: Any = None
            if event.kind == "notification":
                body = wire.notification(
                    event.event_type,
                    event.payload,
                    now=now,
                    publisher_id=f"{event.publisher}.{SERVER_HOST}",
                )
                routing_key = wire.NOTIFICATION_TOPIC
            elif event.kind == "fanout":
                body = wire.rpc_message(
                    event.method, event.args, now=now, project_id="fake_project_id"
                )
                name = f"{event.topic}_fanout"
                if self.exchange_name != "neutron":
                    name = f"{self.exchange_name}.{name}"
                exchange = kombu.Exchange(name, type="fanout", durable=False, auto_delete=True)
                if name not in self._fanouts:
                    exchange(channel).declare()
                    self._fanouts.add(name)
                routing_key = ""
            else:
                call = event.kind == "call"
                body = wire.rpc_message(
                    event.method, event.args, now=now, call=call, project_id="fake_project_id"
                )
                routing_key = event.topic
                if call:
                    extra["expiration"] = self.cloud.rpc_response_timeout
            publish_kwargs: dict[str, Any] = {
                "routing_key": routing_key,
                "headers": {},
                "retry": False,
            }
            if exchange is not None:
                publish_kwargs["exchange"] = exchange
            producer.publish(wire.envelope(body), **publish_kwargs, **extra, **wire.BASE_PROPERTIES)
