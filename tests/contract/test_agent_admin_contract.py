"""What ``rpcdaemon evacuate`` / ``restore`` rely on from ``PUT /v2.0/agents/{id}``, checked
on the simulator and on a real Neutron (RPCDAEMON_NEUTRON_URL; see conftest.py)."""

from __future__ import annotations

from tests.contract.conftest import Neutron
from tests.contract.test_neutron_contract import GHOST, disabled


def test_admin_state_put_is_reflected_and_idempotent(neutron: Neutron) -> None:
    agent = neutron.l3[1]
    with disabled(neutron, agent):
        status, body = neutron.call("GET", f"/agents/{agent}")
        assert status == 200 and body["agent"]["admin_state_up"] is False
        # disabling an agent already disabled is 200 too (a re-run of evacuate)
        status, body = neutron.call("PUT", f"/agents/{agent}", {"agent": {"admin_state_up": False}})
        assert status == 200 and body["agent"]["admin_state_up"] is False
    status, body = neutron.call("GET", f"/agents/{agent}")
    assert body["agent"]["admin_state_up"] is True
    status, body = neutron.call("PUT", f"/agents/{agent}", {"agent": {"admin_state_up": True}})
    assert status == 200 and body["agent"]["admin_state_up"] is True


def test_admin_state_put_refusals(neutron: Neutron) -> None:
    status, body = neutron.call("PUT", f"/agents/{GHOST}", {"agent": {"admin_state_up": False}})
    assert status == 404 and neutron.error_type(body) == "AgentNotFound"
    status, body = neutron.call("PUT", f"/agents/{neutron.l3[0]}", {"agent": {"host": "x"}})
    assert status == 400
    status, body = neutron.call(
        "PUT", f"/agents/{neutron.l3[0]}", {"agent": {"admin_state_up": "maybe"}}
    )
    assert status == 400


def test_disabling_keeps_bindings_and_refuses_new_ones(neutron: Neutron) -> None:
    """Disabling does not unbind (evacuate removes afterwards) and the disabled agent is
    no target any more (nothing is scheduled back, by Neutron or by us)."""
    a = neutron.l3[0]
    router = neutron.routers[0]
    status, _ = neutron.call("POST", f"/agents/{a}/l3-routers", {"router_id": router})
    assert status == 201
    try:
        with disabled(neutron, a):
            _, body = neutron.call("GET", f"/routers/{router}/l3-agents")
            assert [x["id"] for x in body["agents"]] == [a]
            status, _ = neutron.call("DELETE", f"/agents/{a}/l3-routers/{router}")
            assert status == 204
            status, body = neutron.call("POST", f"/agents/{a}/l3-routers", {"router_id": router})
            assert status == 404 and neutron.error_type(body) == "InvalidL3Agent"
        net = neutron.network
        d1 = neutron.dhcp[0]
        with disabled(neutron, d1):
            status, body = neutron.call("POST", f"/agents/{d1}/dhcp-networks", {"network_id": net})
            assert status == 404 and neutron.error_type(body) == "InvalidDHCPAgent"
    finally:
        neutron.call("DELETE", f"/agents/{a}/l3-routers/{router}")
