"""Runs a Plan against Neutron: bounded concurrency, idempotent steps, retries, re-checks.

Tasks run concurrently (at most ``max_concurrency`` at once); the actions inside a task
run in order (remove the router from the dead agent, then add it to the target).

Safety rules applied here, because they need fresh data:

* before a task with a ``source_agent`` runs, the source is re-checked: a heartbeat seen on
  the bus (``agent_is_back``) or a fresh API read saying ``alive: true`` stops every
  remaining task off that agent ("agents come back mid-evacuation");
* a temporary error (5xx, timeout, connection loss) is retried with capped exponential
  backoff; after a temporary error on an *add* the binding is re-read, because Neutron may
  have saved it before failing (router_added_to_agent is an RPC call to the agent);
* "already done" answers are success (the adapter maps them); a 409/404 that means
  "someone else changed this" ends the task quietly: the next pass re-plans from fresh
  state.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Action, Plan, Task, Verb
from rpcdaemon.core.errors import ConflictError, NotFoundError, PermanentError, TemporaryError
from rpcdaemon.core.ids import AgentId, NetworkId, RouterId

logger = logging.getLogger(__name__)

DEFAULT_BACKOFFS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""Delays between attempts of one action; len + 1 attempts in all."""


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


@dataclass(frozen=True)
class TaskResult:
    task: Task
    outcome: Outcome
    results: tuple[ActionResult, ...]
    detail: str = ""


ActionObserver = Callable[[ActionResult], None]


class Executor:
    """Executes plans. Thread-safe for one ``run`` at a time (the reactor's)."""

    def __init__(
        self,
        neutron: NeutronPort,
        *,
        max_concurrency: int = 8,
        backoffs: Sequence[float] = DEFAULT_BACKOFFS,
        stop: threading.Event | None = None,
        agent_is_back: Callable[[AgentId], bool] | None = None,
        recheck_interval: float = 1.0,
        on_action: ActionObserver | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self._neutron = neutron
        self._max_concurrency = max(1, max_concurrency)
        self._backoffs = tuple(backoffs)
        self._stop = stop or threading.Event()
        self._agent_is_back = agent_is_back
        self._recheck_interval = recheck_interval
        self._on_action = on_action
        self._sleep = sleep or self._stop.wait
        self._is_leader: Callable[[], bool] = lambda: True
        self._lock = threading.Lock()
        self._returned: set[AgentId] = set()
        self._checked_at: dict[AgentId, float] = {}

    # -- public -------------------------------------------------------------------------

    def set_is_leader(self, is_leader: Callable[[], bool]) -> None:
        """Checked before every task and every retry: a leader that steps down mid-plan
        (lost its election backend) stops acting at once instead of finishing the plan."""
        self._is_leader = is_leader

    def set_agent_is_back(self, hook: Callable[[AgentId], bool] | None) -> None:
        """Install the bus-side check (the reactor's): a heartbeat seen since the pass began."""
        self._agent_is_back = hook

    def run(self, plan: Plan) -> list[TaskResult]:
        """Execute every task of ``plan``; returns one result per task, in plan order."""
        if not plan.tasks:
            return []
        with self._lock:
            self._returned = set()
            self._checked_at = {}
        workers = min(self._max_concurrency, len(plan.tasks))
        if workers == 1:
            return [self._run_task(plan.plugin, t) for t in plan.tasks]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpcd-exec") as pool:
            return list(pool.map(lambda t: self._run_task(plan.plugin, t), plan.tasks))

    # -- tasks --------------------------------------------------------------------------

    def _run_task(self, plugin: str, task: Task) -> TaskResult:
        if self._stop.is_set():
            return self._skip(task, "daemon stopping")
        if not self._is_leader():
            return self._skip(task, "no longer the leader")
        if task.source_agent is not None and self._source_is_back(task.source_agent):
            return self._skip(task, f"agent {task.source_agent} is alive again")
        results: list[ActionResult] = []
        for index, action in enumerate(task.actions):
            result = self._run_action(plugin, action)
            results.append(result)
            if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
                rest = task.actions[index + 1 :]
                results.extend(
                    self._notify(ActionResult(a, Outcome.SKIPPED, "an earlier step failed"))
                    for a in rest
                )
                return TaskResult(task, Outcome.FAILED, tuple(results), result.detail)
        return TaskResult(task, Outcome.OK, tuple(results))

    def _skip(self, task: Task, why: str) -> TaskResult:
        logger.info("skipping: %s (%s)", task.reason, why)
        results = tuple(self._notify(ActionResult(a, Outcome.SKIPPED, why)) for a in task.actions)
        return TaskResult(task, Outcome.SKIPPED, results, why)

    def _source_is_back(self, agent_id: AgentId) -> bool:
        with self._lock:
            if agent_id in self._returned:
                return True
        if self._agent_is_back is not None and self._agent_is_back(agent_id):
            self._mark_returned(agent_id, "a heartbeat arrived on the bus")
            return True
        now = time.monotonic()
        with self._lock:
            last = self._checked_at.get(agent_id)
            if last is not None and now - last < self._recheck_interval:
                return False
            self._checked_at[agent_id] = now
        try:
            agent = self._neutron.get_agent(agent_id)
        except TemporaryError as exc:
            # Cannot confirm it is still dead: err on the side of doing nothing now.
            logger.warning("cannot re-check agent %s (%s); holding its moves", agent_id, exc)
            self._mark_returned(agent_id, "re-check failed")
            return True
        except PermanentError as exc:
            # e.g. 401/403: we cannot confirm it is still dead, so we do not act on it.
            logger.warning("cannot re-check agent %s (%s); holding its moves", agent_id, exc)
            self._mark_returned(agent_id, "re-check refused")
            return True
        if agent is not None and agent.alive:
            self._mark_returned(agent_id, "the API reports it alive")
            return True
        return False

    def _mark_returned(self, agent_id: AgentId, why: str) -> None:
        with self._lock:
            first = agent_id not in self._returned
            self._returned.add(agent_id)
        if first:
            logger.warning("agent %s is back (%s): stopping the moves off it", agent_id, why)

    # -- actions ------------------------------------------------------------------------

    def _run_action(self, plugin: str, action: Action) -> ActionResult:
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
                if attempts > len(self._backoffs) or self._stop.is_set():
                    break
                if not self._is_leader():
                    last_error += " (no longer the leader: not retrying)"
                    break
                delay = max(self._backoffs[attempts - 1], min(exc.delay or 0.0, 60.0))
                logger.warning(
                    "%s: attempt %d/%d failed (%s); retrying in %.1fs",
                    action.describe(),
                    attempts,
                    len(self._backoffs) + 1,
                    last_error,
                    delay,
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
        )
        return self._notify(
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
        )
        return self._notify(
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
        )
        return self._notify(
            ActionResult(action, outcome, detail, attempts, time.monotonic() - started)
        )

    def _notify(self, result: ActionResult) -> ActionResult:
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
