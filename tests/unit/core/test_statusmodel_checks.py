"""The status model (build, JSON round trip) and the check verdicts (every Nagios code)."""

from __future__ import annotations

import json

import pytest

from rpcdaemon.core.checks import Code, evaluate
from rpcdaemon.core.ids import AgentId, Liveness
from rpcdaemon.core.statusmodel import (
    SOURCE_DAEMON,
    ClusterStatus,
    PassSummary,
    PauseState,
    build,
    from_json,
    to_json,
)
from rpcdaemon.core.view import ClusterView
from rpcdaemon.testing import (
    all_alive,
    make_agent,
    make_dhcp_agent,
    make_network,
    make_router,
    make_view,
)

NOW = 1_800_000_000.0


def cloud() -> ClusterView:
    return make_view(
        agents=[
            make_agent("l3-a", host="net1"),
            make_agent("l3-b", host="net2", agent_mode="dvr_snat"),
            make_dhcp_agent("dhcp-a", host="net1"),
            make_dhcp_agent("dhcp-b", host="net2", admin_state_up=False),
        ],
        routers=[make_router("r1"), make_router("r2")],
        networks=[make_network("n1"), make_network("n2"), make_network("n3", dhcp_enabled=False)],
        router_bindings={"r1": ["l3-a"], "r2": ["l3-b"]},
        network_bindings={"n1": ["dhcp-a"], "n2": ["dhcp-b"], "n3": ["dhcp-a"]},
    )


def status(**verdicts: Liveness) -> ClusterStatus:
    view = cloud()
    judged = {**all_alive(view), **{AgentId(k.replace("_", "-")): v for k, v in verdicts.items()}}
    return build(
        view,
        judged,
        source=SOURCE_DAEMON,
        heartbeat_ages={AgentId("l3-a"): 90.0, AgentId("dhcp-a"): 5.0},
        dhcp_agents_per_network=2,
        breakers={"L3 agent": False},
        leader=True,
        coordination_connected=True,
    )


def test_build_per_agent_and_hosted_resources() -> None:
    s = status()
    by_id = {a.id: a for a in s.agents}
    assert by_id[AgentId("l3-a")].hosted == ("r1",)
    assert by_id[AgentId("l3-b")].mode == "dvr_snat"
    assert by_id[AgentId("dhcp-a")].hosted == ("n1",)  # n3 has no DHCP subnet
    assert by_id[AgentId("dhcp-a")].mode is None
    assert s.hosts() == ("net1", "net2")
    assert not s.stranded
    # dhcp-b is admin down: n2 has 0 live agents of the 1 wanted (only dhcp-a is live)
    assert [(n.id, n.live_agents, n.wanted) for n in s.short_networks] == [("n2", 0, 1)]


def test_stranded_only_when_every_binding_is_dead_with_the_youngest_age() -> None:
    s = status(l3_a=Liveness.DEAD, dhcp_b=Liveness.UNKNOWN)
    assert [(x.kind, x.id, x.age) for x in s.stranded] == [("router", "r1", 90.0)]


def test_json_round_trip_is_exact() -> None:
    s = build(
        cloud(),
        {AgentId("l3-a"): Liveness.DEAD},
        source=SOURCE_DAEMON,
        heartbeat_ages={AgentId("l3-a"): 12.5},
        report_intervals={AgentId("l3-a"): 30.0},
        pause=PauseState(until=NOW + 60, reason="rabbit migration", by="op@x", since=NOW),
        last_pass=PassSummary("periodic", 1.5, 2, 1, ("held: x",), None),
        dry_run=True,
        notes=("hello",),
    )
    text = json.dumps(to_json(s))
    assert from_json(json.loads(text)) == s


def test_from_json_rejects_malformed_bodies() -> None:
    with pytest.raises(ValueError):
        from_json({"source": "daemon"})
    with pytest.raises(ValueError):
        from_json({"source": "daemon", "agents": [{"id": "x"}]})


def test_pause_expires_by_wall_clock() -> None:
    p = PauseState(until=NOW + 10)
    assert p.active(NOW) and not p.active(NOW + 10)
    assert PauseState(until=None).active(NOW + 1e9)


# -- check --------------------------------------------------------------------------------


def test_ok() -> None:
    r = evaluate(status(), wall_now=NOW)
    assert r.code is Code.OK
    assert r.line().startswith("OK: ") and "| routers_on_dead_agents=0;;0" in r.line()


