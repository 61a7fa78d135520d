"""After our reconnect, silence means death only once the agents had the time to come back."""

from __future__ import annotations

from rpcdaemon.core.ids import Host
from rpcdaemon.core.records import AgentKey
from rpcdaemon.core.rejoin import GRACE_LIMIT, REJOIN_LIMIT, Rejoin

ADT = 10.0
KEYS = [AgentKey("L3 agent", Host(f"net{i}")) for i in range(4)]


def test_the_wait_ends_with_half_back_and_a_grace_as_long_as_the_outage() -> None:
    rejoin = Rejoin(KEYS, since=100.0, outage=25.0, agent_down_time=ADT)
    assert rejoin.waiting
    assert not rejoin.heard(KEYS[0], 101.0)
    assert not rejoin.heard(KEYS[1], 102.0)  # half back, but the grace runs to 120
    assert rejoin.quorum and rejoin.waiting
    assert not rejoin.expire(119.0)
    assert rejoin.expire(120.0) and not rejoin.waiting
    assert rejoin.describe() == "2 of 4 agents heard before the outage are back"


def test_the_grace_is_bounded_and_so_is_the_wait() -> None:
    rejoin = Rejoin(KEYS, since=0.0, outage=3600.0, agent_down_time=ADT)
    assert rejoin.grace_until == GRACE_LIMIT * ADT
    assert not rejoin.expire(REJOIN_LIMIT * ADT - 0.1)  # nobody back yet
    assert rejoin.expire(REJOIN_LIMIT * ADT) and not rejoin.quorum


def test_one_agent_back_of_four_is_no_quorum() -> None:
    rejoin = Rejoin(KEYS, since=0.0, outage=1.0, agent_down_time=ADT)
    assert not rejoin.heard(KEYS[0], 5.0)
    assert not rejoin.heard(KEYS[0], 6.0)  # the same agent twice
    assert rejoin.heard(KEYS[3], 7.0)  # half back, the 1 s grace long over


def test_nothing_expected_and_no_outage_means_no_wait() -> None:
    assert not Rejoin([], since=5.0, outage=0.0, agent_down_time=ADT).waiting
