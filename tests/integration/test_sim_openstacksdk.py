"""The real openstacksdk against the simulated Neutron: Keystone auth and auth_type none.

Finding recorded here: openstacksdk's agent-scheduler proxy calls (add_router_to_agent,
remove_router_from_agent, add_dhcp_agent_to_network, remove_dhcp_agent_from_network) do NOT raise
on an error answer; the caller must check the response itself (``raise_from_response``).
"""

from __future__ import annotations

from collections.abc import Iterator

import openstack
import pytest
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions

from rpcdaemon.sim.api import FaultPlan, SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud


@pytest.fixture
def cloud() -> SimCloud:
    cloud = SimCloud()
    for host in ("net1", "net2"):
        cloud.add_agent("L3 agent", host)
        cloud.add_agent("DHCP agent", host)
    cloud.add_router("r1")
    cloud.add_network("n1")
    return cloud


@pytest.fixture(params=["keystone", "noauth"])
def conn(
    request: pytest.FixtureRequest, cloud: SimCloud
) -> Iterator[openstack.connection.Connection]:
    with SimNeutronServer(cloud, auth=request.param) as server:
        if request.param == "keystone":
            c = openstack.connect(
                auth_url=server.auth_url,
                username="admin",
                password="secret",
                project_name="admin",
                user_domain_name="Default",
                project_domain_name="Default",
                region_name="RegionOne",
            )
        else:
            c = openstack.connection.Connection(
                auth_type="none", auth={"endpoint": f"{server.network_url}/"}
            )
        yield c
        c.close()


def _ids(cloud: SimCloud, agent_type: str) -> list[str]:
    return sorted(str(a["id"]) for a in cloud.agents() if a["agent_type"] == agent_type)


def test_list_agents_with_filters_and_paging(
    conn: openstack.connection.Connection, cloud: SimCloud
) -> None:
    agents = list(conn.network.agents())
    assert {(a.host, a.agent_type, a.is_alive) for a in agents} == {
        (h, t, True) for h in ("net1", "net2") for t in ("L3 agent", "DHCP agent")
    }
    l3 = list(conn.network.agents(agent_type="L3 agent", is_alive=True))
    assert sorted(a.id for a in l3) == _ids(cloud, "L3 agent")
    paged = list(conn.network.agents(limit=1))  # the SDK follows agents_links
    assert len(paged) == 4


def test_router_add_remove_and_refusals(
    conn: openstack.connection.Connection, cloud: SimCloud
) -> None:
    a1, a2 = _ids(cloud, "L3 agent")
    router = cloud.routers()[0]["id"]
    assert conn.network.add_router_to_agent(a1, router) is None  # 201, body null
    assert [r.id for r in conn.network.agent_hosted_routers(a1)] == [router]
    assert [a.id for a in conn.network.routers_hosting_l3_agents(router)] == [a1]
    # the proxy does not raise: it hands back Neutron's error body
    answer = conn.network.add_router_to_agent(a2, router)
    assert answer["NeutronError"]["type"] == "RouterHostedByL3Agent"
    # raw calls + raise_from_response give openstacksdk's exception types
    resp = conn.network.post(f"/agents/{a2}/l3-routers", json={"router_id": router})
    with pytest.raises(exceptions.ConflictException):
        exceptions.raise_from_response(resp)
    resp = conn.network.post(
        f"/agents/{_ids(cloud, 'DHCP agent')[0]}/l3-routers", json={"router_id": router}
    )
    with pytest.raises(exceptions.NotFoundException):
        exceptions.raise_from_response(resp)
    conn.network.remove_router_from_agent(a1, router)
    assert cloud.router_agents(router) == set()


def test_network_add_remove_and_refusals(
    conn: openstack.connection.Connection, cloud: SimCloud
) -> None:
    d1, d2 = _ids(cloud, "DHCP agent")
    net = cloud.networks()[0]["id"]
    conn.network.add_dhcp_agent_to_network(d1, net)
    conn.network.add_dhcp_agent_to_network(d2, net)
    assert {a.id for a in conn.network.network_hosting_dhcp_agents(net)} == {d1, d2}
    assert [n.id for n in conn.network.dhcp_agent_hosting_networks(d1)] == [net]
    again = conn.network.add_dhcp_agent_to_network(d1, net)
    assert again["NeutronError"]["type"] == "NetworkHostedByDHCPAgent"
    conn.network.remove_dhcp_agent_from_network(d1, net)
    resp = conn.network.delete(f"/agents/{d1}/dhcp-networks/{net}")
    with pytest.raises(exceptions.ConflictException):
        exceptions.raise_from_response(resp)
    assert cloud.network_agents(net) == {d2}


def test_get_of_unknown_agent_raises_not_found(conn: openstack.connection.Connection) -> None:
    with pytest.raises(exceptions.NotFoundException):
        conn.network.get_agent("11111111-2222-3333-4444-555555555555")


def test_injected_500_reaches_the_sdk_as_http_exception(cloud: SimCloud) -> None:
    faults = FaultPlan(rate_500=1.0, only=lambda method, template: template == "/v2.0/agents")
    with SimNeutronServer(cloud, faults=faults) as server:
        c = openstack.connection.Connection(
            auth_type="none", auth={"endpoint": f"{server.network_url}/"}
        )
        with pytest.raises(exceptions.HttpException) as info:
            list(c.network.agents())
        assert info.value.status_code == 500
        assert server.calls.get("GET", "/v2.0/agents") >= 1
        assert cloud.agents()  # nothing changed


def test_wrong_password_is_refused(cloud: SimCloud) -> None:
    with SimNeutronServer(cloud, auth="keystone") as server:
        c = openstack.connect(
            auth_url=server.auth_url,
            username="admin",
            password="wrong",
            project_name="admin",
            user_domain_name="Default",
            project_domain_name="Default",
        )
        with pytest.raises(ks_exceptions.Unauthorized):  # keystoneauth's, not openstacksdk's
            list(c.network.agents())
        assert server.calls.get("GET", "/v2.0/agents") == 0
