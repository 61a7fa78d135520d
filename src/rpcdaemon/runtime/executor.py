"""Runs tasks against Neutron beside the reactor: a bounded pool, one task per resource.

The reactor hands tasks over (:meth:`Executor.submit`) and goes back to judging heartbeats;
a pool of ``max_concurrency`` worker threads, shared by every plugin, runs them. A resource
(router, network) is in at most one unfinished task: a task whose resource is busy is
refused, and the next pass re-plans it from what finished. The actions inside a task run
in order (remove the router from the dead agent, then add it to the target). The reactor
collects results with :meth:`Executor.take_finished`.

Safety rules applied here, because they need fresh data:

* before a task with a ``source_agent`` runs, the source is re-checked: a heartbeat seen on
  the bus since the task's pass began (``agent_is_back``) or a fresh API read saying
  ``alive: true`` stops every remaining task of that pass off that agent ("agents come back
  mid-evacuation");
* a temporary error (5xx, timeout, connection loss) is retried along the daemon's one
  :class:`~rpcdaemon.core.backoff.Backoff`; after a temporary error on an *add* the binding
  is re-read, because Neutron may have saved it before failing (router_added_to_agent is an
  RPC call to the agent);
* "already done" answers are success (the adapter maps them); a 409/404 that means
  "someone else changed this" ends the task quietly: the next pass re-plans from fresh
  state.

Shutdown: once ``stop`` is set no task starts; a task already running finishes its actions
(a legacy router is never left unhosted by a shutdown we could wait for).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rpcdaemon.adapters.ports import NeutronPort
from rpcdaemon.core.actions import Plan, Task
from rpcdaemon.core.backoff import Backoff
from rpcdaemon.core.errors import PermanentError, TemporaryError
from rpcdaemon.core.ids import AgentId
from rpcdaemon.runtime.actions import ActionObserver, ActionResult, ActionRunner, Outcome

__all__ = ["ActionResult", "Executor", "Outcome", "TaskResult"]

from rpcdaemon.logsetup import action_fields

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF = Backoff(initial=0.5, cap=4.0)
"""Delays between attempts of one action: 0.5, 1, 2, 4 s."""
DEFAULT_ATTEMPTS = 5


@dataclass(frozen=True)
class TaskResult:
    task: Task
    outcome: Outcome
    results: tuple[ActionResult, ...]
    detail: str = ""
    plugin: str = ""


AgentIsBack = Callable[[AgentId, float], bool]
"""(agent, since): has the agent sent a heartbeat after ``since`` (the pass's start)?"""


@dataclass
class _Job:
    plugin: str
    task: Task
    since: float
    keep: bool = True  # its result goes to take_finished (False: to its run() caller)
    done: threading.Event = field(default_factory=threading.Event)
    result: TaskResult | None = None


class Executor:
    """A pool of ``max_concurrency`` worker threads running tasks; thread-safe."""

    def __init__(
        self,
        neutron: NeutronPort,
        *,
        max_concurrency: int = 8,
        backoff: Backoff = DEFAULT_BACKOFF,
        attempts: int = DEFAULT_ATTEMPTS,
        stop: threading.Event | None = None,
        agent_is_back: AgentIsBack | None = None,
        recheck_interval: float = 1.0,
        on_action: ActionObserver | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self._neutron = neutron
        self._max_concurrency = max(1, max_concurrency)
        self._stop = stop or threading.Event()
        self._agent_is_back = agent_is_back
        self._recheck_interval = recheck_interval
        self._is_leader: Callable[[], bool] = lambda: True
        self._node_dead: Callable[[AgentId], bool] = lambda agent_id: False
        self._on_finished: Callable[[], None] | None = None
        self._actions = ActionRunner(
            neutron,
            backoff=backoff,
            attempts=attempts,
            stop=self._stop,
            sleep=sleep or self._stop.wait,
            is_leader=lambda: self._is_leader(),
            on_action=on_action,
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._busy: dict[str, _Job] = {}  # resource id -> its unfinished task
        self._jobs = 0  # unfinished tasks
        self._finished: list[TaskResult] = []
        self._returned: dict[AgentId, float] = {}  # agent -> latest pass start it was back for
        self._checked: dict[AgentId, tuple[float, float]] = {}  # agent -> (since, read at)

    # -- public -------------------------------------------------------------------------

    def set_is_leader(self, is_leader: Callable[[], bool]) -> None:
        """Checked before every task and every retry: a leader that steps down mid-plan
        (lost its election backend) stops acting at once instead of finishing the plan."""
        self._is_leader = is_leader

    def set_node_dead(self, hook: Callable[[AgentId], bool]) -> None:
        """Is the agent on a host the detector holds dead now (any thread)? Such a source
        is not re-checked with the API, which says ``alive`` until agent_down_time passes
        (that is the point of the fast path); a heartbeat on the bus still stops its moves,
        and the detector drops the verdict as soon as any agent of the host reports."""
        self._node_dead = hook

    def set_on_finished(self, hook: Callable[[], None] | None) -> None:
        """Called (on a worker thread) when the last unfinished task finishes: the
        reactor's wake-up, so that it verifies the work without waiting for its tick."""
        self._on_finished = hook

    def set_agent_is_back(self, hook: AgentIsBack | None) -> None:
        """Install the bus-side check (the intake's): a heartbeat seen since the pass began."""
        self._agent_is_back = hook

    def submit(
        self, plugin: str, tasks: Sequence[Task], *, since: float | None = None
    ) -> list[Task]:
        """Hand ``tasks`` to the pool without waiting; returns those accepted. A task whose
        resource is already in an unfinished task is refused. ``since`` is when the pass
        that planned them began (the reference for "the source agent came back"; default:
        now, on the monotonic clock)."""
        start = time.monotonic() if since is None else since
        return [job.task for job in self._enqueue(plugin, tasks, start)]

    def busy(self) -> frozenset[str]:
        """Resources in unfinished tasks (the guard drops new tasks on them)."""
        with self._lock:
            return frozenset(self._busy)

    @property
    def in_flight(self) -> int:
        """Tasks handed over and not finished."""
        with self._lock:
            return self._jobs

    def take_finished(self) -> list[TaskResult]:
        """Results of the tasks finished since the last call, in finishing order."""
        with self._lock:
            done, self._finished = self._finished, []
        return done

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no task is unfinished (tests, shutdown). False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._jobs:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def run(self, plan: Plan, *, since: float | None = None) -> list[TaskResult]:
        """Run every task of ``plan`` and wait for them; one result per task, in plan
        order. A task whose resource is busy elsewhere is SKIPPED. Its results are not
        left for :meth:`take_finished`."""
        start = time.monotonic() if since is None else since
        jobs = {id(j.task): j for j in self._enqueue(plan.plugin, plan.tasks, start, keep=False)}
        out: list[TaskResult] = []
        for task in plan.tasks:
            job = jobs.get(id(task))
            if job is None:
                out.append(self._skip(plan.plugin, task, "its resource is in another task"))
                continue
            job.done.wait()
            assert job.result is not None
            out.append(job.result)
        return out

    def dead_threads(self) -> tuple[str, ...]:
        """Worker threads that ended although the pool is open (a bug: the process must
        stop so that its supervisor restarts it)."""
        with self._lock:
            if self._closed:
                return ()
            return tuple(t.name for t in self._workers if not t.is_alive())

    def shutdown(self, timeout: float) -> bool:
        """No new task; queued ones are skipped (``stop`` is set by then), running ones
        finish. True when every worker ended within ``timeout`` seconds."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers)

    # -- the pool -----------------------------------------------------------------------

    def _enqueue(
        self, plugin: str, tasks: Sequence[Task], since: float, *, keep: bool = True
    ) -> list[_Job]:
        accepted: list[_Job] = []
        with self._lock:
            if self._closed:
                return []
            for task in tasks:
                if any(r in self._busy for r in task.resources):
                    continue
                job = _Job(plugin, task, since, keep)
                for resource in task.resources:
                    self._busy[resource] = job
                self._jobs += 1
                accepted.append(job)
            self._start_workers(len(accepted))
        for job in accepted:
            self._queue.put(job)
        return accepted

    def _start_workers(self, wanted: int) -> None:
        """Grow the pool up to ``max_concurrency`` (lock held): idle daemons start no threads."""
        while len(self._workers) < min(self._max_concurrency, self._jobs) and wanted:
            worker = threading.Thread(
                target=self._work, name=f"rpcd-exec-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                result = self._run_task(job.plugin, job.task, job.since)
            except Exception as exc:  # a bug must not kill the worker
                logger.exception("[%s] task failed unexpectedly: %s", job.plugin, job.task.reason)
                result = TaskResult(job.task, Outcome.FAILED, (), f"unexpected error: {exc}")
            self._finish(job, result)

    def _finish(self, job: _Job, result: TaskResult) -> None:
        result = TaskResult(result.task, result.outcome, result.results, result.detail, job.plugin)
        with self._changed:
            for resource in job.task.resources:
                if self._busy.get(resource) is job:
                    del self._busy[resource]
            self._jobs -= 1
            if job.keep:
                self._finished.append(result)
            job.result = result
            idle = self._jobs == 0
            self._changed.notify_all()
        job.done.set()
        if job.keep and idle and self._on_finished is not None:
            try:
                self._on_finished()
            except Exception:
                logger.exception("on_finished hook failed")

    # -- tasks --------------------------------------------------------------------------

    def _run_task(self, plugin: str, task: Task, since: float) -> TaskResult:
        if self._stop.is_set():
            return self._skip(plugin, task, "daemon stopping")
        if not self._is_leader():
            return self._skip(plugin, task, "no longer the leader")
        if task.source_agent is not None and self._source_is_back(task.source_agent, since):
            return self._skip(plugin, task, f"agent {task.source_agent} is alive again")
        results: list[ActionResult] = []
        for index, action in enumerate(task.actions):
            result = self._actions.run(plugin, action)
            results.append(result)
            if result.outcome in (Outcome.FAILED, Outcome.SKIPPED):
                rest = task.actions[index + 1 :]
                results.extend(
                    self._actions.notify(ActionResult(a, Outcome.SKIPPED, "an earlier step failed"))
                    for a in rest
                )
                return TaskResult(task, Outcome.FAILED, tuple(results), result.detail)
        return TaskResult(task, Outcome.OK, tuple(results))

    def _skip(self, plugin: str, task: Task, why: str) -> TaskResult:
        logger.info(
            "[%s] skipping: %s (%s)",
            plugin,
            task.reason,
            why,
            extra=action_fields(
                plugin,
                "skip",
                ",".join(sorted(task.resources)),
                task.source_agent,
                task.reason,
                "skipped",
            ),
        )
        results = tuple(
            self._actions.notify(ActionResult(a, Outcome.SKIPPED, why)) for a in task.actions
        )
        return TaskResult(task, Outcome.SKIPPED, results, why, plugin)

    def _source_is_back(self, agent_id: AgentId, since: float) -> bool:
        """Back for a task planned at ``since``: found back by a task of this pass (or a
        later one), a heartbeat after ``since``, or the API's ``alive`` read now."""
        with self._lock:
            if self._returned.get(agent_id, float("-inf")) >= since:
                return True
        if self._agent_is_back is not None and self._agent_is_back(agent_id, since):
            self._mark_returned(agent_id, since, "a heartbeat arrived on the bus")
            return True
        if self._node_dead(agent_id):
            return False  # a confirmed node death: the API cannot know yet
        now = time.monotonic()
        with self._lock:
            last = self._checked.get(agent_id)
            if last is not None and last[0] == since and now - last[1] < self._recheck_interval:
                return False
            self._checked[agent_id] = (since, now)
        try:
            agent = self._neutron.get_agent(agent_id)
        except TemporaryError as exc:
            # Cannot confirm it is still dead: err on the side of doing nothing now.
            logger.warning("cannot re-check agent %s (%s); holding its moves", agent_id, exc)
            self._mark_returned(agent_id, since, "re-check failed")
            return True
        except PermanentError as exc:
            # e.g. 401/403: we cannot confirm it is still dead, so we do not act on it.
            logger.warning("cannot re-check agent %s (%s); holding its moves", agent_id, exc)
            self._mark_returned(agent_id, since, "re-check refused")
            return True
        if agent is not None and agent.alive:
            self._mark_returned(agent_id, since, "the API reports it alive")
            return True
        return False

    def _mark_returned(self, agent_id: AgentId, since: float, why: str) -> None:
        with self._lock:
            first = self._returned.get(agent_id, float("-inf")) < since
            self._returned[agent_id] = max(since, self._returned.get(agent_id, since))
        if first:
            logger.warning("agent %s is back (%s): stopping the moves off it", agent_id, why)
