"""NeutronAdapter against the simulated cloud's real HTTP server (noauth and Keystone v3)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpcdaemon.adapters.neutron import NeutronAdapter, connect, v3_auth_url
from rpcdaemon.core.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from rpcdaemon.core.ids import AgentId, NetworkId, RouterId
from rpcdaemon.settings import KeystoneAuth, NeutronApiSettings
from rpcdaemon.sim.api import FaultPlan, SimNeutronServer
from rpcdaemon.sim.cloud import SimCloud

MISSING = "11111111-2222-3333-4444-555555555555"


class Observed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, op: str, status: str, seconds: float) -> None:
        self.calls.append((op, status, seconds))

    def statuses(self, op: str) -> list[str]:
        return [s for o, s, _ in self.calls if o == op]


@pytest.fixture
def cloud() -> SimCloud:
    return SimCloud(agent_down_time=75.0)


def serve(cloud: SimCloud, **kwargs: Any) -> Iterator[SimNeutronServer]:
    server = SimNeutronServer(cloud, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def noauth(cloud: SimCloud) -> Iterator[SimNeutronServer]:
    yield from serve(cloud)


@pytest.fixture
def keystone(cloud: SimCloud) -> Iterator[SimNeutronServer]:
    yield from serve(cloud, auth="keystone", users={"admin": "secret"})


def clouds_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    path = tmp_path / "clouds.yaml"
    path.write_text(body)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))


def noauth_adapter(
    server: SimNeutronServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout: float = 10.0,
    observer: Observed | None = None,
) -> NeutronAdapter:
    clouds_yaml(
        tmp_path,
        monkeypatch,
        f"""clouds:
  sim:
    auth_type: none
    auth:
      endpoint: {server.network_url}
    network_endpoint_override: {server.network_url}
