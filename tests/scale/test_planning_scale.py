"""Issue 11: planning cost is linear (counts, never times).

The planners compute the targets of each class of resource once per pass (not per router or
network), pick the least loaded from a heap (not a sort per resource), and agree with the
per-resource definitions (``router_targets``, ``network_targets``, ``LoadTracker.ranked``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcdaemon.core import placement
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.placement import (
    Candidates,
    LoadTracker,
    Targets,
    network_targets,
    router_targets,
)
from rpcdaemon.core.policy import Policy
from rpcdaemon.core.view import ClusterView
from rpcdaemon.plugins.dhcpagent import plan_networks
from rpcdaemon.plugins.l3agent import plan_routers
from rpcdaemon.testing import make_agent, make_dhcp_agent, make_network, make_router, make_view
from tests.unit.core.strategies import dhcp_scenarios, l3_scenarios

POLICY = Policy(max_dead_fraction=1.0, max_moves_per_pass=10**9)
ZONE_HINTS = [(), ("az1",), ("az2",)]


def l3_cloud(routers: int, agents: int) -> tuple[ClusterView, dict[AgentId, Liveness]]:
    """``routers`` legacy/distributed routers over three AZ-hint classes; every tenth agent
    dead (and a dvr_snat agent in each zone, so that distributed routers have targets)."""
    view = make_view(
        agents=[
            make_agent(
                f"l3-{i:04d}",
                availability_zone=f"az{1 + i % 2}",
                agent_mode="dvr_snat" if i % 3 == 0 else "legacy",
            )
            for i in range(agents)
        ],
        routers=[
            make_router(
                f"r-{i:06d}", distributed=i % 7 == 0, availability_zone_hints=ZONE_HINTS[i % 3]
            )
            for i in range(routers)
        ],
        router_bindings={f"r-{i:06d}": [f"l3-{i % agents:04d}"] for i in range(routers)},
    )
    verdicts = {a: Liveness.DEAD if int(a[3:]) % 10 == 0 else Liveness.ALIVE for a in view.agents}
    return view, verdicts


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of ``placement.<name>`` (the real function still runs)."""
    calls = [0]
    real: Callable[..., Any] = getattr(placement, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(placement, name, counted)
    return calls


@pytest.mark.parametrize("routers", [600, 6_000])
def test_l3_plan_checks_each_agent_once_per_class_not_per_router(
    monkeypatch: pytest.MonkeyPatch, routers: int
) -> None:
    agents = 60
    view, verdicts = l3_cloud(routers, agents)
    calls = counting(monkeypatch, "can_host_router")
    plan = plan_routers(view, verdicts, POLICY)
    moved = 0  # routers on a dead agent that carries them (distributed: dvr_snat only)
    for router_id, bound in view.router_bindings.items():
        agent = int(next(iter(bound))[3:])
        if agent % 10 == 0 and (not view.routers[router_id].distributed or agent % 3 == 0):
            moved += 1
    assert len(plan.tasks) == moved and not plan.held  # every one of them moves
    classes = 2 * len(ZONE_HINTS)  # distributed or not, x hints
    live = sum(1 for v in verdicts.values() if v is Liveness.ALIVE)
    assert 0 < calls[0] <= classes * live  # the same count at 600 and 6,000 routers


def per_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the planners use the per-resource definitions: targets scanned for each router
    or network, handed over as a list (``LoadTracker.place`` then sorts, as before)."""
    monkeypatch.setattr(
        Targets, "for_router", lambda self, r: list(router_targets(self._view, self._verdicts, r))
    )
    monkeypatch.setattr(
        Targets, "for_network", lambda self, n: list(network_targets(self._view, self._verdicts, n))
    )


def test_l3_plan_equals_the_per_router_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    view, verdicts = l3_cloud(3_000, 40)
    ha = make_view(
        agents=view.agents.values(),
        routers=[
            make_router(f"ha-{i}", ha=True, availability_zone_hints=ZONE_HINTS[i % 3])
            for i in range(300)
        ],
        router_bindings={
            f"ha-{i}": [f"l3-{i % 40:04d}", f"l3-{(i + 1) % 40:04d}"] for i in range(300)
        },
    )
    policy = Policy(max_dead_fraction=1.0, max_moves_per_pass=10**9, restore_ha_redundancy=True)
    fast = (plan_routers(view, verdicts, policy), plan_routers(ha, verdicts, policy))
    per_resource(monkeypatch)
    slow = (plan_routers(view, verdicts, policy), plan_routers(ha, verdicts, policy))
    assert fast == slow and fast[0].tasks and fast[1].tasks


def test_dhcp_plan_equals_the_per_network_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    agents = [
        make_dhcp_agent(f"dhcp-{i:02d}", availability_zone=f"az{1 + i % 2}") for i in range(12)
    ]
    ids = [a.id for a in agents]
    view = make_view(
        agents=agents,
        networks=[
            make_network(f"n-{i:05d}", availability_zone_hints=ZONE_HINTS[i % 3])
            for i in range(2_000)
        ],
        network_bindings={f"n-{i:05d}": ids[i % 5 : i % 5 + i % 3] for i in range(2_000)},
    )
    verdicts = {a: Liveness.ALIVE for a in view.agents}
    verdicts[AgentId("dhcp-01")] = Liveness.DEAD
    policies = [Policy(max_dead_fraction=1.0, dhcp_agents_per_network=n) for n in (None, 1, 3)]
    fast = [plan_networks(view, verdicts, p) for p in policies]
    per_resource(monkeypatch)
    slow = [plan_networks(view, verdicts, p) for p in policies]
    assert fast == slow and all(p.tasks for p in fast)


def test_dhcp_plan_checks_each_agent_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    agents = [
        make_dhcp_agent(f"dhcp-{i:02d}", availability_zone=f"az{1 + i % 2}") for i in range(20)
    ]
    ids = [a.id for a in agents]
    view = make_view(
        agents=agents,
        networks=[
            make_network(f"n-{i:05d}", availability_zone_hints=ZONE_HINTS[i % 3])
            for i in range(5_000)
        ],
        network_bindings={f"n-{i:05d}": ids[: 1 + i % 3] for i in range(5_000)},
    )
    verdicts = {a: Liveness.ALIVE for a in view.agents}
    verdicts[AgentId("dhcp-00")] = Liveness.DEAD
    calls = counting(monkeypatch, "can_host_network")
    ranked = [0]
    real_ranked = LoadTracker.ranked

    def counted_ranked(self: LoadTracker, *args: Any, **kwargs: Any) -> Any:
        ranked[0] += 1
        return real_ranked(self, *args, **kwargs)

    monkeypatch.setattr(LoadTracker, "ranked", counted_ranked)
    plan = plan_networks(view, verdicts, POLICY)  # the 2014 policy: every live agent
    assert len(plan.tasks) > 5_000
    assert 0 < calls[0] <= len(ZONE_HINTS) * 19
    assert ranked[0] == 0  # every live agent is wanted: nothing is ranked
    capped = plan_networks(view, verdicts, Policy(max_dead_fraction=1.0, dhcp_agents_per_network=2))
    assert capped.tasks and ranked[0] == 0  # N per network: picked from a heap, no sort


@settings(max_examples=100, deadline=None)
@given(l3_scenarios())
def test_router_targets_per_class_equal_targets_per_router(scenario: Any) -> None:
    targets = Targets(scenario.view, scenario.verdicts)
    for router in scenario.view.routers.values():
        assert targets.for_router(router) == router_targets(
            scenario.view, scenario.verdicts, router
        )


@settings(max_examples=100, deadline=None)
@given(dhcp_scenarios())
def test_network_targets_per_class_equal_targets_per_network(scenario: Any) -> None:
    targets = Targets(scenario.view, scenario.verdicts)
    for network in scenario.view.networks.values():
        expected = network_targets(scenario.view, scenario.verdicts, network)
        assert targets.for_network(network) == expected


OPS = st.lists(
    st.tuples(
        st.sampled_from(["place", "place", "add", "remove"]), st.integers(0, 7), st.integers(0, 2)
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=8, max_size=8), OPS)
def test_heap_placement_equals_ranking_after_any_changes(loads: list[int], ops: list) -> None:
    agents = [make_agent(f"a{i}", host=f"h{(i * 5) % 8}") for i in range(8)]
    classes = (Candidates(agents[:5]), Candidates(agents[3:]), Candidates(agents))
    heap = LoadTracker({a.id: n for a, n in zip(agents, loads, strict=True)})
    sort = LoadTracker(dict(heap.counts))
    for op, i, which in ops:
        agent_id = agents[i].id
        if op == "add":
            heap.add(agent_id)
            sort.add(agent_id)
        elif op == "remove":
            heap.remove(agent_id)
            sort.remove(agent_id)
        else:
            exclude = {agent_id}
            expected = sort.ranked(classes[which], exclude=exclude)
            got = heap.place(classes[which], exclude=exclude)
            assert got == (expected[0] if expected else None)
            if got is not None:
                sort.add(got.id)
        assert heap.counts == sort.counts
