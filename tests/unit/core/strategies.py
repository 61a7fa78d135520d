"""Hypothesis strategies: small, messy clusters (every mode, AZ, admin state and verdict)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from rpcdaemon.core.ids import AgentId, AgentMode, Liveness
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import AgentInfo, ClusterView
from rpcdaemon.testing import make_agent, make_dhcp_agent, make_network, make_router, make_view

ZONES = ("az1", "az2")
HINTS = st.sampled_from([(), (), ("az1",), ("az2",), ("az1", "az2"), ("az9",)])
AGENT_ZONES = st.sampled_from(["az1", "az2", None])
MODES = st.sampled_from([m.value for m in AgentMode])
VERDICTS = st.sampled_from(list(Liveness))


@dataclass(frozen=True)
class Scenario:
    view: ClusterView
    verdicts: dict[AgentId, Liveness]


@st.composite
def _agents(draw: st.DrawFn, *, dhcp: bool, prefix: str, max_size: int) -> list[AgentInfo]:
    count = draw(st.integers(min_value=1, max_value=max_size))
    built = []
    for i in range(count):
        kwargs = {
            "host": f"{prefix}-host{i}",
            "admin_state_up": draw(st.booleans()),
            "alive": draw(st.booleans()),
            "availability_zone": draw(AGENT_ZONES),
        }
        if dhcp:
            built.append(make_dhcp_agent(f"{prefix}{i}", **kwargs))
        else:
            built.append(make_agent(f"{prefix}{i}", agent_mode=draw(MODES), **kwargs))
    return built


@st.composite
def l3_scenarios(draw: st.DrawFn) -> Scenario:
    l3 = draw(_agents(dhcp=False, prefix="l3-", max_size=6))
    others = draw(_agents(dhcp=True, prefix="dhcp-", max_size=2))
    routers = [
        make_router(
            f"r{i:02d}",
            ha=draw(st.booleans()),
            distributed=draw(st.booleans()),
            availability_zone_hints=draw(HINTS),
        )
        for i in range(draw(st.integers(min_value=0, max_value=8)))
    ]
    ids = [a.id for a in l3]
    bindings = {
        r.id: draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)) for r in routers
    }
    view = make_view(agents=[*l3, *others], routers=routers, router_bindings=bindings)
    verdicts = {a: draw(VERDICTS) for a in view.agents}
    return Scenario(view, verdicts)


@st.composite
def dhcp_scenarios(draw: st.DrawFn) -> Scenario:
    dhcp = draw(_agents(dhcp=True, prefix="dhcp-", max_size=6))
    others = draw(_agents(dhcp=False, prefix="l3-", max_size=2))
    networks = [
        make_network(
            f"n{i:02d}",
            dhcp_enabled=draw(st.booleans()),
            availability_zone_hints=draw(HINTS),
        )
        for i in range(draw(st.integers(min_value=0, max_value=8)))
    ]
    ids = [a.id for a in dhcp]
    bound_ids = [n.id for n in networks] + draw(
        st.lists(st.sampled_from(["gone1", "gone2"]), max_size=2, unique=True)
    )
    bindings = {n: draw(st.lists(st.sampled_from(ids), max_size=4, unique=True)) for n in bound_ids}
    view = make_view(agents=[*dhcp, *others], networks=networks, network_bindings=bindings)
    verdicts = {a: draw(VERDICTS) for a in view.agents}
    return Scenario(view, verdicts)


def unguarded(
    *, restore_ha_redundancy: bool = False, dhcp_agents_per_network: int | None = None
) -> Policy:
    """A policy whose breaker and cap never interfere (for convergence properties)."""
    return Policy(
        max_dead_fraction=1.0,
        max_moves_per_pass=10_000,
        restore_ha_redundancy=restore_ha_redundancy,
        dhcp_agents_per_network=dhcp_agents_per_network,
    )


policies = st.builds(
    unguarded,
    restore_ha_redundancy=st.booleans(),
    dhcp_agents_per_network=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
)
