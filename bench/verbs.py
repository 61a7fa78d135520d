"""Wall time of the operator's verbs as an operator runs them (``python -m rpcdaemon -c FILE
VERB``) against the simulator: 4 L3 + 4 DHCP agents (net1..net4), ``--routers`` routers,
``--networks`` DHCP networks on 2 agents each, every API call delayed by ``--latency``.

    python -m bench.verbs --routers 200 --networks 100 --latency 0.05

Needs RabbitMQ (RPCDAEMON_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672//) for the
simulated agents' heartbeats. Prints one line per verb; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.harness import Rig

from rpcdaemon.sim.resources import L3_AGENT

VERBS: tuple[tuple[str, ...], ...] = (
    ("check",),
    ("status", "--listen", "0"),
    ("evacuate", "net1", "--dry-run"),
    ("evacuate", "net1"),
    ("restore", "net1"),
    ("rebalance", "--max-moves", "20"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args(argv)
    url = os.environ.get("RPCDAEMON_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    work = Path(tempfile.mkdtemp(prefix="rpcdaemon-bench-verbs-"))
    rig = Rig(
        work,
        url,
        f"bench-verbs-{os.getpid()}",
        l3=4,
        dhcp=4,
        routers=args.routers,
        networks=args.networks,
        dhcp_agents_per_network=2,
        agent_down_time=3.0,
        latency=args.latency,
    ).start()
    try:
        conf = rig.write_configs(
            plugins="L3Agent DHCPAgent",
            daemon={"pause_file": work / "pause.json", "max_concurrency": 8},
            dhcp={"agents_per_network": 2},
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(work / "clouds.yaml")
        time.sleep(1.0)  # one heartbeat from every agent
        for verb in VERBS:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "rpcdaemon", "-c", str(conf), *verb],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            took = time.monotonic() - started
            lines = done.stdout.strip().splitlines() or [""]
            shown = lines[0] if "--dry-run" in verb else lines[-1]
            print(f"{' '.join(verb):<28} exit {done.returncode}  {took:6.2f} s  {shown[:100]}")
        left = sum(
            len(rig.routers_on(str(a["id"])))
            for a in rig.cloud.agents()
            if a["host"] == "net1" and a["agent_type"] == L3_AGENT
        )
        print(f"routers on net1 after restore + rebalance: {left}")
    finally:
        rig.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
