"""Dump against the real bus: neutron's own report_state calls and notifications, redacted.

The fake agents report with neutron's PluginReportStateAPI and a context carrying an auth token
(as a real service token would be); notifications come from neutron-server's messagingv2 driver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.peer.daemon import create_dhcp_network, create_router, tag, wait
from tests.peer.rig import Rig

# the first peer test also brings the rig up (cold: a venv install)
pytestmark = [pytest.mark.timeout(600), pytest.mark.peer, pytest.mark.broker, pytest.mark.slow]

SECRET = "peer-secret-agent-token"  # tests/peer/fake_agents.py --token default


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _agent_type(record: dict[str, Any]) -> str:
    return str(record["args"]["agent_state"]["agent_state"]["agent_type"])


def test_dump_shows_real_report_state_and_notifications_redacted(
    fresh_peer: Rig, tmp_path: Path
) -> None:
    rig = fresh_peer
    out = tmp_path / "dump.jsonl"
    conf = tmp_path / "rpcdaemon.conf"
    conf.write_text(
        f"[Daemon]\nplugins = Dump\nrpchost = {rig.amqp_url}\nloglevel = INFO\n"
        f"[Dump]\nqueue = neutron\noutput = {out}\nqueue_expire = 10\n"
    )
    with (tmp_path / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=dict(os.environ),
        )
    try:
        wait("Dump consuming", lambda: "consuming from" in (tmp_path / "stderr").read_text(), 60)
        t = tag()
        network = create_dhcp_network(rig, f"{t}-dump", 140)
        router = create_router(rig, f"{t}-dump")

        def seen() -> bool:
            got = records(out)
            hosts = {
                r["args"]["agent_state"]["agent_state"]["host"]
                for r in got
                if r.get("method") == "report_state"
            }
            events = {r.get("event_type") for r in got}
            casts = {
                _agent_type(r)
                for r in got
                if r.get("method") == "report_state" and r["kind"] == "rpc_cast"
            }
            return (
                hosts >= {"net1", "net2", "net3"}
                and "Metadata agent" in casts
                and {
                    "network.create.end",
                    "router.create.end",
                }
                <= events
            )

        wait("report_state from every host and the create notifications", seen, 60)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    got = records(out)
    reports = [r for r in got if r.get("method") == "report_state"]
    # the L3, DHCP and OVS agents call; the metadata agent casts after its first report
    report = next(r for r in reports if _agent_type(r) == "L3 agent")
    assert report["kind"] == "rpc_call" and report["routing_key"] == "q-reports-plugin"
    assert report["fields"]["_reply_q"].startswith("reply_")
    assert report["properties"]["expiration"]  # a call's TTL = the agent's report_interval
    assert report["context"]["auth_token"] == "***"
    cast = next(
        r for r in reports if _agent_type(r) == "Metadata agent" and r["kind"] == "rpc_cast"
    )
    assert "_reply_q" not in cast["fields"] and not cast["properties"].get("expiration")
    notification = next(r for r in got if r.get("event_type") == "network.create.end")
    assert notification["routing_key"] == "notifications.info"
    assert notification["payload"]["network"]["id"] == network
    assert any(
        r.get("event_type") == "router.create.end" and r["payload"]["router"]["id"] == router
        for r in got
    )
    text = out.read_text()
    assert SECRET not in text
    assert "Traceback" not in (tmp_path / "stderr").read_text()
