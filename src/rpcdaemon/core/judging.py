"""One agent's heartbeat-clock judgement and its verdict: the rules of
:mod:`rpcdaemon.core.liveness` (see its module docstring for the table), as pure functions of
a record, the policy, our bus state and ``now``."""

from __future__ import annotations

from rpcdaemon.core.busstate import BusState
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.records import AgentRecord, Judgement
from rpcdaemon.core.view import AgentInfo, ClusterView


def deadline(record: AgentRecord, policy: Policy, *, hosted_networks: int = 0) -> float:
    """Monotonic time after which ``record``'s agent is stale by our clock."""
    due = record.last_seen + policy.agent_down_time
    if record.started_at is not None:
        # the larger of Neutron's bindings (what agent_starting_up counts) and the agent's
        # own report (all there is before the first snapshot). A forged report can stretch
        # this, but whoever can publish report_state can keep any agent alive anyway: the
        # bus permissions are the trust boundary (README, "Who may publish on the bus").
        networks = max(hosted_networks, record.reported_networks)
        grace = policy.startup_grace_per_network * networks
        due = max(due, record.started_at + policy.agent_down_time + grace)
    return due


def judge(
    record: AgentRecord | None,
    *,
    now: float,
    policy: Policy,
    bus: BusState,
    hosted_networks: int = 0,
) -> Judgement:
    """The heartbeat-clock judgement of one agent (``record`` None: never heard of)."""
    if record is not None and now <= deadline(record, policy, hosted_networks=hosted_networks):
        return Judgement(Liveness.ALIVE, f"heartbeat {now - record.last_seen:.1f}s ago")
    if not bus.connected:
        return Judgement(Liveness.UNKNOWN, "bus disconnected: not judging by our clock")
    if bus.lagging:
        behind = bus.lag.seconds if bus.lag is not None else 0.0
        return Judgement(
            Liveness.UNKNOWN, f"our consumer lags {behind:.0f}s behind: not judging by our clock"
        )
    if bus.rejoining:
        return Judgement(
            Liveness.UNKNOWN, "waiting for the agents to come back after our reconnect"
        )
    listened = bus.listened_for(now)
    if bus.listening_since is None or listened < policy.agent_down_time:
        return Judgement(
            Liveness.UNKNOWN,
            f"listening for {listened:.0f}s of {policy.agent_down_time:.0f}s since (re)connect",
        )
    if record is None:
        return Judgement(
            Liveness.DEAD, f"no heartbeat in the {listened:.0f}s we have been listening"
        )
    return Judgement(
        Liveness.DEAD,
        f"no heartbeat for {now - record.last_seen:.1f}s "
        f"(agent_down_time {policy.agent_down_time:.0f}s)",
    )


def silent_liveness(now: float, policy: Policy, bus: BusState) -> Liveness:
    """What :func:`judge` says of an agent whose deadline passed (or never heard of): DEAD
    only while connected, not lagging and past the listening window; else UNKNOWN."""
    if not bus.connected or bus.lagging or bus.listening_since is None:
        return Liveness.UNKNOWN
    if bus.listened_for(now) < policy.agent_down_time:
        return Liveness.UNKNOWN
    return Liveness.DEAD


def combine(heartbeat: Judgement, agent: AgentInfo, policy: Policy) -> Judgement:
    """The verdict from the heartbeat clock and the API's ``alive`` (see the module table)."""
    api = "alive" if agent.alive else "not alive"
    if heartbeat.liveness is Liveness.ALIVE:
        return heartbeat
    if heartbeat.liveness is Liveness.UNKNOWN:
        if agent.alive:
            return Judgement(Liveness.ALIVE, f"API says alive; {heartbeat.reason}")
        return Judgement(Liveness.UNKNOWN, f"API says not alive; {heartbeat.reason}")
    if agent.alive and policy.confirm_with_api:
        return Judgement(Liveness.UNKNOWN, f"{heartbeat.reason}, but the API says alive")
    return Judgement(Liveness.DEAD, f"{heartbeat.reason}; API says {api}")


def hosted_network_counts(view: ClusterView) -> dict[AgentId, int]:
    """Networks bound to each agent in ``view``, in one pass over the bindings."""
    counts: dict[AgentId, int] = {}
    for agents in view.network_bindings.values():
        for agent_id in agents:
            counts[agent_id] = counts.get(agent_id, 0) + 1
    return counts
