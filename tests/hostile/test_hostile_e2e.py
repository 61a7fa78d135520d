"""The hostile corpus against the daemon as a process (simulated Neutron, real RabbitMQ).

While the simulator's L3 agents report every 0.5 s, thousands of hostile deliveries (zip
bombs, over-size bodies, NaN counts, wrong types, forged hosts by the thousand, secrets in
wrong fields) are published on ``q-plugin`` of the daemon's exchange (the daemon binds it;
the simulated neutron-server does not, so it never registers a forged host); during the
flood one L3 agent is killed. Asserted: the daemon neither crashes nor fails a tick, no live
agent is declared DOWN, the dead agent's routers move, its RSS and its log stay bounded,
and no planted secret reaches the log.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
from kombu import Connection, Producer

from tests.e2e.harness import Rig, measure, wait_until
from tests.hostile.corpus import SECRET, hostile

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(180)]

ADT = 3.0
CASES = 15_000


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hostile_flood_leaves_the_daemon_judging_and_acting(
    make_rig: Callable[..., Rig], seed: int
) -> None:
    rig = make_rig(l3=3, routers=6, agent_down_time=ADT)
    daemon = rig.start_daemon()
    daemon.wait_ready(ADT)
    daemon.wait_log(r"agent L3 agent@\S+ is up", count=3)
    time.sleep(1.0)
    rss_before = vm_rss_kib(daemon.proc.pid)
    lines_before = len(daemon.lines())
    victim = rig.busiest_l3()
    live = [a for a in rig.l3_ids() if a != victim]
    victim_host = str(rig.cloud.agent(victim)["host"])
    cases = list(hostile(seed, CASES, huge=4, compressed=4))
    sent = threading.Event()
    rss_peak = rss_before

    def flood() -> None:
        with Connection(rig.amqp_url) as conn:
            producer = Producer(conn.default_channel)
            for i, case in enumerate(cases):
                producer.publish(
                    case.body,
                    exchange=rig.exchange,
                    routing_key="q-plugin",
                    content_type=case.content_type,
                    content_encoding=case.content_encoding,
                    headers=dict(case.headers),
                )
                if i % 1000 == 0:
                    time.sleep(0.1)
        sent.set()

    publisher = threading.Thread(target=flood, daemon=True)
    started = time.monotonic()
    publisher.start()
    time.sleep(1.0)
    rig.kill(victim)  # a real death in the middle of the flood
    while not sent.is_set() and time.monotonic() - started < 60:
        rss_peak = max(rss_peak, vm_rss_kib(daemon.proc.pid))
        time.sleep(0.2)
    assert sent.is_set(), "the flood did not finish publishing"
    converged = wait_until(
        "every router on a live L3 agent", lambda: rig.every_router_on_one_of(live), timeout=60
    )
    time.sleep(2 * ADT)  # the daemon keeps judging after the flood
    rss_peak = max(rss_peak, vm_rss_kib(daemon.proc.pid))
    rss_after = vm_rss_kib(daemon.proc.pid)
    log = daemon.log()
    flood_lines = len(daemon.lines()) - lines_before

    assert daemon.proc.poll() is None, "the daemon died"
    assert "tick failed" not in log and "Traceback" not in log, log[-3000:]
    down = re.findall(r"agent (.+?) is DOWN", log)
    assert down == [f"L3 agent@{victim_host}"], down
    assert rig.routers_on(victim) == set()
    assert SECRET not in log and "hunter2" not in log
    assert "forged-" not in log, "a forged host was logged"
    assert flood_lines <= 80, "\n".join(daemon.lines()[lines_before:])
    assert rss_peak - rss_before < 60 * 1024, (rss_before, rss_peak)
    measure(
        "hostile-flood",
        converged - started,
        seed=seed,
        cases=len(cases),
        log_lines=flood_lines,
        rss_before_MiB=round(rss_before / 1024, 1),
        rss_peak_MiB=round(rss_peak / 1024, 1),
        rss_after_MiB=round(rss_after / 1024, 1),
    )