def test_critical_when_a_router_is_on_dead_agents_only() -> None:
    r = evaluate(status(l3_a=Liveness.DEAD), wall_now=NOW)
    assert r.code is Code.CRITICAL and "r1" in r.text
    assert "routers_on_dead_agents=1" in r.perfdata


def test_critical_for_a_dhcp_network_on_dead_agents_only() -> None:
    r = evaluate(status(dhcp_a=Liveness.DEAD), wall_now=NOW)
    assert r.code is Code.CRITICAL and "n1" in r.text and "networks_on_dead_agents=1" in r.perfdata


def test_grace_tolerates_a_young_outage_as_a_warning_only() -> None:
    s = status(dhcp_a=Liveness.DEAD)  # dhcp-a last heard 5 s ago
    assert evaluate(s, wall_now=NOW, grace=10).code is Code.WARNING
    assert evaluate(s, wall_now=NOW, grace=4).code is Code.CRITICAL
    # r1's agent was last heard 90 s ago
    assert evaluate(status(l3_a=Liveness.DEAD), wall_now=NOW, grace=60).code is Code.CRITICAL


def test_unbound_resource_is_critical_whatever_the_grace() -> None:
    view = make_view(agents=[make_agent("a")], routers=[make_router("lonely")])
    s = build(view, all_alive(view), source="api")
    assert evaluate(s, wall_now=NOW, grace=1e6).code is Code.CRITICAL


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"breakers": {"L3 agent": True}}, "breaker open for L3 agent"),
        ({"pause": PauseState(until=NOW + 60, reason="rmq")}, "(60s left): rmq"),
        ({"pause": PauseState(until=None)}, "until resumed"),
        ({"leader": False, "coordination_connected": False}, "no instance can lead"),
    ],
)
def test_warnings(change: dict[str, object], needle: str) -> None:
    from dataclasses import replace

    r = evaluate(replace(status(), **change), wall_now=NOW)  # type: ignore[arg-type]
    assert r.code is Code.WARNING and needle in r.text, r.line()


def test_expired_pause_and_healthy_standby_are_ok() -> None:
    from dataclasses import replace

    s = replace(status(), pause=PauseState(until=NOW - 1), leader=False)
    assert evaluate(s, wall_now=NOW).code is Code.OK


def test_daemon_not_answering_is_a_warning_and_critical_wins() -> None:
    assert evaluate(status(), wall_now=NOW, daemon_error="refused").code is Code.WARNING
    r = evaluate(status(l3_a=Liveness.DEAD), wall_now=NOW, daemon_error="refused")
    assert r.code is Code.CRITICAL and "daemon not answering" in r.text


def test_a_pause_reason_cannot_break_the_plugin_line() -> None:
    from dataclasses import replace

    nasty = PauseState(until=None, reason="rmq | migration\nCRITICAL: fake", by="op@x")
    line = evaluate(replace(status(), pause=nasty), wall_now=NOW).line()
    assert line.count("|") == 1 and "\n" not in line  # the one "|" before the perfdata
    text, perf = line.split(" | ")
    assert text.startswith("WARNING: ") and "rmq / migration CRITICAL: fake" in text
    assert perf.startswith("routers_on_dead_agents=")
    unknown = evaluate(None, wall_now=NOW, unknown_reason="a|b\nc").line()
    assert unknown == "UNKNOWN: a/b c"


def test_pause_describe_is_the_one_rendering() -> None:
    p = PauseState(until=NOW + 300, reason="rmq", by="op@h", since=NOW)
    assert p.describe(NOW) == "paused by op@h until 2027-01-15 08:05:00Z (300s left): rmq"
    assert PauseState(until=None).describe(NOW) == (
        "paused by an operator until resumed: no reason given"
    )
    assert p.describe(NOW + 301).startswith("not paused (the pause by op@h expired")
    from rpcdaemon.core.statusmodel import unreadable_pause

    bad = unreadable_pause("cannot read /x: Permission denied")
    assert bad.unreadable and bad.active(NOW + 1e9)
    assert bad.describe(NOW) == (
        "paused (fail safe): pause state unreadable: cannot read /x: Permission denied; "
        "counted as paused until it is fixed or 'rpcdaemon resume' removes it"
    )


def test_unknown_without_status() -> None:
    r = evaluate(None, wall_now=NOW, unknown_reason="API down")
    assert r.code is Code.UNKNOWN and r.line().startswith("UNKNOWN: API down")
