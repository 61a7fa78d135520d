"""One action against Neutron: retries along the daemon's backoff, "already done" answers,
and the re-read of a binding after an ambiguous answer. Used by the executor's workers."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Action, Verb
from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.errors import ConflictError, NotFoundError, PermanentError, TemporaryError
from rpcdaemon.core.ids import NetworkId, RouterId
from rpcdaemon.logsetup import action_fields

logger = logging.getLogger(__name__)


class Outcome(str, enum.Enum):
    OK = "ok"
    ALREADY = "already"  # nothing to do: someone (or an earlier try) did it
    FAILED = "failed"
    SKIPPED = "skipped"  # not run: source agent back, stop requested, earlier step failed


@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcome: Outcome
    detail: str = ""
    attempts: int = 0
    seconds: float = 0.0


ActionObserver = Callable[[ActionResult], None]


class ActionRunner:
    """Runs actions; thread-safe (no state of its own beyond its settings)."""

    def __init__(
        self,
        neutron: NeutronPort,
        *,
        backoff: Backoff,
        attempts: int,
        stop: threading.Event,
        sleep: Callable[[float], bool],
        is_leader: Callable[[], bool],
        on_action: ActionObserver | None,
    ) -> None:
        self._neutron = neutron
        self._backoff = backoff
        self._attempts = max(1, attempts)
        self._stop = stop
        self._sleep = sleep
        self._is_leader = is_leader
        self._on_action = on_action

    def run(self, plugin: str, action: Action) -> ActionResult:
        """Run one action with retries; never raises Neutron errors."""
        started = time.monotonic()
        attempts = 0
        last_error = ""
        while True:
            attempts += 1
            try:
                self._call(action)
            except (NotFoundError, ConflictError) as exc:
                return self._finish_refused(plugin, action, exc, attempts, started)
            except TemporaryError as exc:
                last_error = str(exc) or type(exc).__name__
                if self._is_verb_add(action) and self._binding_present(action):
                    return self._done(
                        plugin, action, Outcome.OK, "saved despite the error", attempts, started
                    )
                if attempts >= self._attempts or self._stop.is_set():
                    break
                if not self._is_leader():
                    last_error += " (no longer the leader: not retrying)"
                    break
                delay = max(self._backoff.delay(attempts - 1), min(exc.delay or 0.0, 60.0))
                logger.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.1fs",
                    action.describe(),
                    attempts,
                    self._attempts,
                    last_error,
                    delay,
                    extra=_fields(plugin, action),
                )
                if self._sleep(delay):
                    break  # stop requested during the wait
            except PermanentError as exc:
                last_error = str(exc) or type(exc).__name__
                break
            else:
                return self._done(plugin, action, Outcome.OK, "", attempts, started)
        logger.error(
            "[%s] failed: %s after %d attempt(s): %s (the next pass re-plans)",
            plugin,
            action.describe(),
            attempts,
            last_error,
            extra=_fields(plugin, action, Outcome.FAILED),
        )
        return self.notify(
            ActionResult(action, Outcome.FAILED, last_error, attempts, time.monotonic() - started)
        )

    def _finish_refused(
        self, plugin: str, action: Action, exc: Exception, attempts: int, started: float
    ) -> ActionResult:
        detail = str(exc) or type(exc).__name__
        if not self._is_verb_add(action):
            # Removing something already gone (or no longer there) is what we wanted.
            return self._done(plugin, action, Outcome.ALREADY, detail, attempts, started)
        if self._binding_present(action):
            return self._done(plugin, action, Outcome.ALREADY, detail, attempts, started)
        logger.info(
            "[%s] %s refused (%s); someone else changed it, the next pass re-plans",
            plugin,
            action.describe(),
            detail,
            extra=_fields(plugin, action, Outcome.SKIPPED),
        )
        return self.notify(
            ActionResult(action, Outcome.SKIPPED, detail, attempts, time.monotonic() - started)
        )

    def _done(
        self,
        plugin: str,
        action: Action,
        outcome: Outcome,
        detail: str,
        attempts: int,
        started: float,
    ) -> ActionResult:
        logger.info(
            "[%s] %s%s: %s",
            plugin,
            action.describe(),
            "" if outcome is Outcome.OK else f" ({outcome.value}: {detail})",
            action.reason,
            extra=_fields(plugin, action, outcome),
        )
        return self.notify(
            ActionResult(action, outcome, detail, attempts, time.monotonic() - started)
        )

    def notify(self, result: ActionResult) -> ActionResult:
        if self._on_action is not None:
            try:
                self._on_action(result)
            except Exception:
                logger.exception("action observer failed")
        return result

    @staticmethod
    def _is_verb_add(action: Action) -> bool:
        return action.verb in (Verb.ADD_ROUTER, Verb.ADD_NETWORK)

    def _call(self, action: Action) -> None:
        n = self._neutron
        if action.verb is Verb.ADD_ROUTER:
            n.add_router(action.agent_id, RouterId(action.resource_id))
        elif action.verb is Verb.REMOVE_ROUTER:
            n.remove_router(action.agent_id, RouterId(action.resource_id))
        elif action.verb is Verb.ADD_NETWORK:
            n.add_network(action.agent_id, NetworkId(action.resource_id))
        else:
            n.remove_network(action.agent_id, NetworkId(action.resource_id))

    def _binding_present(self, action: Action) -> bool:
        """Re-read the binding after an ambiguous answer: did the add take effect?"""
        try:
            if action.verb is Verb.ADD_ROUTER:
                agents = self._neutron.router_agents(RouterId(action.resource_id))
            else:
                agents = self._neutron.network_agents(NetworkId(action.resource_id))
        except Exception as exc:  # a failed re-read proves nothing either way
            logger.debug("re-reading the binding for %s failed: %s", action.describe(), exc)
            return False
        return action.agent_id in agents


def _fields(plugin: str, action: Action, outcome: Outcome | None = None) -> dict[str, str | None]:
    """The action as fields of the log record (``log_format = json``)."""
    return action_fields(
        plugin,
        action.verb.value,
        action.resource_id,
        action.agent_id,
        action.reason,
        None if outcome is None else outcome.value,
    )
