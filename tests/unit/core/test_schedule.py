"""The pass schedule (pure) and the one backoff rule."""

from __future__ import annotations

import pytest

from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.schedule import (
    FOLLOW_UP_DELAY,
    NEWCOMER_INTERVAL,
    NOTIFICATION_INTERVAL,
    PassSchedule,
)


def test_backoff_doubles_to_its_cap_and_jitter_scales_half_to_all() -> None:
    rule = Backoff(initial=1.0, cap=30.0)
    assert [rule.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert rule.delay(3, jitter=0.0) == 4.0 and rule.delay(3, jitter=1.0) == 8.0
    assert rule.delay(10_000) == 30.0  # no overflow


def test_startup_and_resync_are_due_at_once() -> None:
    s = PassSchedule(resync_interval=60)
    assert s.due(0.0) == {"startup", "resync"}
    s = s.started(0.0).passed(0.0, recount=False, awaiting_confirmation=False)
    assert s.due(59.9) == frozenset() and s.due(60.0) == {"resync"}


def test_after_a_failed_pass_nothing_runs_before_the_announced_delay() -> None:
    s = PassSchedule(resync_interval=60).started(0.0)
    s, delay = s.failed(10.0)
    assert delay == 1.0
    s = s.call("agent-dead")  # a death during the backoff
    assert s.due(10.5) == frozenset() and s.held_until(10.5) == 11.0
    assert "agent-dead" in s.pending(10.5)
    assert "agent-dead" in s.due(11.0)  # and it runs when the backoff ends
    s, delay = s.started(11.0).failed(11.0)
    assert delay == 2.0 and s.due(12.9) == frozenset()
    s, delay = s.started(13.0).failed(13.0)
    assert delay == 4.0
    s = s.passed(17.0, recount=False, awaiting_confirmation=False)
    assert s.errors == 0 and s.held_until(17.0) is None


def test_work_done_verifies_soon_and_failed_work_backs_off() -> None:
    s = PassSchedule(resync_interval=60).started(0.0)
    s = s.passed(0.0, recount=False, awaiting_confirmation=False)
    s, delay = s.work_done(5.0, failed=False, deferred=False)
    assert delay == FOLLOW_UP_DELAY and s.due(5.0 + delay) == {"follow-up"}
    s, delay = s.work_done(5.0, failed=False, deferred=True)
    assert delay == 0.0  # the capped rest: no reason to wait
    delays = []
    for _ in range(4):
        s, delay = s.started(5.0).work_done(5.0, failed=True, deferred=False)
        delays.append(delay)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    # a failed task does not hold back a death
    assert "agent-dead" in s.call("agent-dead").due(5.1)


def test_newcomers_get_a_pass_at_most_every_interval() -> None:
    s = PassSchedule(resync_interval=600).started(0.0)
    s = s.passed(0.0, recount=False, awaiting_confirmation=False)
    s = s.newcomers()
    assert s.due(1.0) == {"agent-new"}
    s = s.started(1.0).newcomers()
    assert s.due(1.0 + NEWCOMER_INTERVAL - 0.1) == frozenset()
    assert s.due(1.0 + NEWCOMER_INTERVAL) == {"agent-new"}
    assert s.wake(1.0, 10.0) == pytest.approx(NEWCOMER_INTERVAL)


def test_awaiting_confirmation_polls_back_off_up_to_the_resync_interval() -> None:
    s = PassSchedule(resync_interval=5).started(0.0)
    gaps = []
    for _ in range(5):
        s = s.passed(0.0, recount=False, awaiting_confirmation=True)
        assert s.follow_up_at is not None
        gaps.append(s.follow_up_at)
        s = s.started(0.0)
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_flood_of_notifications_costs_one_pass_per_interval() -> None:
    """The first notification of a burst is served at once; a flood (forged or real) gets
    one pass per NOTIFICATION_INTERVAL, not one per message (issue 9)."""
    s = PassSchedule(resync_interval=60).started(0.0)
    s = s.passed(0.0, recount=False, awaiting_confirmation=False)
    s = s.notifications("notification:network.create.end")
    assert s.due(1.0) == {"notification:network.create.end"}
    s = s.started(1.0).passed(1.0, recount=False, awaiting_confirmation=False)
    passes = 0
    t = 1.0
    while t < 1.0 + 10 * NOTIFICATION_INTERVAL:
        t += 0.01  # 100 notifications a second
        s = s.notifications("notification:subnet.create.end")
        if s.due(t):
            passes += 1
            s = s.started(t).passed(t, recount=False, awaiting_confirmation=False)
        else:
            assert 0 < s.wake(t, 1.0) <= NOTIFICATION_INTERVAL
    assert 9 <= passes <= 10  # 10 intervals of 100 notifications each: ~one pass each
    # a death is never held back by the notification interval
    s = s.notifications("notification:network.delete.end").call("agent-dead")
    assert "agent-dead" in s.due(t)
