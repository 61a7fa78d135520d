"""The simulated agents' own RPC servers: what answers a call to ``<topic>.<host>``.

A live neutron agent process runs an oslo.messaging RPC server: it consumes its host's queue
of each of its topics on the control exchange, acks every request on receipt, and answers
every *call* (a message with ``_msg_id`` and ``_reply_q``), including a call of a method it
does not have. The dispatcher (oslo_messaging/rpc/dispatcher.py) picks the endpoints whose
target version is compatible (same major, minor at least the caller's); a method none of them
has, or a private one (a ``_`` name: the default access policy never dispatches it), is
answered with the remote exception ``NoSuchMethod``; no compatible endpoint at all gives
``UnsupportedVersion``. The answer goes to the default exchange with the caller's ``_reply_q``
as routing key. A dead process answers nothing and its queue keeps what it is sent (the
queue is neither exclusive nor auto-deleted) until the messages expire.

rpcdaemon's node-death probe relies on exactly that (adapters/probe.py): a live agent answers
its call at once, a dead host's queue does not. :func:`answer` is the pure dispatcher;
:class:`AgentServers` runs the consumers on the bus thread's connection (:mod:`.agents`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from rpcdaemon.sim import wire
from rpcdaemon.sim.resources import DHCP_AGENT, L3_AGENT, OVS_AGENT

logger = logging.getLogger(__name__)

QUEUE_EXPIRES = 300.0
"""Seconds an agent queue of a private exchange outlives its last consumer (``x-expires``):
the net under a simulator that died without deleting its queues."""


@dataclass(frozen=True)
class Endpoint:
    """One agent type's RPC server: its topics (one ``<topic>.<host>`` queue each), its
    target version and the methods it has."""

    topics: tuple[str, ...]
    version: str
    methods: frozenset[str]


ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType(
    {
        # neutron/agent/l3/agent.py L3NATAgent (target 1.4 and later minors)
        L3_AGENT: Endpoint(
            ("l3_agent",),
            "1.4",
            frozenset(
                {
                    "router_deleted",
                    "routers_updated",
                    "router_removed_from_agent",
                    "router_added_to_agent",
                    "network_update",
                    "fipnamespace_delete_on_ext_net",
                }
            ),
        ),
        # neutron/agent/dhcp/agent.py DhcpAgentWithStateReport
        DHCP_AGENT: Endpoint(
            ("dhcp_agent",),
            "1.0",
            frozenset(
                {
                    "network_create_end",
                    "network_update_end",
                    "network_delete_end",
                    "subnet_create_end",
                    "subnet_update_end",
                    "subnet_delete_end",
                    "port_create_end",
                    "port_update_end",
                    "port_delete_end",
                    "agent_updated",
                }
            ),
        ),
        # the Open vSwitch agent always creates its tunnel update/delete and DVR consumers
        OVS_AGENT: Endpoint(
            (
                "q-agent-notifier-tunnel-update",
                "q-agent-notifier-tunnel-delete",
                "q-agent-notifier-dvr-update",
            ),
            "1.7",
            frozenset({"tunnel_update", "tunnel_delete", "network_update", "port_delete"}),
        ),
        # the metadata agent runs no RPC server: nothing to consume, nothing answers
    }
)


def agent_queues(agent_type: str, host: str) -> tuple[str, ...]:
    """The ``<topic>.<host>`` routing keys a live agent of this type consumes."""
    endpoint = ENDPOINTS.get(agent_type)
    return () if endpoint is None else tuple(f"{t}.{host}" for t in endpoint.topics)


def _compatible(have: str, want: str) -> bool:
    """oslo's ``version_is_compatible``: same major, our minor at least the caller's."""
    try:
        have_major, have_minor = (int(x) for x in (have.split(".") + ["0"])[:2])
        want_major, want_minor = (int(x) for x in (want.split(".") + ["0"])[:2])
    except ValueError:
        return False
    return have_major == want_major and have_minor >= want_minor


def answer(agent_type: str, message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reply an agent of ``agent_type`` sends for ``message`` (None: a cast, or not an
    RPC message). A method it has answers ``None``; see the module docstring for the rest."""
    msg_id, reply_q = message.get("_msg_id"), message.get("_reply_q")
    if not isinstance(msg_id, str) or not isinstance(reply_q, str) or not reply_q:
        return None
    endpoint = ENDPOINTS.get(agent_type)
    method = str(message.get("method", ""))
    version = str(message.get("version") or "1.0")
    if endpoint is None or not _compatible(endpoint.version, version):
        text = f"Endpoint does not support RPC version {version}. Attempted method: {method}"
        return wire.rpc_reply(msg_id, failure=wire.remote_failure("UnsupportedVersion", text))
    if method.startswith("_") or method not in endpoint.methods:
        text = f"Endpoint does not support RPC method {method}"
        return wire.rpc_reply(msg_id, failure=wire.remote_failure("NoSuchMethod", text))
    return wire.rpc_reply(msg_id)


