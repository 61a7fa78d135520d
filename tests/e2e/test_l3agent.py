"""L3Agent end to end: the daemon as a process, the simulated Neutron over HTTP, the
simulated L3 agents heartbeating on the real RabbitMQ.

Each test starts its own cloud on a fresh exchange and its own daemon, waits until the
daemon has listened for a full agent_down_time (before that it declares nobody dead),
then breaks something and checks what the daemon did through the API the agents use.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.harness import Rig, measure, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0


def test_killed_agent_routers_move_to_live_agents_within_deadline(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    daemon = rig.start_daemon()
    daemon.wait_ready(ADT)
    assert rig.router_moves() == 0  # a healthy cloud: nothing to do

    victim = rig.busiest_l3()
    evacuated = rig.routers_on(victim)
    assert evacuated
    live = [a for a in rig.l3_ids() if a != victim]
    rig.kill(victim)
    converged = wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=ADT + 20,
    )
    took = converged - rig.cloud.last_report(victim)
    measure("l3-failover", took, routers=len(evacuated), agent_down_time=ADT)
    assert took <= ADT + 2.0, f"routers moved {took:.2f}s after the last heartbeat"
    assert rig.routers_on(victim) == set()
    daemon.wait_log(r"agent L3 agent@\S+ is DOWN")
    assert daemon.lines("ERROR") == []
    # each router took one remove and one add; nothing else was touched
    assert rig.router_moves() == 2 * len(evacuated)
