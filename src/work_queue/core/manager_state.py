"""The manager core: ``ManagerState.handle(event, now) -> list[Instruction]``.

The shell (``manager/queue.py`` and its loop) turns what happens into events
(``core/events.py``) and carries out the instructions the core answers with
(``core/instructions.py``): send a task, send ``kill``/``unlink``, fetch outputs, drop a
worker, block a host, and a ``Transition`` for every state change of a task, from which the
shell writes the transactions log in one place.  The rules live here or in
``core/policies.py``: dispatch (``next_dispatch`` then ``TaskSent``), result precedence,
retries and requeues (max_retries, forsaken tasks, lost workers in a row), fast abort and its
900 s host block, draining, factory trimming, which outputs to fetch, cancel -> kill.

The core holds the user's ``Task`` objects as its task records: a separate slotted record
would have to be kept in step with the ``Task`` (whose fields the application reads after
``wait()``) and copied on every dispatch and result, work on the path of every task that the
speed requirement does not leave room for.  Nothing else than this core and the shell's
carrying out of its instructions writes their scheduling fields.

Invariant (checked by :meth:`validate`): every task is in exactly one place that matches its
state, and each worker's in-use resources equal the sum of the boxes of its tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..constants import (
    WORK_QUEUE_RESULT_FORSAKEN,
    WORK_QUEUE_RESULT_INPUT_MISSING,
    WORK_QUEUE_RESULT_SUCCESS,
)
from ..protocol.extensions import PREFETCH, RESUME
from . import events as ev
from . import task_state as ts
from .bookkeeping import LOST_WORKERS_LIMIT, Dispatch
from .history import HISTORY_LENGTH, STORY_LENGTH
from .instructions import (
    BlockHost,
    CategoryChanged,
    DropWorker,
    FetchOutputs,
    Instruction,
    Note,
    SendKill,
    SendTask,
    Transition,
)
from .policies import FAST_ABORT_BLOCK_SECONDS, merge_result, outputs_to_fetch, result_of
from .resume import ResumeRules
from .scheduling import WorkerRecord
from .stats import HAND_STATS

__all__ = ["HISTORY_LENGTH", "LOST_WORKERS_LIMIT", "STORY_LENGTH", "Dispatch", "ManagerState",
           "SendTask", "Transition"]

#: Resources a worker reports with ``resource <name> ...`` lines.
_RESOURCE_NAMES = ("cores", "memory", "disk", "gpus", "workers")


def _usec(t: float) -> int:
    return int(t * 1e6)


class ManagerState(ResumeRules):
    """The manager's pure core.  See the module docstring."""

    def __init__(self, now: float, seed: int | None = None) -> None:
        super().__init__(now, seed)
        #: ``max_workers`` of each factory, as last read from the catalog (see Tick).
        self.factory_limits: dict[str, int] = {}
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            ev.TaskSubmitted: self._on_submitted,
            ev.TaskCancelled: self._on_cancelled,
            ev.TaskSent: self._on_sent,
            ev.TaskInputMissing: self._on_input_missing,
            ev.WorkerConnected: self._on_worker_connected,
            ev.ResourcesReported: self._on_resources,
            ev.WorkerInfo: self._on_info,
            ev.FeatureReported: self._on_feature,
            ev.WorkerResumed: self.resume,
            ev.ResultReceived: self._on_result,
            ev.OutputBytesComing: self._on_output_bytes,
            ev.OutputFailed: self._on_output_failed,
            ev.OutputsFetched: self._on_outputs_fetched,
            ev.WorkerGone: self._on_worker_gone,
            ev.Tick: self._on_tick,
            ev.SlowTaskCheck: self._on_slow_check,
            ev.TimeSpent: self._on_time_spent,
        }

    def handle(self, event: ev.Event, now: float) -> list[Instruction]:
        """Apply ``event`` at time ``now``; the instructions for the shell, in order."""
        self._handlers[type(event)](event, now)
        out = self.out
        self.out = []
        return out

    def collect(self) -> list[Instruction]:
        """Instructions left by the queries (``next_dispatch`` failing expired tasks,
        ``pop_returned`` returning one): the shell carries them out after calling them."""
        out = self.out
        self.out = []
        return out

    # -- tasks -------------------------------------------------------------------------------

    def _on_submitted(self, e: ev.TaskSubmitted, now: float) -> None:
        self.submit(e.task, now)

    def submit_task(self, task: Any, now: float) -> list[Instruction]:
        """``handle(TaskSubmitted(task), now)`` without the event record: the same rule, for
        the shell's submit(), which a program may call a million times in a row."""
        self.submit(task, now)
        out = self.out
        if out:
            self.out = []
        return out

    def _on_cancelled(self, e: ev.TaskCancelled, now: float) -> None:
        found = self.cancel(e.task_id, now)
        if found is not None and found[1] is not None:
            self.out.append(SendKill(found[0], found[1].key, outputs_too=True))

    def _on_sent(self, e: ev.TaskSent, now: float) -> None:
        self.out = self.task_sent(e.send, e.started, e.bytes_sent, e.send_usec, e.address,
                                  e.cached, now)

    # The three calls below are ``handle(TaskSent/ResultReceived/OutputsFetched, now)``
    # without the event record and the table lookup: the same rules, for the shell's path of
    # every task (like submit_task).  Each returns the instructions (the shared empty list
    # when there are none: the caller only reads it); its handler puts them back for handle().

    def task_sent(self, d: SendTask, started: float, bytes_sent: int, send_usec: int,
                  address: str, cached: Any, now: float) -> list[Instruction]:
        """``handle(TaskSent(d, started, bytes_sent, send_usec, address, cached), now)``."""
        task, worker = d.task, d.worker
        task.send_input_start = start = _usec(started)
        task.send_input_finish = finish = _usec(now)
        task.time_when_commit_start = start
        task.time_when_commit_end = finish
        task.hostname = worker.hostname
        task.host = address
        counters = self.counters
        counters.time_send += send_usec
        if bytes_sent:
            task.total_bytes_sent += bytes_sent
            counters.bytes_sent += bytes_sent
            worker.total_bytes_transferred += bytes_sent
        for name, size in cached:
            worker.cached[name] = size
        self.commit_dispatch(d, now)
        out = self.out
        if out:
            self.out = []
        return out

    def _on_input_missing(self, e: ev.TaskInputMissing, now: float) -> None:
        """CCTools: the task comes back INPUT_MISSING with return status -1."""
        task = e.send.task
        task._output = f"work_queue: {e.reason}\n".encode()
        task.return_status = -1
        for name, size in e.cached:
            e.send.worker.cached[name] = size
        self.fail(task, WORK_QUEUE_RESULT_INPUT_MISSING, now)
        self.out.append(SendKill(task, e.send.worker.key, kill=False, outputs_too=False))

    def _on_result(self, e: ev.ResultReceived, now: float) -> None:
        self.out = self.result_received(e.worker, e.task_id, e.status, e.exit_code,
                                        e.exec_time_usec, e.output, e.monitor_codes, now)

    def result_received(self, w: WorkerRecord, task_id: int, status: int, exit_code: int,
                        exec_time_usec: int, output: bytes,
                        monitor_codes: tuple[int, int] | None, now: float,
                        ) -> list[Instruction]:
        """``handle(ResultReceived(w, task_id, status, ...), now)``."""
        task = w.tasks.get(task_id)
        if task is None or task.state != ts.RUNNING:
            return self.collect()  # cancelled meanwhile, or a duplicate: nothing to do
        # The worker's clock is not trusted beyond what the manager saw pass.
        sent = task.send_input_finish
        observed = max(0.0, now - sent / 1e6) * 1e6
        exec_time = min(exec_time_usec, int(observed)) if observed > 0 else exec_time_usec
        task.cmd_execution_time = exec_time
        task.total_cmd_execution_time += exec_time
        task.execute_cmd_start = sent
        task.execute_cmd_finish = sent + exec_time
        task._output = output
        task.return_status = exit_code
        if status == WORK_QUEUE_RESULT_FORSAKEN:
            # The worker cannot run it: try again elsewhere without counting the attempt.
            task.try_count -= 1
            self.out.append(SendKill(task, w.key, outputs_too=True))
            self.requeue(task, now)
        else:
            task.result = result_of(status, exit_code, monitor_codes)
            self.result_arrived(task, now)
            task.receive_output_start = _usec(now)
            success = status == WORK_QUEUE_RESULT_SUCCESS and exit_code == 0
            files = outputs_to_fetch(task.files, getattr(task, "_monitor_files", ()), success)
            self.out.append(FetchOutputs(task, w.key, files))
        out = self.out
        self.out = []
        return out

    def _on_output_bytes(self, e: ev.OutputBytesComing, now: float) -> None:
        e.task.total_bytes_received += e.length
        self.counters.bytes_received += e.length

    def _on_output_failed(self, e: ev.OutputFailed, now: float) -> None:
        """Only while the outputs are being fetched: a cancelled task keeps its result."""
        task = e.task
        if task.state == ts.WAITING_RETRIEVAL:
            task.result = merge_result(task.result, e.result)

    def _on_outputs_fetched(self, e: ev.OutputsFetched, now: float) -> None:
        self.out = self.outputs_fetched(e.task, now)

    def outputs_fetched(self, task: Any, now: float) -> list[Instruction]:
        """``handle(OutputsFetched(task), now)``."""
        if task.state != ts.WAITING_RETRIEVAL:
            return self.collect()
        task.receive_output_finish = finish = _usec(now)
        task.total_transfer_time += (finish - task.receive_output_start) + \
            (task.send_input_finish - task.send_input_start)
        if task.worker_key in self.workers:
            self.out.append(SendKill(task, task.worker_key, outputs_too=True, later=True))
        self.retrieved(task, now)
        if self.category_updates:
            self.out.extend(CategoryChanged(c) for c in self.category_updates)
            self.category_updates.clear()
        out = self.out
        self.out = []
        return out

    # -- workers -----------------------------------------------------------------------------

    def _on_worker_connected(self, e: ev.WorkerConnected, now: float) -> None:
        self.add_worker(e.worker, now)

    def _on_resources(self, e: ev.ResourcesReported, now: float) -> None:
        w, name = e.worker, e.name
        if name == "tag":
            w.got_tag = True
            if w.end_time >= 0 and not w.ready:
                self._make_ready(w)
            return
        if name in _RESOURCE_NAMES:
            setattr(w.resources, name, e.total)
            w.resources.largest[name] = e.largest
            self.resources_changed(w)
        elif name.startswith("coprocess_"):
            if w.cop is None:
                # shares the feature set, so coprocess tasks find their coprocess feature
                w.cop = WorkerRecord(w.key, hostname=w.hostname, features=w.features)
            name = name[len("coprocess_"):]
            if name in ("cores", "memory", "disk", "gpus"):
                setattr(w.cop.resources, name, e.total)
                w.cop.resources.largest[name] = e.largest
            self.resources_changed(w)

    def _make_ready(self, w: WorkerRecord) -> None:
        self.worker_ready(w)
        r = w.resources
        self.out.append(Note(f"worker {w.hostname} ready: {r.cores} cores, {r.memory} MB "
                             f"memory, {r.disk} MB disk, {r.gpus} gpus"))

    def _on_info(self, e: ev.WorkerInfo, now: float) -> None:
        w, field, value = e.worker, e.field, e.value
        if field in HAND_STATS and w.os == "foreman":  # for stats_hierarchy
            if w.hand_stats is None:
                w.hand_stats = {}
            try:
                w.hand_stats[field] = int(value)
            except ValueError:
                pass
        if field == "worker-id":
            w.worker_id = value
        elif field == "worker-end-time":
            try:
                w.end_time = float(value)
            except ValueError:
                w.end_time = 0
            if w.got_tag and not w.ready:
                self._make_ready(w)
        elif field == "tasks_running":
            try:
                w.tasks_running_reported = int(value)
            except ValueError:
                pass
        elif field == "idle-disconnecting":
            self.out.append(DropWorker(w.key, "IDLE_OUT", "it says it is idle and leaving"))
        elif field == "from-factory":
            self._joined_factory(w, value)
        elif field == "leaving":
            w.resume_token = ""  # its tasks die with it: no waiting for it to come back

    def _joined_factory(self, w: WorkerRecord, name: str) -> None:
        """A factory that has more workers here than its max_workers gets this one back."""
        w.factory_name = name
        limit = self.factory_limits.get(name)
        if limit is None:
            return
        connected = sum(1 for x in self.workers.values() if x.factory_name == name)
        if connected > limit:
            self.out.append(DropWorker(
                w.key, "EXPLICIT", f"worker {w.hostname} of factory {name} is over its "
                f"max_workers ({limit}); shutting it down", goodbye=True))

    def _on_feature(self, e: ev.FeatureReported, now: float) -> None:
        w = e.worker
        if e.name == RESUME:
            # How the connection behaves, not what the worker offers tasks: not one of its
            # features (a foreman passes its workers' features on to its manager).
            self.offer_resume(e)
            return
        w.features.add(e.name)
        if e.name == PREFETCH:
            w.prefetch = True
            self.refresh(w)

    def _on_worker_gone(self, e: ev.WorkerGone, now: float) -> None:
        """Its tasks go back to the queue; a connection that died counts a lost worker in a
        row for each of them (see Bookkeeping.remove_worker).  A worker that may come back
        for them keeps them for a while instead (core/resume.py)."""
        if self.keeps_tasks(e, now):
            return
        w = self.workers.get(e.key)
        lost = e.reason == "FAILURE"
        requeued = self.remove_worker(e.key, now, lost=lost)
        counters = self.counters
        if e.released:
            counters.workers_released += 1
        if lost:
            counters.workers_lost += 1
        elif e.reason == "IDLE_OUT":
            counters.workers_idled_out += 1
        for task in requeued:
            task.hostname = None
        if w is not None:
            self.out.append(Note(f"worker {w.hostname} ({w.address}) removed: {e.reason}; "
                                 f"{len(requeued)} task(s) requeued"))

    # -- time --------------------------------------------------------------------------------

    def _on_tick(self, e: ev.Tick, now: float) -> None:
        """Draining workers that finished their tasks leave; new factory limits trim the
        idle workers of factories that have more here than they asked for; workers away
        for longer than the grace time are removed."""
        self.settle()
        if self.away:
            self.expire_away(now)
        leaving: set[int] = set()
        for w in self.workers.values():
            if w.draining and not w.tasks:
                leaving.add(w.key)
                self.out.append(DropWorker(w.key, "EXPLICIT", f"worker {w.hostname} drained",
                                           goodbye=True))
        if e.factory_limits is not None:
            self.factory_limits = dict(e.factory_limits)
            self._trim_factories(leaving)

    def _trim_factories(self, leaving: set[int]) -> None:
        """CCTools ``factory_trim_workers``: idle workers beyond each factory's max_workers."""
        for name, limit in self.factory_limits.items():
            mine = [w for w in self.workers.values()
                    if w.factory_name == name and w.key not in leaving]
            excess = len(mine) - limit
            for w in mine:
                if excess <= 0:
                    break
                if not w.tasks:
                    leaving.add(w.key)
                    self.out.append(DropWorker(
                        w.key, "EXPLICIT", f"trimming idle worker {w.hostname} of factory "
                        f"{name} (max_workers {limit})", goodbye=True))
                    excess -= 1

    def _on_slow_check(self, e: ev.SlowTaskCheck, now: float) -> None:
        """Fast abort: requeue slow tasks; a worker slow twice in a row has its host blocked
        for FAST_ABORT_BLOCK_SECONDS and is dropped (its other tasks go back with it)."""
        dropped: set[int] = set()
        for task, w in self.slow_tasks(now):
            if task.state != ts.RUNNING or task.worker_key != w.key or w.key in dropped:
                continue
            self.out.append(Note(f"task {task.id} is taking too long on {w.hostname}; "
                                 "taking it back (fast abort)"))
            self.out.append(SendKill(task, w.key, outputs_too=True))
            self.requeue(task, now)
            task.fast_abort_count += 1
            if task.fast_abort_count > 1:
                continue  # a task cannot mark two different workers as suspect
            if w.fast_abort_alarm and w.key in self.workers:
                until = now + FAST_ABORT_BLOCK_SECONDS
                self.block_host(w.hostname, until)
                self.counters.workers_fast_aborted += 1
                why = (f"worker {w.hostname} ({w.address}) is slow: blocking its host for "
                       f"{FAST_ABORT_BLOCK_SECONDS} s")
                self.out.append(BlockHost(w.hostname, until, why))
                if w.key in self.away:  # no connection to close: removed here
                    self.forget_away(w, now, "slow (fast abort)", lost=False)
                else:
                    self.out.append(DropWorker(w.key, "FAST_ABORT", why))
                dropped.add(w.key)
            w.fast_abort_alarm = True

    def _on_time_spent(self, e: ev.TimeSpent, now: float) -> None:
        self.time_spent(e.kind, e.usec)

    def time_spent(self, kind: str, usec: int) -> None:
        """``handle(TimeSpent(kind, usec), now)`` (only statistics: no instructions)."""
        if kind == "polling":
            self.counters.time_polling += usec
        else:
            self.counters.time_application += usec

    # -- settings (called by the WorkQueue facade) --------------------------------------------

    def changed(self) -> None:
        """A setting changed that may make a dispatch possible."""
        self.dispatch_pending = True

    def configure(self, key: str, value: float) -> bool:
        """Apply one ``tune`` parameter the core uses; False if it is not one of them."""
        setter = _TUNABLES.get(key)
        if setter is None:
            return False
        setter(self, value)
        self.dispatch_pending = True
        return True

    def set_algorithm(self, algorithm: int) -> None:
        self.algorithm = algorithm

    def set_report_transitions(self, on: bool) -> None:
        """Whether state changes are also ``Transition`` instructions (for a transactions log)."""
        self.report_transitions = on

    def set_ramp_down(self, on: bool) -> None:
        self.ramp_down = on

    def set_min_task_id(self, minid: int) -> int:
        self._record_submits()  # the ids skipped were never given
        self.next_task_id = self._submits_recorded_upto = max(self.next_task_id, int(minid))
        return self.next_task_id

    def drain_host(self, hostname: str, on: bool) -> int:
        """Draining workers get no new tasks and leave once idle; returns how many."""
        count = 0
        for w in self.workers.values():
            if w.hostname == hostname:
                w.draining = on
                count += 1
        self.dispatch_pending = True
        return count

    def set_fast_abort(self, category: str, multiplier: float) -> int:
        """>= 1 on, 0 off, < 0 use the default category's; CCTools' return values."""
        c = self.categories.get_or_create(category)
        if multiplier >= 1:
            c.fast_abort = multiplier
            return 0
        if multiplier == 0:
            c.fast_abort = 0
            return 1
        c.fast_abort = -1
        return 0

    def set_max_concurrent(self, category: str, max_concurrent: int) -> None:
        self.categories.get_or_create(category).max_concurrent = max(-1, max_concurrent)
        self.dispatch_pending = True

    def set_autolabel(self, category: str, resource: str, on: bool) -> None:
        self.categories.get_or_create(category).set_autolabel(resource, on)

    def note_cached(self, w: WorkerRecord, cachename: str, size: int | None) -> None:
        """The worker holds ``cachename`` (``size``), or no longer does (None)."""
        if size is None:
            w.cached.pop(cachename, None)
        else:
            w.cached[cachename] = size

    def validate(self) -> None:
        """Assert the invariants (used after every step in tests)."""
        super().validate()
        self.validate_away()

    def forget_cached(self, cachename: str) -> list[int]:
        """Every worker forgets ``cachename``; the keys of those that had it."""
        return [w.key for w in self.workers.values()
                if w.cached.pop(cachename, None) is not None]


