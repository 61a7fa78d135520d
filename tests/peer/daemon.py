"""Run ``python -m rpcdaemon -d`` as a process against the peer rig, and read Neutron's bindings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.peer.rig import Rig

CLOUD = "rpcdaemon-peer"


class Daemon:
    """The daemon as a subprocess: L3Agent + DHCPAgent (and ``extra`` ini text), -d, its log kept."""

    def __init__(
        self,
        rig: Rig,
        workdir: Path,
        *,
        amqp_url: str | None = None,
        plugins: str = "L3Agent DHCPAgent",
        plugin_options: str = "",
    ) -> None:
        self.rig = rig
        self.workdir = workdir
        self.log = workdir / "rpcdaemon.stderr"
        self.out = workdir / "rpcdaemon.stdout"
        clouds = workdir / "clouds.yaml"
        clouds.write_text(
            f"clouds:\n  {CLOUD}:\n    auth_type: none\n    auth:\n"
            f"      endpoint: {rig.api_url}\n    network_endpoint_override: {rig.api_url}\n"
        )
        section = (
            f"conffile = {rig.neutron_conf}\nqueue_expire = 30\ntimeout = 30\n{plugin_options}"
        )
        self.conf = workdir / "rpcdaemon.conf"
        self.conf.write_text(
            "[Daemon]\n"
            f"plugins = {plugins}\n"
            f"rpchost = {amqp_url or rig.amqp_url}\n"
            f"cloud = {CLOUD}\n"
            "loglevel = DEBUG\n"
            "check_interval = 0.5\n"
            "resync_interval = 10\n"
            "reconnect_max_backoff = 2\n"
            f"[L3Agent]\n{section}\n"
            f"[DHCPAgent]\n{section}\n"
        )
        self.env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        with self.log.open("wb") as err, self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rpcdaemon", "-d", "-c", str(self.conf)],
                stdout=out,
                stderr=err,
                env={**os.environ, **self.env},
                cwd=self.workdir,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 60, count: int = 1) -> None:
        wait(
            f"daemon log line {needle!r}", lambda: self.text().count(needle) >= count, timeout, self
        )

    def assert_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"rpcdaemon exited {self.proc.returncode}:\n{self.text()[-3000:]}")


def wait(
    what: str, check: Callable[[], bool], timeout: float, daemon: Daemon | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None:
            daemon.assert_running()
        if check():
            return
        time.sleep(0.5)
    tail = daemon.text()[-4000:] if daemon is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{tail}")


# -- Neutron state, read over the real API -----------------------------------------------------


def create_router(rig: Rig, tag: str) -> str:
    status, body = rig.call("POST", "/routers", {"router": {"name": f"peer-{tag}"}})
    assert status == 201, body
    return str(body["router"]["id"])


def create_dhcp_network(rig: Rig, tag: str, octet: int) -> str:
    status, body = rig.call("POST", "/networks", {"network": {"name": f"peer-{tag}"}})
    assert status == 201, body
    net = str(body["network"]["id"])
    subnet = {"network_id": net, "ip_version": 4, "cidr": f"10.{octet}.0.0/24", "enable_dhcp": True}
    status, body = rig.call("POST", "/subnets", {"subnet": subnet})
    assert status == 201, body
    return net


def bind_router(rig: Rig, agent_id: str, router: str) -> None:
    status, body = rig.call("POST", f"/agents/{agent_id}/l3-routers", {"router_id": router})
    assert status == 201, body


def router_agents(rig: Rig, router: str) -> list[str]:
    status, body = rig.call("GET", f"/routers/{router}/l3-agents")
    assert status == 200, body
    return sorted(a["id"] for a in body["agents"])


def network_agents(rig: Rig, network: str) -> set[str]:
    status, body = rig.call("GET", f"/networks/{network}/dhcp-agents")
    assert status == 200, body
    return {a["id"] for a in body["agents"]}


def all_routers(rig: Rig) -> list[str]:
    _, body = rig.call("GET", "/routers?fields=id")
    return [r["id"] for r in body["routers"]]


def dhcp_networks(rig: Rig) -> list[str]:
    """Networks with a DHCP-enabled subnet (what the DHCPAgent plugin keeps on every agent)."""
    _, body = rig.call("GET", "/subnets?enable_dhcp=true&fields=network_id")
    return sorted({s["network_id"] for s in body["subnets"]})


def snapshot(rig: Rig) -> dict[str, Any]:
    return {
        "routers": {r: router_agents(rig, r) for r in all_routers(rig)},
        "networks": {n: sorted(network_agents(rig, n)) for n in dhcp_networks(rig)},
    }


def tag() -> str:
    return uuid.uuid4().hex[:6]