""",
    )
    return connect(api(cloud="sim", timeout=timeout), observer=observer)


def api(
    *, cloud: str | None = None, auth: KeystoneAuth | None = None, timeout: float = 20.0
) -> NeutronApiSettings:
    """The daemon-level Neutron API settings, as the config loader resolves them."""
    return NeutronApiSettings(cloud=cloud, auth=auth, source="test", timeout=timeout)


@pytest.fixture
def adapter(
    noauth: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> NeutronAdapter:
    return noauth_adapter(noauth, tmp_path, monkeypatch)


def test_snapshot_is_correct_and_costs_o_agents_calls(
    cloud: SimCloud, noauth: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    l3a = cloud.add_agent("L3 agent", "net1")
    l3b = cloud.add_agent("L3 agent", "net2", agent_mode="dvr_snat", availability_zone="az2")
    d1 = cloud.add_agent("DHCP agent", "net1")
    d2 = cloud.add_agent("DHCP agent", "net2")
    cloud.add_agent("Open vSwitch agent", "net1")
    r1 = cloud.add_router("r1")
    r2 = cloud.add_router("r2", ha=True, availability_zone_hints=["az2"])
    r3 = cloud.add_router("unhosted", distributed=True)
    n1 = cloud.add_network("n1")
    n2 = cloud.add_network("no-dhcp", dhcp=False)
    cloud.add_router_to_agent(l3a["id"], r1["id"])
    cloud.add_router_to_agent(l3b["id"], r2["id"])
    cloud.add_network_to_agent(d1["id"], n1["id"])
    cloud.add_network_to_agent(d2["id"], n1["id"])
    observed = Observed()
    adapter = noauth_adapter(noauth, tmp_path, monkeypatch, observer=observed)
    noauth.calls.reset()

    view = adapter.snapshot()

    assert {a.host for a in view.agents_of_type("L3 agent")} == {"net1", "net2"}
    b = view.agents[AgentId(l3b["id"])]
    assert (b.agent_mode, b.availability_zone, b.alive, b.admin_state_up) == (
        "dvr_snat",
        "az2",
        True,
        True,
    )
    assert view.agents[AgentId(d1["id"])].agent_mode is None
    assert view.router_bindings == {
        RouterId(r1["id"]): frozenset({AgentId(l3a["id"])}),
        RouterId(r2["id"]): frozenset({AgentId(l3b["id"])}),
        RouterId(r3["id"]): frozenset(),
    }
    assert view.routers[RouterId(r2["id"])].ha is True
    assert view.routers[RouterId(r2["id"])].availability_zone_hints == ("az2",)
    assert view.routers[RouterId(r3["id"])].distributed is True
    assert view.network_bindings[NetworkId(n1["id"])] == frozenset(
        {AgentId(d1["id"]), AgentId(d2["id"])}
    )
    assert view.networks[NetworkId(n1["id"])].dhcp_enabled is True
    assert view.networks[NetworkId(n2["id"])].dhcp_enabled is False
    # agents + routers + networks + subnets, then one call per L3 and per DHCP agent
    neutron_calls = {k: v for k, v in noauth.calls.snapshot().items() if k[1] != "/"}
    assert sum(neutron_calls.values()) == 4 + 2 + 2  # ("/" is the SDK's version discovery)
    assert {op for op, _, _ in observed.calls} >= {"list_agents", "list_agent_routers"}
    # one GET is observed once (the per-agent listings were counted twice)
    assert len(observed.calls) == sum(neutron_calls.values())
    assert observed.statuses("list_agent_routers") == ["200", "200"]
    assert observed.statuses("list_agent_networks") == ["200", "200"]

    routers_only = adapter.snapshot(networks=False)
    assert routers_only.networks == {} and len(routers_only.routers) == 3


def test_l3_idempotency_and_errors(cloud: SimCloud, adapter: NeutronAdapter) -> None:
    a1 = AgentId(cloud.add_agent("L3 agent", "net1")["id"])
    a2 = AgentId(cloud.add_agent("L3 agent", "net2")["id"])
    dhcp = AgentId(cloud.add_agent("DHCP agent", "net1")["id"])
    r = RouterId(cloud.add_router("r")["id"])

    adapter.add_router(a1, r)
    adapter.add_router(a1, r)  # 201 again
    assert adapter.router_agents(r) == {a1}
    with pytest.raises(ConflictError, match="RouterHostedByL3Agent"):
        adapter.add_router(a2, r)
    with pytest.raises(PermanentError, match="InvalidL3Agent") as invalid:
        adapter.add_router(dhcp, r)
    assert not isinstance(invalid.value, NotFoundError)
    with pytest.raises(NotFoundError, match="RouterNotFound"):
        adapter.add_router(a1, RouterId(MISSING))
    with pytest.raises(NotFoundError, match="AgentNotFound"):
        adapter.add_router(AgentId(MISSING), r)

    adapter.remove_router(a1, r)
    adapter.remove_router(a1, r)  # 204 again
    adapter.remove_router(AgentId(MISSING), r)  # the agent is gone: so is the binding
    assert adapter.router_agents(r) == frozenset()
    adapter.add_router(a2, r)  # the move's second half
    assert cloud.router_agents(r) == {a2}


def test_dhcp_idempotency_and_errors(cloud: SimCloud, adapter: NeutronAdapter) -> None:
    d1 = AgentId(cloud.add_agent("DHCP agent", "net1")["id"])
    d2 = AgentId(cloud.add_agent("DHCP agent", "net2")["id"])
    l3 = AgentId(cloud.add_agent("L3 agent", "net1")["id"])
    n = NetworkId(cloud.add_network("n")["id"])

    adapter.add_network(d1, n)
    adapter.add_network(d1, n)  # 409 NetworkHostedByDHCPAgent = success
    adapter.add_network(d2, n)
    assert adapter.network_agents(n) == {d1, d2}
    with pytest.raises(PermanentError, match="InvalidDHCPAgent"):
        adapter.add_network(l3, n)
    with pytest.raises(NotFoundError, match="NetworkNotFound"):
        adapter.add_network(d1, NetworkId(MISSING))

    adapter.remove_network(d1, n)
    adapter.remove_network(d1, n)  # 409 NetworkNotHostedByDhcpAgent = success
    adapter.remove_network(d1, NetworkId(MISSING))
    assert cloud.network_agents(n) == {d2}


def test_get_agent(cloud: SimCloud, adapter: NeutronAdapter) -> None:
    a = cloud.add_agent("L3 agent", "net1", admin_state_up=False)
    info = adapter.get_agent(AgentId(a["id"]))
    assert info is not None and info.host == "net1" and info.admin_state_up is False
    assert adapter.get_agent(AgentId(MISSING)) is None


def test_slow_server_beyond_timeout_is_a_prompt_temporary_error(
    cloud: SimCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for server in serve(cloud):
        observed = Observed()
        adapter = noauth_adapter(server, tmp_path, monkeypatch, timeout=0.5, observer=observed)
        adapter.get_agent(AgentId(MISSING))  # authenticated and discovered: now slow down
        server.latency = 5.0
        started = time.monotonic()
        with pytest.raises(TemporaryError, match="timed out"):
            adapter.snapshot()
        assert time.monotonic() - started < 4.0
        assert observed.statuses("list_agents") == ["timeout"]


def test_server_errors_are_temporary(
    cloud: SimCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = AgentId(cloud.add_agent("L3 agent", "net1")["id"])
    router = RouterId(cloud.add_router("r")["id"])
    for status in ("500", "503"):
        posts = {"only": lambda method, _template: method == "POST"}
        plan = (
            FaultPlan(rate_500=1.0, **posts)
            if status == "500"
            else FaultPlan(rate_503=1.0, **posts)
        )
        for server in serve(cloud, faults=plan):
            observed = Observed()
            adapter = noauth_adapter(server, tmp_path, monkeypatch, observer=observed)
            with pytest.raises(TemporaryError) as err:
                adapter.add_router(agent, router)
            assert observed.statuses("add_router") == [status]
            if status == "503":
                assert err.value.delay == 1.0
    assert cloud.router_agents(router) == set()  # faults are injected before the cloud


def test_connection_refused_is_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clouds_yaml(
        tmp_path,
        monkeypatch,
        f"""clouds:
  gone:
    auth_type: none
    auth:
      endpoint: http://127.0.0.1:{port}
    network_endpoint_override: http://127.0.0.1:{port}
