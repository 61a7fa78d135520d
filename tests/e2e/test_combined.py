"""Both planners and Dump in ONE daemon: one Neutron snapshot per pass serves both
planners, and a failed network node (its L3 and DHCP agents) is handled by both."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from tests.e2e.harness import LIST_AGENTS, Rig, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0


def test_one_snapshot_per_pass_serves_both_planners(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(
        l3=3, dhcp=3, routers=6, networks=3, dhcp_agents_per_network=3, agent_down_time=ADT
    )
    dump = rig.dir / "dump.jsonl"
    daemon = rig.start_daemon(
        plugins="L3Agent DHCPAgent Dump",
        daemon={"resync_interval": 1},
        l3={"loglevel": "DEBUG"},
        dhcp={"loglevel": "DEBUG"},
        dump={"output": dump, "filter": "method == 'report_state'"},
    )
    daemon.wait_ready(ADT)
    host = "net3"
    victims = [str(a["id"]) for a in rig.cloud.agents() if a["host"] == host]
    l3_live = [a for a in rig.l3_ids() if a not in victims]
    dhcp_live = [a for a in rig.dhcp_ids() if a not in victims]
    rig.kill(*victims)  # the whole network node
    wait_until(
        "routers and networks off net3",
        lambda: (
            rig.every_router_on_one_of(l3_live)
            and rig.every_dhcp_network_on(dhcp_live)
            and not any(rig.networks_on(v) for v in victims)
        ),
        timeout=ADT + 20,
    )
    passes_before_stop = rig.calls(LIST_AGENTS)
    wait_until("two more resyncs", lambda: rig.calls(LIST_AGENTS) >= passes_before_stop + 2, 10)
    daemon.assert_clean_exit()

    log = daemon.log()
    l3_plans = re.findall(r"L3 plan at (\d+\.\d)", log)
    dhcp_plans = re.findall(r"DHCP plan at (\d+\.\d)", log)
    listings = rig.calls(LIST_AGENTS)
    assert len(l3_plans) >= 3
    # every pass: ONE snapshot (one listing of each agent's bindings), both plans from it
    assert sorted(l3_plans) == sorted(dhcp_plans)
    per_l3 = rig.server.calls.get("GET", "/v2.0/agents/{agent_id}/l3-routers")
    per_dhcp = rig.server.calls.get("GET", "/v2.0/agents/{agent_id}/dhcp-networks")
    assert per_l3 == len(rig.l3_ids()) * len(l3_plans), (per_l3, len(l3_plans))
    assert per_dhcp == len(rig.dhcp_ids()) * len(dhcp_plans), (per_dhcp, len(dhcp_plans))
    # the cheap resyncs between passes read agents, routers and networks once each, together
    assert listings >= len(l3_plans)
    assert rig.server.calls.get("GET", "/v2.0/routers") == listings
    assert rig.server.calls.get("GET", "/v2.0/networks") == listings
    assert "[L3Agent] plan:" in log and "[DHCPAgent] plan:" in log
    # Dump saw the same heartbeats, filtered by its JMESPath expression
    dumped = [json.loads(line) for line in dump.read_text().splitlines()]
    assert dumped
    assert all("report_state" in json.dumps(m) for m in dumped)
    assert daemon.lines("ERROR") == []
