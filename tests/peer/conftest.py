"""The peer suite's one session fixture: a real neutron-server 29 (tests/peer/rig.py), up once.

If the rig cannot come up (no MariaDB, a pip failure, ...) every peer test SKIPS with the reason,
unless RPCDAEMON_REQUIRE_PEER=1, which makes it a failure. RPCDAEMON_PEER_KEEP=1 leaves the rig
running after the session (the next session reuses it; ``python -m tests.peer.rig down`` stops it).
The session runs at the rig's default timers (report_interval 2.5 s, agent_down_time 10 s); a rig
left up with other timers is started over.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.peer.rig import Rig, RigError

_failure: list[str] = []


@pytest.fixture(scope="session")
def peer() -> Iterator[Rig]:
    if _failure:
        pytest.skip(_failure[0])
    rig = Rig.load()
    try:
        rig.up()
    except (RigError, OSError) as exc:
        reason = f"the real neutron-server rig could not come up: {exc}"
        _failure.append(reason)
        if os.environ.get("RPCDAEMON_REQUIRE_PEER") == "1":
            pytest.fail(f"{reason} (RPCDAEMON_REQUIRE_PEER=1)")
        pytest.skip(reason)
    try:
        yield rig
    finally:
        if os.environ.get("RPCDAEMON_PEER_KEEP") != "1":
            rig.down()


@pytest.fixture
def fresh_peer(peer: Rig) -> Iterator[Rig]:
    """The rig with every fake agent and every node alive (none frozen, crashed or slow)
    before and after the test."""
    peer.revive_all()
    yield peer
    peer.revive_all()
