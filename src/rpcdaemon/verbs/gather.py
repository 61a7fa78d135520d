"""Getting the status model: from the running daemon's ``/status``, else from the Neutron
API alone, optionally judged by ``listen`` seconds of heartbeats heard on the bus.

Without a daemon, an agent's verdict is: heard on the bus during the listening window ->
alive; not heard and Neutron says not alive -> dead; not heard but Neutron says alive ->
unknown (one report interval is too short to call it dead); with no listening, Neutron's
``alive`` flag. Heartbeat ages then come from Neutron's ``heartbeat_timestamp`` (the
server's clock, UTC) when not heard on the bus.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from rpcdaemon.adapters.amqp import BusConsumer, QueueSpec, private_queue_name
from rpcdaemon.adapters.codec import heartbeat_from
from rpcdaemon.core.binding import Binding
from rpcdaemon.core.errors import ConfigError, RpcdaemonError
from rpcdaemon.core.events import BusMessage
from rpcdaemon.core.ids import AgentId, AgentType, Liveness
from rpcdaemon.core.statusmodel import (
    SOURCE_API,
    SOURCE_API_BUS,
    ClusterStatus,
    PauseState,
    build,
)
from rpcdaemon.core.view import ClusterView
from rpcdaemon.verbs.common import (
    EXIT_FAILED,
    Context,
    DaemonUnreachable,
    VerbError,
    api_verdicts,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Gathered:
    status: ClusterStatus
    daemon_error: str | None = None  # a configured daemon that did not answer
    view: ClusterView | None = None  # set when read from the API


def gather(
    ctx: Context,
    *,
    use_daemon: bool = True,
    require_daemon: bool = False,
    listen: float = 0.0,
    wall: Clock = time.time,
) -> Gathered:
    """The daemon's status when it answers; else the API's (``daemon_error`` says why).
    ``require_daemon``: a daemon that does not answer is a VerbError (exit 2)."""
    error: str | None = None
    if use_daemon and ctx.daemon is not None:
        try:
            return Gathered(ctx.fetch_status())
        except DaemonUnreachable as exc:
            if require_daemon:
                raise
            error = str(exc)
            logger.info("the daemon does not answer (%s): reading the Neutron API", exc)
    elif require_daemon:
        raise DaemonUnreachable("no daemon address: set [Daemon] metrics_address or --daemon")
    view = read_view(ctx)
    heard: dict[tuple[str, str], float] = {}
    if listen > 0:
        print(
            f"rpcdaemon: no daemon to ask: listening to heartbeats for {listen:g} s "
            "(--listen 0 to use Neutron's alive flag only)",
            file=sys.stderr,
        )
        heard = listen_for(ctx, listen)
    status = from_api(ctx, view, heard=heard, listened=listen, wall=wall())
    return Gathered(status, error, view)


def read_view(ctx: Context) -> ClusterView:
    try:
        return ctx.neutron().snapshot()
    except ConfigError:
        raise  # credentials or cloud name: a configuration error (exit 2)
    except RpcdaemonError as exc:
        raise VerbError(f"cannot read the Neutron API: {exc}", status=EXIT_FAILED) from exc


def from_api(
    ctx: Context,
    view: ClusterView,
    *,
    heard: dict[tuple[str, str], float],
    listened: float,
    wall: float,
) -> ClusterStatus:
    notes: list[str] = []
    if listened > 0:
        verdicts: dict[AgentId, Liveness] = {}
        for agent in view.agents.values():
            if (agent.agent_type, agent.host) in heard:
                verdicts[agent.id] = Liveness.ALIVE
            elif agent.alive:
                verdicts[agent.id] = Liveness.UNKNOWN
            else:
                verdicts[agent.id] = Liveness.DEAD
        notes.append(f"judged by {listened:g}s of listening on the bus and Neutron's alive flag")
        source = SOURCE_API_BUS
    else:
        verdicts = api_verdicts(view)
        notes.append("judged by Neutron's alive flag (no daemon, no listening)")
        source = SOURCE_API
    ages: dict[AgentId, float] = {}
    for agent in view.agents.values():
        key = (agent.agent_type, agent.host)
        if key in heard:
            ages[agent.id] = heard[key]
        else:
            age = timestamp_age(agent.heartbeat_timestamp, wall)
            if age is not None:
                ages[agent.id] = age
    pause: PauseState | None = None
    try:
        store = ctx.pause_store()
        pause = store.get()
    except RpcdaemonError as exc:  # the coordination backend cannot be reached
        notes.append(
            f"pause state unreadable ({exc}): not known here; a running daemon keeps the "
            "last state it read (a backend that is down neither pauses nor resumes it)"
        )
    return build(
        view,
        verdicts,
        source=source,
        heartbeat_ages=ages,
        dhcp_agents_per_network=ctx.dhcp_agents_per_network,
        pause=pause,
        notes=notes,
    )


def timestamp_age(stamp: str | None, wall: float) -> float | None:
    """Seconds since Neutron's ``heartbeat_timestamp`` (``2026-12-02 07:10:09``, UTC)."""
    if not stamp:
        return None
    text = stamp.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            when = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        return max(0.0, wall - when.timestamp())
    return None


def listen_for(ctx: Context, seconds: float) -> dict[tuple[str, str], float]:
    """Heartbeats heard in ``seconds`` on our own private queue: (agent_type, host) ->
    seconds since the latest one, at the end of the window."""
    settings = ctx.settings
    bindings: list[Binding] = []
    for section in (settings.l3, settings.dhcp):
        if section is not None:
            bindings.extend(Binding(section.exchange, key) for key in section.routing_keys)
    if not bindings:
        return {}
    last: dict[tuple[str, str], float] = {}
    lock = threading.Lock()
    wanted = {AgentType.L3.value, AgentType.DHCP.value}

    def on_message(message: BusMessage) -> None:
        heartbeat = heartbeat_from(message, received_wall=time.time())
        if heartbeat is not None and heartbeat.agent_type in wanted:
            with lock:
                last[(heartbeat.agent_type, heartbeat.host)] = heartbeat.received_at

    spec = QueueSpec(
        name=private_queue_name("status"),
        bindings=tuple(dict.fromkeys(bindings)),
        expires=max(60.0, seconds * 2),
        handler=on_message,
        exclusive=True,
    )
    connected = threading.Event()
    consumer = BusConsumer(
        settings.daemon.amqp_url,
        [spec],
        on_connection_change=lambda up: connected.set() if up else None,
    )
    thread = threading.Thread(target=consumer.run, name="rpcdaemon-status-listen", daemon=True)
    thread.start()
    try:
        if not connected.wait(min(10.0, seconds + 5.0)):
            raise VerbError("cannot listen on the bus: no connection within 10 s", EXIT_FAILED)
        logger.info("listening on the bus for %gs", seconds)
        time.sleep(seconds)
    finally:
        consumer.stop()
        thread.join(5.0)
    end = time.monotonic()
    with lock:
        return {k: max(0.0, end - v) for k, v in last.items()}