""",
    )
    adapter = connect(api(cloud="gone", timeout=2))
    with pytest.raises(TemporaryError):
        adapter.snapshot()


def test_clouds_yaml_password_auth(
    cloud: SimCloud, keystone: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.add_agent("L3 agent", "net1")
    clouds_yaml(
        tmp_path,
        monkeypatch,
        f"""clouds:
  prod:
    auth:
      auth_url: {keystone.auth_url}
      username: admin
      password: secret
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    identity_api_version: 3
""",
    )
    adapter = connect(api(cloud="prod"))
    assert len(adapter.snapshot().agents) == 1


def test_cloud_wins_over_conffile_credentials(
    cloud: SimCloud, noauth: SimNeutronServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.add_agent("DHCP agent", "net1")
    noauth_adapter(noauth, tmp_path, monkeypatch)  # writes the clouds.yaml
    bad = KeystoneAuth(
        auth_url="http://127.0.0.1:1/v3", username="x", password="y", project_name="z"
    )
    adapter = connect(api(cloud="sim", auth=bad))
    assert len(adapter.snapshot().agents) == 1


def test_keystone_authtoken_credentials(cloud: SimCloud, keystone: SimNeutronServer) -> None:
    cloud.add_agent("DHCP agent", "net1")
    auth = KeystoneAuth(
        auth_url=keystone.auth_url,
        username="admin",
        password="secret",
        project_name="admin",
        region_name="RegionOne",
        interface="internal",
    )
    adapter = connect(api(auth=auth))
    assert [a.host for a in adapter.snapshot().agents.values()] == ["net1"]


def test_2014_admin_user_credentials_map_to_v3(cloud: SimCloud, keystone: SimNeutronServer) -> None:
    cloud.add_agent("DHCP agent", "net1")
    v2 = keystone.auth_url.removesuffix("/v3") + "/v2.0"
    auth = KeystoneAuth(
        auth_url=v2, username="admin", password="secret", project_name="admin", source="admin_user"
    )
    adapter = connect(api(auth=auth))
    assert len(adapter.snapshot().agents) == 1


def test_wrong_password_is_permanent(keystone: SimNeutronServer) -> None:
    auth = KeystoneAuth(
        auth_url=keystone.auth_url, username="admin", password="wrong", project_name="admin"
    )
    observed = Observed()
    adapter = connect(api(auth=auth), observer=observed)
    with pytest.raises(PermanentError) as err:
        adapter.snapshot()
    assert not isinstance(err.value, TemporaryError)
    assert observed.statuses("list_agents") == ["401"]


def test_no_credentials_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no credentials"):
        connect(api())


def test_unknown_cloud_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clouds_yaml(tmp_path, monkeypatch, "clouds: {}\n")
    with pytest.raises(ConfigError, match="nope"):
        connect(api(cloud="nope"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://k:5000/v2.0", "http://k:5000/v3"),
        ("http://k:5000/v2.0/", "http://k:5000/v3"),
        ("http://k:5000/v3", "http://k:5000/v3"),
        ("http://k:5000", "http://k:5000"),
    ],
)
def test_v3_auth_url(url: str, expected: str) -> None:
    assert v3_auth_url(url) == expected
