"""The simulator's Neutron contract suite (tests/contract/) against the real neutron-server 29.

Every test of tests/contract/test_neutron_contract.py and test_agent_admin_contract.py runs
here once more, with a ``neutron``
fixture pointing at the rig: two live legacy L3 agents (net1, net2), two DHCP agents (net1,
net2), and net3's agents made dead for real (their heartbeats stop; the test waits until the API
says ``alive: false``). A difference between the simulator and Neutron fails here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.conftest import Neutron, _real
from tests.contract.test_agent_admin_contract import (
    test_admin_state_put_is_reflected_and_idempotent,
    test_admin_state_put_refusals,
    test_disabling_keeps_bindings_and_refuses_new_ones,
)
from tests.contract.test_neutron_contract import (
    test_agents_fields,
    test_agents_filters,
    test_agents_list_has_the_fields_the_daemon_reads,
    test_agents_pagination_follows_next_links,
    test_dead_dhcp_agent_is_accepted_as_a_target,
    test_dead_l3_agent_is_accepted_as_a_target,
    test_deleting_a_network_unbinds_it_everywhere,
    test_deleting_a_router_unbinds_it,
    test_dhcp_add_twice_is_409_and_remove_unhosted_is_409,
    test_dhcp_refusals,
    test_l3_add_is_idempotent_and_remove_of_unhosted_is_204,
    test_l3_refusals,
    test_legacy_router_lives_on_one_agent_only,
    test_unknown_agent_is_404_agent_not_found,
)
from tests.peer.rig import Rig

# the first peer test also brings the rig up (cold: a venv install)
pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.slow]

__all__ = [
    "test_admin_state_put_is_reflected_and_idempotent",
    "test_admin_state_put_refusals",
    "test_disabling_keeps_bindings_and_refuses_new_ones",
    "test_agents_fields",
    "test_agents_filters",
    "test_agents_list_has_the_fields_the_daemon_reads",
    "test_agents_pagination_follows_next_links",
    "test_dead_dhcp_agent_is_accepted_as_a_target",
    "test_dead_l3_agent_is_accepted_as_a_target",
    "test_deleting_a_network_unbinds_it_everywhere",
    "test_deleting_a_router_unbinds_it",
    "test_dhcp_add_twice_is_409_and_remove_unhosted_is_409",
    "test_dhcp_refusals",
    "test_l3_add_is_idempotent_and_remove_of_unhosted_is_204",
    "test_l3_refusals",
    "test_legacy_router_lives_on_one_agent_only",
    "test_unknown_agent_is_404_agent_not_found",
]


@pytest.fixture
def neutron(fresh_peer: Rig) -> Iterator[Neutron]:
    rig = fresh_peer
    endpoint = _real(rig.api_url)
    probe = next(endpoint)
    probe.l3 = [rig.agent_id("L3 agent", h) for h in ("net1", "net2")]
    probe.dhcp = [rig.agent_id("DHCP agent", h) for h in ("net1", "net2")]
    kinds = {"L3 agent": "l3", "DHCP agent": "dhcp"}

    def make_dead(agent_id: str) -> None:
        _, body = rig.call("GET", f"/agents/{agent_id}")
        agent = body["agent"]
        rig.set_agent(kinds[agent["agent_type"]], agent["host"], "soft")
        rig.wait_agent_alive(agent_id, False, timeout=60)

    probe.make_dead = make_dead
    yield probe
    next(endpoint, None)  # the contract fixture's own cleanup
