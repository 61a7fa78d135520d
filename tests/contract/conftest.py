"""The "neutron endpoint" fixture: the simulator always; a real Neutron when RPCDAEMON_NEUTRON_URL is set.

Against a real Neutron (noauth, like /work/shared/neutron-rig, or with OS_AUTH_URL/OS_USERNAME/
OS_PASSWORD/OS_PROJECT_NAME for a token) the fixture finds agents by type and creates its own
network, subnet and routers, deleting them afterwards. It needs two alive, admin-up L3 agents in
legacy mode and two DHCP agents. Tests needing a dead agent run on the real one only if
RPCDAEMON_NEUTRON_DEAD_L3_AGENT / RPCDAEMON_NEUTRON_DEAD_DHCP_AGENT name one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud


class FakeClock:
    def __init__(self, start: float = 1_795_000_000.25) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Neutron:
    """One Neutron endpoint under test, with the objects the contract tests use."""

    kind: str  # "sim" or "real"
    url: str
    token: str | None
    l3: list[str]  # two alive admin-up legacy L3 agents
    dhcp: list[str]  # two alive admin-up DHCP agents
    routers: list[str]
    network: str
    make_dead: Callable[[str], None] | None  # make this agent dead (alive: false)
    dead_l3: str | None = None
    dead_dhcp: str | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        resp = requests.request(
            method, f"{self.url}/v2.0{path}", json=body, headers=headers, timeout=120
        )
        if not resp.content:
            return resp.status_code, None
        return resp.status_code, resp.json()

    def error_type(self, body: Any) -> str:
        return str(body["NeutronError"]["type"])


def _sim() -> Iterator[Neutron]:
    clock = FakeClock()
    cloud = SimCloud(agent_down_time=10, rpc_response_timeout=0.2, clock=clock)
    l3 = [cloud.add_agent("L3 agent", f"net{i}")["id"] for i in (1, 2)]
    dhcp = [cloud.add_agent("DHCP agent", f"net{i}")["id"] for i in (1, 2)]
    cloud.add_agent("L3 agent", "net3")
    cloud.add_agent("DHCP agent", "net3")
    routers = [cloud.add_router(f"contract-{i}")["id"] for i in range(3)]
    network = cloud.add_network("contract-net")["id"]

    def make_dead(agent_id: str) -> None:
        clock.now += 12  # more than agent_down_time; everyone else heartbeats meanwhile
        for agent in cloud.agents():
            if agent["id"] != agent_id:
                cloud.heartbeat(agent["host"], agent["agent_type"])

    with SimNeutronServer(cloud) as server:
        yield Neutron("sim", server.network_url, None, l3, dhcp, routers, network, make_dead)
    cloud.close()


def _token(url: str) -> str | None:
    auth_url = os.environ.get("OS_AUTH_URL")
    if not auth_url:
        return None
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": os.environ["OS_USERNAME"],
                        "password": os.environ["OS_PASSWORD"],
                        "domain": {"name": os.environ.get("OS_USER_DOMAIN_NAME", "Default")},
                    }
                },
            },
            "scope": {
                "project": {
                    "name": os.environ["OS_PROJECT_NAME"],
                    "domain": {"name": os.environ.get("OS_PROJECT_DOMAIN_NAME", "Default")},
                }
            },
        }
    }
    resp = requests.post(f"{auth_url.rstrip('/')}/auth/tokens", json=body, timeout=30)
    resp.raise_for_status()
    return resp.headers["X-Subject-Token"]


def _real(url: str) -> Iterator[Neutron]:
    probe = Neutron("real", url.rstrip("/"), _token(url), [], [], [], "", None)
    status, body = probe.call("GET", "/agents")
    assert status == 200, body
    alive = [a for a in body["agents"] if a["alive"] and a["admin_state_up"]]
    probe.l3 = [
        a["id"]
        for a in alive
        if a["agent_type"] == "L3 agent"
        and a["configurations"].get("agent_mode", "legacy") == "legacy"
    ][:2]
    probe.dhcp = [a["id"] for a in alive if a["agent_type"] == "DHCP agent"][:2]
    if len(probe.l3) < 2 or len(probe.dhcp) < 2:
        pytest.skip("the real Neutron needs 2 alive legacy L3 agents and 2 DHCP agents")
    tag = uuid.uuid4().hex[:6]
    for i in range(3):
        status, body = probe.call("POST", "/routers", {"router": {"name": f"contract-{tag}-{i}"}})
        assert status == 201, body
        probe.routers.append(body["router"]["id"])
    status, body = probe.call("POST", "/networks", {"network": {"name": f"contract-{tag}"}})
    assert status == 201, body
    probe.network = body["network"]["id"]
    status, body = probe.call(
        "POST",
        "/subnets",
        {
            "subnet": {
                "network_id": probe.network,
                "ip_version": 4,
                "cidr": "10.250.0.0/24",
                "enable_dhcp": True,
            }
        },
    )
    assert status == 201, body
    probe.dead_l3 = os.environ.get("RPCDAEMON_NEUTRON_DEAD_L3_AGENT")
    probe.dead_dhcp = os.environ.get("RPCDAEMON_NEUTRON_DEAD_DHCP_AGENT")
    try:
        yield probe
    finally:
        for router in probe.routers:
            _, agents = probe.call("GET", f"/routers/{router}/l3-agents")
            for agent in (agents or {}).get("agents", []):
                probe.call("DELETE", f"/agents/{agent['id']}/l3-routers/{router}")
            probe.call("DELETE", f"/routers/{router}")
        probe.call("DELETE", f"/networks/{probe.network}")


ENDPOINTS = ["sim"] + (["real"] if os.environ.get("RPCDAEMON_NEUTRON_URL") else [])


@pytest.fixture(params=ENDPOINTS)
def neutron(request: pytest.FixtureRequest) -> Iterator[Neutron]:
    if request.param == "sim":
        yield from _sim()
    else:
        yield from _real(os.environ["RPCDAEMON_NEUTRON_URL"])
