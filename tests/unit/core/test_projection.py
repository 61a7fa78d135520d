"""apply_plan: the bindings a plan leaves behind."""

from __future__ import annotations

from rpcdaemon.core.actions import (
    Plan,
    Task,
    add_network,
    add_router,
    remove_network,
    remove_router,
)
from rpcdaemon.core.ids import AgentId, NetworkId, RouterId
from rpcdaemon.core.projection import apply_plan
from rpcdaemon.testing import make_agent, make_dhcp_agent, make_network, make_router, make_view

R1, N1, N2 = RouterId("r1"), NetworkId("n1"), NetworkId("n2")
A, B = AgentId("a"), AgentId("b")


def test_router_move_and_network_changes() -> None:
    view = make_view(
        agents=[make_agent("a"), make_agent("b"), make_dhcp_agent("d")],
        routers=[make_router("r1")],
        networks=[make_network("n1")],
        router_bindings={"r1": ["a"]},
        network_bindings={"n1": ["a"], "n2": ["b"]},
        taken_at=12.5,
    )
    plan = Plan(
        "test",
        (
            Task((remove_router(R1, A, "x"), add_router(R1, B, "x")), "x", A),
            Task((add_network(N1, B, "x"),), "x"),
            Task((remove_network(N2, B, "x"),), "x"),
        ),
        held=("not an action",),
    )
    after = apply_plan(view, plan)
    assert after.router_bindings == {R1: frozenset({B})}
    assert after.network_bindings == {N1: frozenset({A, B})}  # n2 lost its last agent
    assert (after.agents, after.routers, after.networks, after.taken_at) == (
        view.agents,
        view.routers,
        view.networks,
        12.5,
    )
    assert view.router_bindings == {R1: frozenset({A})}  # the input is untouched


def test_actions_are_idempotent_like_neutron() -> None:
    view = make_view(router_bindings={"r1": ["a"]})
    plan = Plan(
        "test",
        (
            Task((add_router(R1, A, "x"), remove_router(R1, B, "x")), "x"),
            Task((remove_network(N1, A, "x"),), "x"),
        ),
    )
    assert apply_plan(view, plan) == view


def test_empty_plan_is_identity() -> None:
    view = make_view(router_bindings={"r1": ["a"]}, network_bindings={"n1": ["a"]})
    assert apply_plan(view, Plan("test")) == view
