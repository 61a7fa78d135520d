"""`rpcdaemon sim` commands and the files it writes."""

from __future__ import annotations

import argparse
import configparser
import io
from pathlib import Path

from rpcdaemon.sim.api import SimNeutronServer
from rpcdaemon.sim.cli import run_command, write_configs
from rpcdaemon.sim.scenario import build_cloud


def test_commands_and_config_files(tmp_path: Path) -> None:
    cloud = build_cloud(l3_agents=2, dhcp_agents=1, routers=2, networks=1, seed=3)
    out = io.StringIO()
    with SimNeutronServer(cloud) as server:
        args = argparse.Namespace(amqp="memory://", exchange="neutron", agent_down_time=5.0)
        paths = write_configs(str(tmp_path), server, args)
        conf = configparser.ConfigParser()
        conf.read(paths["rpcdaemon.conf"])
        assert conf["Daemon"]["rpchost"] == "memory://"
        assert conf["L3Agent"]["conffile"] == paths["neutron.conf"]
        assert server.network_url in Path(paths["clouds.yaml"]).read_text()
        assert run_command("disable l3:net1", cloud, None, server, out)
        assert not cloud.find_agent("net1", "L3 agent")["admin_state_up"]  # type: ignore[index]
        assert run_command("agents", cloud, None, server, out)
        assert run_command("bindings", cloud, None, server, out)
        assert run_command("help", cloud, None, server, out)
        assert not run_command("quit", cloud, None, server, out)
    text = out.getvalue()
    assert "admin=false" in text and "kill AGENT" in text


def test_node_commands_and_node_agents(tmp_path: Path) -> None:
    from rpcdaemon.sim.agents import AgentState, SimBus

    cloud = build_cloud(
        l3_agents=2, dhcp_agents=2, routers=2, networks=1, node_agents=True, compute_hosts=1
    )
    hosts = {a["host"]: [] for a in cloud.agents()}  # type: dict[str, list[str]]
    for a in cloud.agents():
        hosts[a["host"]].append(a["agent_type"])
    assert sorted(hosts["net1"]) == [
        "DHCP agent",
        "L3 agent",
        "Metadata agent",
        "Open vSwitch agent",
    ]
    assert sorted(hosts["compute1"]) == ["Metadata agent", "Open vSwitch agent"]
    bus = SimBus(cloud, "memory://")  # not started: the commands only set states
    out = io.StringIO()
    with SimNeutronServer(cloud) as server:
        assert run_command("kill-node net1", cloud, bus, server, out)
        assert {bus.state(a["id"]) for a in cloud.agents() if a["host"] == "net1"} == {
            AgentState.DOWN
        }
        assert all(
            not cloud.agent_process_running(a["id"]) for a in cloud.agents() if a["host"] == "net1"
        )
        assert run_command("freeze-node compute1", cloud, bus, server, out)
        assert run_command("revive-node net1", cloud, bus, server, out)
        assert bus.state(cloud.find_agent("net1", "L3 agent")["id"]) is AgentState.RUNNING  # type: ignore[index]
        assert run_command("kill-node nowhere", cloud, bus, server, out)
        assert run_command("kill ovs:compute1", cloud, bus, server, out)
        assert run_command("help", cloud, bus, server, out)
    text = out.getvalue()
    assert "kill-node net1: 4 agent(s)" in text and "no agent on host 'nowhere'" in text
    assert "kill Open vSwitch agent on compute1" in text and "kill-node HOST" in text
    cloud.close()