class AgentServers:
    """The consumers of the live agents' queues, on the bus thread's connection (kombu is
    not thread-safe: every method runs on that thread).

    ``sync(want)`` makes the consumed queues exactly ``want`` (routing key -> agent type): a
    queue no longer wanted has its consumer cancelled (the queue stays, as a dead agent's
    does); a new one is declared, bound and consumed. ``answering(routing_key)``, asked per
    request, says whether the consumer answers; one that does not takes requests and drops
    them: a dead host's connection the broker has not timed out yet. ``publish(body,
    routing_key)`` sends a reply to the default exchange.
    """

    def __init__(
        self,
        kombu: Any,
        channel: Any,
        exchange: Any,
        publish: Callable[[dict[str, Any], str], None],
        *,
        private: bool,
        answering: Callable[[str], bool] = lambda routing_key: True,
    ) -> None:
        self._kombu = kombu
        self._channel = channel
        self._exchange = exchange
        self._publish = publish
        self._private = private
        self._consumers: dict[str, Any] = {}
        self._answering = answering  # asked per request: the state may change before a sync
        self.declared: set[str] = set()  # queue names, for the clean-up at the end
        self.calls = 0  # requests answered
        self.casts = 0  # messages taken without an answer

    def queue_name(self, routing_key: str) -> str:
        """Neutron's name: the routing key (rpcdaemon's probe reads the broker's consumer
        count on it). On a private exchange (tests, the demo) the queue expires when unused
        and is deleted on the way out; simulations sharing a broker must use other hosts."""
        return routing_key

    def sync(self, want: Mapping[str, str]) -> None:
        for key in [k for k in self._consumers if k not in want]:
            consumer = self._consumers.pop(key)
            consumer.cancel()
            logger.debug("sim bus: stopped consuming %s", key)
        for key, agent_type in want.items():
            if key in self._consumers:
                continue
            kombu = self._kombu
            queue = kombu.Queue(
                self.queue_name(key),
                exchange=self._exchange,
                routing_key=key,
                durable=False,
                auto_delete=False,
                expires=QUEUE_EXPIRES if self._private else None,
            )
            consumer = kombu.Consumer(
                self._channel, queues=[queue], on_message=self._handler(agent_type, key)
            )
            consumer.consume()
            self._consumers[key] = consumer
            self.declared.add(queue.name)
            logger.debug("sim bus: consuming %s as a %s", key, agent_type)

    def delete_queues(self) -> None:
        """Best effort, on the way out (private exchanges only: Neutron's queues are not
        ours to delete)."""
        if not self._private:
            return
        for name in self.declared:
            try:
                self._kombu.Queue(name)(self._channel).delete()
            except Exception:  # the broker may be gone: x-expires is the net
                logger.debug("sim bus: could not delete %s", name)

    def _handler(self, agent_type: str, routing_key: str) -> Callable[[Any], None]:
        def handle(message: Any) -> None:
            message.ack()  # oslo acks a request before dispatching it
            if not self._answering(routing_key):
                return  # a dead host's lingering connection: taken, never answered
            inner = wire.decode(message.body)
            reply = answer(agent_type, inner) if inner is not None else None
            if reply is None or inner is None:
                self.casts += 1
                return
            try:
                self._publish(reply, str(inner["_reply_q"]))
                self.calls += 1
            except Exception:  # a reply that cannot be sent: the caller times out
                logger.exception("sim bus: could not answer a call on %s", routing_key)

        return handle