def _set_multiplier(s: ManagerState, v: float) -> None:
    s.policy.submit_multiplier = max(1.0, v)


def _set_proportional(s: ManagerState, v: float) -> None:
    s.policy.proportional = bool(v)


def _set_whole_tasks(s: ManagerState, v: float) -> None:
    s.policy.whole_tasks = bool(v)


def _set_hungry_minimum(s: ManagerState, v: float) -> None:
    s.hungry_minimum = int(v)


def _set_hungry_factor(s: ManagerState, v: float) -> None:
    s.hungry_minimum_factor = v


def _set_wait_for_workers(s: ManagerState, v: float) -> None:
    s.wait_for_workers = int(v)


def _set_steady_n(s: ManagerState, v: float) -> None:
    s.categories.set_steady_n_tasks(max(1, int(v)))


def _set_depth(s: ManagerState, v: float) -> None:
    s.schedule_depth = max(1, int(v))


def _set_lost_limit(s: ManagerState, v: float) -> None:
    s.lost_workers_limit = int(v)


def _set_resume_grace(s: ManagerState, v: float) -> None:
    s.resume_grace_setting = v


#: tune() names the core acts on.
_TUNABLES: dict[str, Callable[[ManagerState, float], None]] = {
    "resource-submit-multiplier": _set_multiplier,
    "proportional-resources": _set_proportional,
    "proportional-whole-tasks": _set_whole_tasks,
    "hungry-minimum": _set_hungry_minimum,
    "hungry-minimum-factor": _set_hungry_factor,
    "wait-for-workers": _set_wait_for_workers,
    "category-steady-n-tasks": _set_steady_n,
    "attempt-schedule-depth": _set_depth,
    "lost-workers-in-a-row": _set_lost_limit,
    "resume-grace-time": _set_resume_grace,
}
