"""The pass schedule: when the reactor snapshots Neutron and plans (pure, takes ``now``).

A pass is called for by *triggers*: an agent declared dead, back from dead or first heard
(``agent-dead``, ``agent-back``, ``agent-new``), a notification, leadership gained, the
periodic ``resync``, a ``follow-up`` (verify what the executor finished, or the rest of a
capped plan), and ``startup``. The schedule collects them and says when they are due.

Backoff, as the log says it: after a pass that *failed* (the snapshot or a planner step
raised) no pass starts before ``not_before``, whatever calls for one; the triggers wait
and run together when it passes (a death included: the log says so). Tasks that failed
after their retries only delay the follow-up along the same backoff: a new death still
gets its pass at once (its resources are not the failing ones).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rpcdaemon.core.backoff import Backoff

PASS_BACKOFF = Backoff(initial=1.0, cap=30.0)
"""Delay before the next pass after a failed pass, or after tasks failed: 1, 2, 4 ... 30 s."""
FOLLOW_UP_DELAY = 0.5
"""Seconds between the end of the work a pass handed over and the pass that verifies it."""
NEWCOMER_INTERVAL = 5.0
"""At most one ``agent-new`` pass this often: keys Neutron does not know yet may be a
replacement node (fill it now) or noise on an open bus (a snapshot each time would not do)."""
NOTIFICATION_INTERVAL = 2.0
"""At most one notification pass this often: the first notification of a burst (a network
and its subnet) is served at once, the rest of the burst by the next pass; a flood of
notifications, forged or real, costs one snapshot per interval, not one per message."""


@dataclass(frozen=True)
class PassSchedule:
    resync_interval: float
    backoff: Backoff = PASS_BACKOFF
    triggers: frozenset[str] = frozenset({"startup"})
    next_resync: float = 0.0
    follow_up_at: float | None = None
    not_before: float | None = None  # after a failed pass: no pass before this instant
    errors: int = 0  # consecutive failed passes
    failing: int = 0  # consecutive rounds of handed-over work that left a failed task
    unconfirmed: int = 0  # consecutive passes waiting for the API to confirm a death
    newcomer_waiting: bool = False  # agents Neutron does not know were heard
    newcomer_at: float = 0.0  # the earliest instant of the next agent-new pass
    notified: frozenset[str] = frozenset()  # notification triggers waiting for their turn
    notified_at: float = 0.0  # the earliest instant of the next notification pass

    def call(self, *triggers: str) -> PassSchedule:
        """Ask for a pass (it starts at the next tick, or when ``not_before`` passes)."""
        return replace(self, triggers=self.triggers | frozenset(triggers)) if triggers else self

    def newcomers(self) -> PassSchedule:
        """Agents Neutron does not know were first heard: an ``agent-new`` pass, at most
        one every :data:`NEWCOMER_INTERVAL` seconds."""
        return replace(self, newcomer_waiting=True)

    def notifications(self, *triggers: str) -> PassSchedule:
        """Notifications a planner listens for: a pass, at most one every
        :data:`NOTIFICATION_INTERVAL` seconds."""
        return replace(self, notified=self.notified | frozenset(triggers)) if triggers else self

    def pending(self, now: float) -> frozenset[str]:
        """Every trigger calling for a pass at ``now``, due or withheld by ``not_before``."""
        found = set(self.triggers)
        if self.notified and now >= self.notified_at:
            found.update(self.notified)
        if self.newcomer_waiting and now >= self.newcomer_at:
            found.add("agent-new")
        if now >= self.next_resync:
            found.add("resync")
        if self.follow_up_at is not None and now >= self.follow_up_at:
            found.add("follow-up")
        return frozenset(found)

    def held_until(self, now: float) -> float | None:
        """When the backoff after a failed pass ends, while it holds at ``now``."""
        if self.not_before is not None and now < self.not_before:
            return self.not_before
        return None

    def due(self, now: float) -> frozenset[str]:
        """The triggers of the pass to run at ``now``; empty: no pass now."""
        if self.held_until(now) is not None:
            return frozenset()
        return self.pending(now)

    def started(self, now: float) -> PassSchedule:
        """A pass starts at ``now``: its triggers and follow-up are consumed (and waiting
        newcomers are seen by its snapshot)."""
        newcomer_at = now + NEWCOMER_INTERVAL if self.newcomer_waiting else self.newcomer_at
        notified_at = now + NOTIFICATION_INTERVAL if self.notified else self.notified_at
        return replace(
            self,
            triggers=frozenset(),
            follow_up_at=None,
            newcomer_waiting=False,
            newcomer_at=newcomer_at,
            notified=frozenset(),
            notified_at=notified_at,
        )

    def served(self, trigger: str) -> PassSchedule:
        """``trigger`` alone was served (a node death planned from the last snapshot); the
        other triggers, the follow-up and the waiting notifications stay due."""
        return replace(self, triggers=self.triggers - {trigger})

    def resync_skipped(self, now: float) -> PassSchedule:
        """The cheap resync found nothing new: no pass, the next resync in an interval."""
        return replace(self, triggers=frozenset(), next_resync=now + self.resync_interval)

    def failed(self, now: float) -> tuple[PassSchedule, float]:
        """The pass failed: the next one (a retry, or whatever calls for one meanwhile)
        at ``now + delay``, not sooner. Returns the delay."""
        delay = self.backoff.delay(self.errors)
        retry = now + delay
        return replace(self, not_before=retry, follow_up_at=retry, errors=self.errors + 1), delay

    def passed(self, now: float, *, recount: bool, awaiting_confirmation: bool) -> PassSchedule:
        """The pass finished. ``recount``: its plan was held for agents dying together,
        look again shortly. ``awaiting_confirmation``: dead by our clock, not yet by the
        API: look again soon, backing off (capped at the resync interval)."""
        follow_up = self.follow_up_at
        unconfirmed = self.unconfirmed
        if recount:
            follow_up = now + FOLLOW_UP_DELAY
        elif awaiting_confirmation:
            follow_up = now + min(2.0**self.unconfirmed, self.resync_interval)
            unconfirmed += 1
        else:
            unconfirmed = 0
        return replace(
            self,
            errors=0,
            not_before=None,
            next_resync=now + self.resync_interval,
            follow_up_at=follow_up,
            unconfirmed=unconfirmed,
        )

    def work_done(self, now: float, *, failed: bool, deferred: bool) -> tuple[PassSchedule, float]:
        """Every task handed over has finished: verify (or take the capped rest) from a
        fresh snapshot. After failed tasks, the follow-up backs off. Returns the delay."""
        if failed:
            delay = self.backoff.delay(self.failing)
            return replace(self, follow_up_at=now + delay, failing=self.failing + 1), delay
        delay = 0.0 if deferred else FOLLOW_UP_DELAY
        return replace(self, follow_up_at=now + delay, failing=0), delay

    def wake(self, now: float, check_interval: float) -> float:
        """Seconds the reactor may wait for input before its next tick."""
        wait = check_interval
        newcomer = self.newcomer_at if self.newcomer_waiting else None
        notified = self.notified_at if self.notified else None
        for instant in (self.follow_up_at, self.not_before, newcomer, notified):
            if instant is not None and instant > now:
                wait = min(wait, instant - now)
        if self.follow_up_at is not None and self.follow_up_at <= now:
            wait = 0.0 if self.held_until(now) is None else wait
        return max(0.0, wait)
