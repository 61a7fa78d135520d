"""SdkAgentAdmin (PUT /agents/{id} admin_state_up) through openstacksdk against the simulator:
the state changes, repeats are fine, errors are mapped like the adapter's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_neutron_adapter import noauth_adapter

from rpcdaemon.adapters.agentadmin import SdkAgentAdmin
from rpcdaemon.core.errors import NotFoundError, TemporaryError
from rpcdaemon.core.ids import AgentId
from rpcdaemon.sim.api import FaultPlan, SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud


@pytest.fixture
def cloud() -> SimCloud:
    return SimCloud(agent_down_time=75.0)


@pytest.fixture
def server(cloud: SimCloud) -> Iterator[SimNeutronServer]:
    with SimNeutronServer(cloud) as srv:
        yield srv


def test_set_agent_admin_state(
    cloud: SimCloud, server: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = cloud.add_agent("L3 agent", "net1")["id"]
    admin = SdkAgentAdmin(noauth_adapter(server, tmp_path, monkeypatch))
    admin.set_agent_admin_state(AgentId(agent), False)
    assert cloud.agent(agent)["admin_state_up"] is False
    admin.set_agent_admin_state(AgentId(agent), False)  # again: fine
    admin.set_agent_admin_state(AgentId(agent), True)
    assert cloud.agent(agent)["admin_state_up"] is True
    with pytest.raises(NotFoundError):
        admin.set_agent_admin_state(AgentId("11111111-2222-3333-4444-555555555555"), False)


def test_server_errors_are_temporary(
    cloud: SimCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = cloud.add_agent("DHCP agent", "net1")["id"]
    faults = FaultPlan(rate_503=1.0, only=lambda m, t: m == "PUT")
    with SimNeutronServer(cloud, faults=faults) as server:
        admin = SdkAgentAdmin(noauth_adapter(server, tmp_path, monkeypatch))
        with pytest.raises(TemporaryError):
            admin.set_agent_admin_state(AgentId(agent), False)
    assert cloud.agent(agent)["admin_state_up"] is True
