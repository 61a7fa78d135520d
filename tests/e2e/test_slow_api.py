"""A slow Neutron API does not stop the reactor: the real daemon, the simulated API hanging
its agent listing, L3 agents heartbeating on the real RabbitMQ.

While a snapshot read hangs (8 s, then the connection drops), a second agent dies: it must
be declared DOWN on time (by the reactor, which keeps ticking), not after the read fails;
once the API answers again, both dead agents' routers move."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from rpcdaemon.sim.api import FaultPlan
from rpcdaemon.sim.resources import L3_AGENT
from tests.e2e.harness import Rig, measure, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ADT = 3.0
HANG = 8.0


def test_a_death_is_declared_while_a_snapshot_hangs(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(l3=4, routers=8, agent_down_time=ADT)
    daemon = rig.start_daemon()
    daemon.wait_ready(ADT)
    hosts = {a["id"]: a["host"] for a in rig.agents(L3_AGENT)}
    first, second = sorted(hosts)[:2]
    # the agent listing hangs: every snapshot (and cheap resync) read blocks HANG seconds
    rig.server.faults = FaultPlan(
        rate_timeout=1.0, timeout_seconds=HANG, only=lambda m, t: m == "GET" and t == "/v2.0/agents"
    )
    rig.kill(first)
    daemon.wait_log(rf"agent L3 agent@{re.escape(hosts[first])} is DOWN", timeout=ADT + 10)
    read_from = rig.cloud.last_report(first)
    rig.kill(second)  # dies while the death pass's snapshot hangs
    down = daemon.wait_log(rf"agent L3 agent@{re.escape(hosts[second])} is DOWN", timeout=HANG)
    took = down - rig.cloud.last_report(second)
    measure("death-during-hung-read", took, agent_down_time=ADT, hang=HANG)
    assert took <= ADT + 2.5, f"declared {took:.2f}s after its last heartbeat"
    log = daemon.log()
    # declared before the hung read failed: the reactor was not waiting on it
    second_down = log.index(f"agent L3 agent@{hosts[second]} is DOWN")
    failed = log.find("failed:", log.index(f"agent L3 agent@{hosts[first]} is DOWN"))
    assert failed == -1 or second_down < failed, log[-3000:]
    assert down - read_from < HANG + ADT + 2.5
    rig.server.faults = None
    live = [a for a in rig.l3_ids() if a not in (first, second)]
    wait_until(
        "every router on a live L3 agent",
        lambda: rig.every_router_on_one_of(live),
        timeout=3 * HANG + 20,
    )
