"""What the daemon relies on from Neutron's agent and agent-scheduler API, checked on every endpoint.

Each test runs against the simulator, and against a real Neutron when RPCDAEMON_NEUTRON_URL is set
(see conftest.py). The expected answers are those a real neutron 29 gave
(/work/shared/neutron-rig/REPORT.md section 3); docs/simulator.md lists the rules.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.contract.conftest import Neutron

GHOST = "11111111-2222-3333-4444-555555555555"


@contextmanager
def disabled(neutron: Neutron, agent_id: str) -> Iterator[None]:
    status, body = neutron.call("PUT", f"/agents/{agent_id}", {"agent": {"admin_state_up": False}})
    assert status == 200 and body["agent"]["admin_state_up"] is False
    try:
        yield
    finally:
        neutron.call("PUT", f"/agents/{agent_id}", {"agent": {"admin_state_up": True}})


def dead_agent(neutron: Neutron, agent_type: str) -> str:
    if neutron.make_dead is None:
        dead = neutron.dead_l3 if agent_type == "L3 agent" else neutron.dead_dhcp
        if not dead:
            pytest.skip("no dead agent named for the real Neutron")
        return dead
    query = urllib.parse.urlencode({"host": "net3", "agent_type": agent_type})
    _, body = neutron.call("GET", f"/agents?{query}")
    agent_id = str(body["agents"][0]["id"])
    neutron.make_dead(agent_id)
    _, body = neutron.call("GET", f"/agents/{agent_id}")
    assert body["agent"]["alive"] is False
    return agent_id


# -- agents list ---------------------------------------------------------------------------------


def test_agents_list_has_the_fields_the_daemon_reads(neutron: Neutron) -> None:
    status, body = neutron.call("GET", "/agents")
    assert status == 200
    agent = next(a for a in body["agents"] if a["id"] == neutron.l3[0])
    for key in (
        "agent_type",
        "host",
        "alive",
        "admin_state_up",
        "heartbeat_timestamp",
        "availability_zone",
    ):
        assert key in agent
    assert agent["configurations"]["agent_mode"] == "legacy"
    assert len(agent["heartbeat_timestamp"]) == len("2026-11-24 05:24:40")  # whole seconds


def test_agents_filters(neutron: Neutron) -> None:
    _, body = neutron.call("GET", "/agents?agent_type=L3%20agent")
    assert body["agents"] and {a["agent_type"] for a in body["agents"]} == {"L3 agent"}
    _, one = neutron.call("GET", f"/agents/{neutron.dhcp[0]}")
    host = one["agent"]["host"]
    _, body = neutron.call("GET", f"/agents?host={host}")
    assert body["agents"] and {a["host"] for a in body["agents"]} == {host}
    _, body = neutron.call("GET", "/agents?alive=true")
    assert body["agents"] and all(a["alive"] for a in body["agents"])
    with disabled(neutron, neutron.l3[1]):
        _, body = neutron.call("GET", "/agents?admin_state_up=false")
        assert neutron.l3[1] in {a["id"] for a in body["agents"]}
        assert all(a["admin_state_up"] is False for a in body["agents"])


def test_agents_fields(neutron: Neutron) -> None:
    _, body = neutron.call("GET", "/agents?fields=id&fields=alive")
    assert body["agents"] and all(set(a) == {"id", "alive"} for a in body["agents"])


def test_agents_pagination_follows_next_links(neutron: Neutron) -> None:
    _, everything = neutron.call("GET", "/agents")
    expected = {a["id"] for a in everything["agents"]}
    seen: list[str] = []
    path = "/agents?limit=2"
    for _ in range(50):
        status, body = neutron.call("GET", path)
        assert status == 200 and len(body["agents"]) <= 2
        seen += [a["id"] for a in body["agents"]]
        nxt = [link["href"] for link in body.get("agents_links", []) if link["rel"] == "next"]
        if not nxt:
            break
        split = urllib.parse.urlsplit(nxt[0])
        assert split.path.endswith("/v2.0/agents")
        path = f"/agents?{split.query}"
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_unknown_agent_is_404_agent_not_found(neutron: Neutron) -> None:
    status, body = neutron.call("GET", f"/agents/{GHOST}")
    assert status == 404 and neutron.error_type(body) == "AgentNotFound"


# -- L3 --------------------------------------------------------------------------------------------


def test_l3_add_is_idempotent_and_remove_of_unhosted_is_204(neutron: Neutron) -> None:
    a1, router = neutron.l3[0], neutron.routers[0]
    assert neutron.call("POST", f"/agents/{a1}/l3-routers", {"router_id": router}) == (201, None)
    assert neutron.call("POST", f"/agents/{a1}/l3-routers", {"router_id": router}) == (201, None)
    _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
    assert [a["id"] for a in body["agents"]] == [a1]
    _, body = neutron.call("GET", f"/agents/{a1}/l3-routers")
    assert router in {r["id"] for r in body["routers"]}
    assert neutron.call("DELETE", f"/agents/{a1}/l3-routers/{router}") == (204, None)
    assert neutron.call("DELETE", f"/agents/{a1}/l3-routers/{router}") == (204, None)
    _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
    assert body["agents"] == []


def test_legacy_router_lives_on_one_agent_only(neutron: Neutron) -> None:
    a1, a2, router = neutron.l3[0], neutron.l3[1], neutron.routers[1]
    assert neutron.call("POST", f"/agents/{a1}/l3-routers", {"router_id": router})[0] == 201
    status, body = neutron.call("POST", f"/agents/{a2}/l3-routers", {"router_id": router})
    assert status == 409 and neutron.error_type(body) == "RouterHostedByL3Agent"
    assert a1 in body["NeutronError"]["message"]
    # a move is remove, then add
    assert neutron.call("DELETE", f"/agents/{a1}/l3-routers/{router}")[0] == 204
    assert neutron.call("POST", f"/agents/{a2}/l3-routers", {"router_id": router})[0] == 201
    _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
    assert [a["id"] for a in body["agents"]] == [a2]
    neutron.call("DELETE", f"/agents/{a2}/l3-routers/{router}")


def test_l3_refusals(neutron: Neutron) -> None:
    a1, router = neutron.l3[0], neutron.routers[2]
    status, body = neutron.call(
        "POST", f"/agents/{neutron.dhcp[0]}/l3-routers", {"router_id": router}
    )
    assert status == 404 and neutron.error_type(body) == "InvalidL3Agent"
    status, body = neutron.call("POST", f"/agents/{a1}/l3-routers", {"router_id": GHOST})
    assert status == 404 and neutron.error_type(body) == "RouterNotFound"
    status, body = neutron.call("POST", f"/agents/{GHOST}/l3-routers", {"router_id": router})
    assert status == 404 and neutron.error_type(body) == "AgentNotFound"
    with disabled(neutron, neutron.l3[1]):
        status, body = neutron.call(
            "POST", f"/agents/{neutron.l3[1]}/l3-routers", {"router_id": router}
        )
        assert status == 404 and neutron.error_type(body) == "InvalidL3Agent"
    _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
    assert body["agents"] == []


def test_dead_l3_agent_is_accepted_as_a_target(neutron: Neutron) -> None:
    dead, router = dead_agent(neutron, "L3 agent"), neutron.routers[2]
    assert neutron.call("POST", f"/agents/{dead}/l3-routers", {"router_id": router}) == (201, None)
    _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
    assert [(a["id"], a["alive"]) for a in body["agents"]] == [(dead, False)]
    assert neutron.call("DELETE", f"/agents/{dead}/l3-routers/{router}")[0] == 204


# -- DHCP ------------------------------------------------------------------------------------------


def test_dhcp_add_twice_is_409_and_remove_unhosted_is_409(neutron: Neutron) -> None:
    d1, d2, net = neutron.dhcp[0], neutron.dhcp[1], neutron.network
    assert neutron.call("POST", f"/agents/{d1}/dhcp-networks", {"network_id": net}) == (201, None)
    status, body = neutron.call("POST", f"/agents/{d1}/dhcp-networks", {"network_id": net})
    assert status == 409 and neutron.error_type(body) == "NetworkHostedByDHCPAgent"
    assert neutron.call("POST", f"/agents/{d2}/dhcp-networks", {"network_id": net}) == (201, None)
    _, body = neutron.call("GET", f"/networks/{net}/dhcp-agents")
    assert {a["id"] for a in body["agents"]} == {d1, d2}
    _, body = neutron.call("GET", f"/agents/{d1}/dhcp-networks")
    assert net in {n["id"] for n in body["networks"]}
    for agent in (d1, d2):
        assert neutron.call("DELETE", f"/agents/{agent}/dhcp-networks/{net}") == (204, None)
    status, body = neutron.call("DELETE", f"/agents/{d1}/dhcp-networks/{net}")
    assert status == 409 and neutron.error_type(body) == "NetworkNotHostedByDhcpAgent"


def test_dhcp_refusals(neutron: Neutron) -> None:
    net = neutron.network
    status, body = neutron.call(
        "POST", f"/agents/{neutron.l3[0]}/dhcp-networks", {"network_id": net}
    )
    assert status == 404 and neutron.error_type(body) == "InvalidDHCPAgent"
    status, body = neutron.call(
        "POST", f"/agents/{neutron.dhcp[0]}/dhcp-networks", {"network_id": GHOST}
    )
    assert status == 404 and neutron.error_type(body) == "NetworkNotFound"
    with disabled(neutron, neutron.dhcp[1]):
        status, body = neutron.call(
            "POST", f"/agents/{neutron.dhcp[1]}/dhcp-networks", {"network_id": net}
        )
        assert status == 404 and neutron.error_type(body) == "InvalidDHCPAgent"


def test_dead_dhcp_agent_is_accepted_as_a_target(neutron: Neutron) -> None:
    dead, net = dead_agent(neutron, "DHCP agent"), neutron.network
    assert neutron.call("POST", f"/agents/{dead}/dhcp-networks", {"network_id": net}) == (201, None)
    assert neutron.call("DELETE", f"/agents/{dead}/dhcp-networks/{net}") == (204, None)


# -- deletes unbind ---------------------------------------------------------------------------------


def test_deleting_a_network_unbinds_it_everywhere(neutron: Neutron) -> None:
    status, body = neutron.call("POST", "/networks", {"network": {"name": "contract-doomed"}})
    assert status == 201
    net = body["network"]["id"]
    status, body = neutron.call(
        "POST",
        "/subnets",
        {"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.251.0.0/24"}},
    )
    assert status == 201 and body["subnet"]["enable_dhcp"] is True
    for agent in neutron.dhcp:
        assert neutron.call("POST", f"/agents/{agent}/dhcp-networks", {"network_id": net})[0] == 201
    assert neutron.call("DELETE", f"/networks/{net}")[0] == 204
    for agent in neutron.dhcp:
        _, body = neutron.call("GET", f"/agents/{agent}/dhcp-networks")
        assert net not in {n["id"] for n in body["networks"]}
    status, body = neutron.call("GET", f"/networks/{net}")
    assert status == 404 and neutron.error_type(body) == "NetworkNotFound"


def test_deleting_a_router_unbinds_it(neutron: Neutron) -> None:
    status, body = neutron.call("POST", "/routers", {"router": {"name": "contract-doomed"}})
    assert (
        status == 201 and body["router"]["ha"] is False and body["router"]["distributed"] is False
    )
    router = body["router"]["id"]
    assert (
        neutron.call("POST", f"/agents/{neutron.l3[0]}/l3-routers", {"router_id": router})[0] == 201
    )
    assert neutron.call("DELETE", f"/routers/{router}")[0] == 204
    _, body = neutron.call("GET", f"/agents/{neutron.l3[0]}/l3-routers")
    assert router not in {r["id"] for r in body["routers"]}
    status, body = neutron.call("GET", f"/routers/{router}")
    assert status == 404 and neutron.error_type(body) == "RouterNotFound"
