"""Fixtures of the hostile-input suite: the corpus seed (``RPCDAEMON_HOSTILE_SEED`` to replay
another one; every failure message prints the seed) and the e2e rig (``make_rig``)."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import make_rig  # noqa: F401  (the e2e rig, for test_hostile_e2e)

DEFAULT_SEED = 20261202


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("RPCDAEMON_HOSTILE_SEED", DEFAULT_SEED))
