"""The manager's bookkeeping: where every task and worker is, the ready queue, counters.

:class:`Bookkeeping` is the part of the manager core that keeps places and resources right:
which task is where, what each worker has in use, which workers have room, and which task
goes next to which worker (``next_dispatch``).  The rules that decide what happens on an
event are in :class:`~work_queue.core.manager_state.ManagerState`, a subclass, so this file
stays about state.  Every method takes ``now`` (seconds since the epoch) when it needs the
time; nothing here reads a clock or does I/O.

Every state change of a task goes through :meth:`Bookkeeping._move`, which appends a
``Transition`` to the instructions of the current event and to the task's story.

Invariant (checked by :meth:`validate`): every task is in exactly one place that matches its
state, and each worker's in-use resources equal the sum of the boxes of its tasks.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from typing import Any

from ..constants import (
    WORK_QUEUE_RESULT_DISK_ALLOC_FULL,
    WORK_QUEUE_RESULT_FORSAKEN,
    WORK_QUEUE_RESULT_MAX_RETRIES,
    WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR,
    WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
    WORK_QUEUE_RESULT_SIGNAL,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME,
    WORK_QUEUE_RESULT_TASK_TIMEOUT,
    WORK_QUEUE_SCHEDULE_FCFS,
    WORK_QUEUE_SCHEDULE_TIME,
    WORK_QUEUE_SCHEDULE_UNSET,
)
from . import task_state as ts
from .categories import ALLOCATION_ERROR, ALLOCATION_FIRST, ALLOCATION_MAX, LABELLED, Categories
from .history import (
    HISTORY_LENGTH,
    MOVE_BITS,
    MOVE_OF,
    RING_MASK,
    SUBMITTED_FROM,
    story_from_ring,
)
from .instructions import Instruction, SendKill, SendTask, Transition
from .invariants import check_invariants
from .resources import BoxPolicy, Resources, allocation_box
from .scheduling import (
    CANDIDATES,
    ReadyQueue,
    WorkerRecord,
    choose_worker,
    is_full,
    is_saturated,
    worker_can_take,
)
from .stats import CapacityEstimator, ManagerCounters, count_exhausted_attempt

#: Workers lost in a row with a task on them before that task comes back FORSAKEN (the
#: default of tune("lost-workers-in-a-row")).
LOST_WORKERS_LIMIT = 3

#: Results whose measurements feed a category's statistics (CCTools).
_MEASURED_RESULTS = frozenset((
    WORK_QUEUE_RESULT_SUCCESS, WORK_QUEUE_RESULT_SIGNAL, WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
    WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME, WORK_QUEUE_RESULT_DISK_ALLOC_FULL,
    WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR))


def _bucketing_success(result: int) -> int:
    """CCTools' ``success`` for bucketing: 1 success, 0 resource exhaustion, -1 the rest."""
    if result == WORK_QUEUE_RESULT_SUCCESS:
        return 1
    return 0 if result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION else -1


def _exceeded(task: Any, measured: Any) -> frozenset[str]:
    """The resources a task that exhausted its allocation broke: the monitor's
    ``limits_exceeded``, or else those measured above the allocation."""
    if task.result != WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION:
        return frozenset()
    broken = getattr(measured, "broken", None)
    names = frozenset(n for n in (broken() if broken else []) if n in LABELLED)
    if names:
        return names
    box = getattr(task, "resources_allocated", None)
    if box is None:
        return frozenset()
    return frozenset(n for n in LABELLED
                     if 0 <= getattr(box, n, -1) < getattr(measured, n, -1))


#: Kept for older callers: the dispatch instruction.
Dispatch = SendTask


class Bookkeeping:
    """Places of tasks and workers.  See the module docstring."""

    def __init__(self, now: float, seed: int | None = None) -> None:
        self.tasks: dict[int, Any] = {}
        self.ready = ReadyQueue()
        self.returned: deque[int] = deque()
        #: Retrieved tasks (and their workers) whose statistics are not counted yet.
        self.unsettled: list[tuple[Any, WorkerRecord | None]] = []
        self.workers: dict[int, WorkerRecord] = {}
        #: Ready workers that have room for at least one more task (see refresh()).
        self.free: dict[int, WorkerRecord] = {}
        #: The workers of ``free`` that have room without using a prefetch slot.
        self.roomy: dict[int, WorkerRecord] = {}
        #: The figures of foremen that left, added up (``stats_hierarchy`` counts them).
        self.departed_hands: dict[str, int] = {}
        #: Tasks sent ahead into a worker's prefetch slot that have not started there yet:
        #: taken back when another worker could start them now (see _reclaim).
        self.prefetched: dict[int, Any] = {}
        self.blocked: dict[str, float] = {}
        self.counters = ManagerCounters(time_when_started=now)
        #: Capacity estimates from finished tasks (``capacity_*`` stats).
        self.capacity = CapacityEstimator()
        self.policy = BoxPolicy()
        self.algorithm = WORK_QUEUE_SCHEDULE_TIME
        self.wait_for_workers = 0
        self.schedule_depth = 100
        #: See remove_worker; 0 never gives a task up.
        self.lost_workers_limit = LOST_WORKERS_LIMIT
        self.hungry_minimum = 10
        self.hungry_minimum_factor = 2.0
        self.next_task_id = 1
        self.rng = random.Random(seed)
        #: Set whenever something happened that may make a dispatch possible.
        self.dispatch_pending = True
        self._boxes: dict[tuple[Any, ...], Resources] = {}
        #: Final state (DONE or CANCELED) of tasks that left the queue, one byte per task id.
        self._final_states = bytearray()
        #: Categories by name: limits, allocation mode, statistics (core/categories.py).
        self.categories = Categories()
        #: The largest value of each resource over connected workers (None: recompute).
        self._largest: Resources | None = None
        #: Categories whose first allocation changed (the manager logs and clears them).
        self.category_updates: list[Any] = []
        self.requeued_after_exhaustion = 0
        #: tune ramp-down-heuristic with watchdog monitoring (see box_for).
        self.ramp_down = False
        #: Instructions of the event being handled (see ManagerState.handle).
        self.out: list[Instruction] = []
        #: Recent transitions of each task (see story()); finished tasks' as tuples.
        #: Whether each state change is also an instruction (``Transition``); a shell that
        #: writes no transactions log turns it off, the story is kept either way.
        self.report_transitions = True
        #: The last HISTORY_LENGTH transitions of all tasks, a ring: ``task id << MOVE_BITS |
        #: transition number`` (0: not used yet) and the time; the next slot is _ring_next.
        self._ring_moves = array("q", bytes(8 * HISTORY_LENGTH))
        self._ring_times = array("d", bytes(8 * HISTORY_LENGTH))
        self._ring_next = 0
        #: Tasks with ids from here to next_task_id have their submit not in the ring yet: a
        #: fresh task's submit is written there in order, before any other transition of any
        #: task (_record_submits), not on submit()'s path, the one call made a million times
        #: in a row (three array stores there were ~5% of a submit).
        self._submits_recorded_upto = 1

    # -- transitions -------------------------------------------------------------------------

    def _move(self, task: Any, cause: str, now: float) -> None:
        """Change the state of ``task`` on ``cause`` (see task_state) and record it."""
        old = task.state
        move = MOVE_OF.get((old, cause))
        if move is None:
            ts.transition(task.id, old, cause)  # raises InvalidTransition
            return
        if self._submits_recorded_upto != self.next_task_id:
            self._record_submits()
        new, number = move
        task.state = new
        if self.report_transitions:
            self.out.append(Transition(task, old, new, cause, now))
        i = self._ring_next
        self._ring_moves[i] = task.id << MOVE_BITS | number
        self._ring_times[i] = now
        self._ring_next = (i + 1) & RING_MASK

    def _record(self, task_id: int, number: int, now: float) -> None:
        i = self._ring_next
        self._ring_moves[i] = task_id << MOVE_BITS | number
        self._ring_times[i] = now
        self._ring_next = (i + 1) & RING_MASK

    def _record_submits(self) -> None:
        """Write the submits of fresh tasks not yet in the ring (UNKNOWN -> READY, at their
        submit time), oldest first; only the last HISTORY_LENGTH could be kept anyway."""
        first, end = self._submits_recorded_upto, self.next_task_id
        self._submits_recorded_upto = end
        number = SUBMITTED_FROM[ts.UNKNOWN][1]
        tasks = self.tasks
        for task_id in range(max(first, end - HISTORY_LENGTH), end):
            task = tasks.get(task_id)
            if task is not None:
                self._record(task_id, number, task.time_when_submitted)

    def story(self, task_id: int) -> list[tuple[int, int, str, float]]:
        """The recent transitions of a task, oldest first: ``(from, to, cause, time)``.

        Answers "why is task 17 still waiting?": e.g. it went RUNNING -> READY on
        ``requeue`` when its worker was lost, and has not been dispatched since."""
        self._record_submits()
        story = story_from_ring(self._ring_moves, self._ring_times, self._ring_next, task_id)
        task = self.tasks.get(task_id)
        if not story and task is not None and task.state == ts.READY:
            # Waiting since long before the ring's oldest transition: only its submit is known.
            story = [(ts.UNKNOWN, ts.READY, "submit", float(task.time_when_submitted))]
        return story

    # -- tasks -------------------------------------------------------------------------------

    def submit(self, task: Any, now: float) -> int:
        """Queue ``task`` (state UNKNOWN or finished) and give it a new id."""
        old = task.state
        move = SUBMITTED_FROM.get(old)
        if move is None:
            ts.transition(getattr(task, "id", 0) or 0, old, "submit")  # raises
            return 0
        new, number = move
        if old != ts.UNKNOWN:  # submitted again: its story says from which state, now
            self._record_submits()
            self._record(self.next_task_id, number, now)
            self._submits_recorded_upto = self.next_task_id + 1
        task.id = task_id = self.next_task_id
        self.next_task_id = task_id + 1
        # _move(task, "submit", now), inline: submit is the call made a million times in a row.
        task.state = new
        if self.report_transitions:
            self.out.append(Transition(task, old, new, "submit", now))
        # Written only when they differ: adding an attribute to a fresh task's __dict__ costs
        # ~0.12 us each, a sixth of a submit; a fresh task has the class defaults already.
        # (Its submit_time in microseconds is derived from time_when_submitted.)
        if task.try_count:
            task.try_count = 0
        if task.resource_request != ALLOCATION_FIRST:
            task.resource_request = ALLOCATION_FIRST
        task.time_when_submitted = now
        category = self.categories.get(task.category) or \
            self.categories.get_or_create(task.category)
        category.stats.tasks_submitted += 1
        self.tasks[task_id] = task
        self.ready.push(task)
        self.counters.tasks_submitted += 1
        self.dispatch_pending = True
        return int(task_id)

    def limits_of(self, task: Any) -> Resources:
        """The largest allocation of ``task``: its category's, with its own values winning."""
        c = self.categories.get(task.category)
        if c is None or c.plain:
            return task.resources_requested  # type: ignore[no-any-return]
        return c.task_max(task.resources_requested, task.resource_request, task.id,
                          self.largest_worker())

    def largest_worker(self) -> Resources:
        """Field-wise largest worker (``current_max_worker``)."""
        if self._largest is None:
            r = Resources(cores=0, memory=0, disk=0, gpus=0)
            for w in self.workers.values():
                if w.ready:
                    r.cores = max(r.cores, w.shape[0])
                    r.memory = max(r.memory, w.shape[1])
                    r.disk = max(r.disk, w.shape[2])
                    r.gpus = max(r.gpus, w.shape[3])
            self._largest = r
        return self._largest

    def next_dispatch(self, now: float) -> SendTask | None:
        """The next task to send and where, or None.  Tasks past their end time are failed."""
        if not self.dispatch_pending:
            return None
        # Only workers with room are looked at: with a thousand busy workers this keeps a
        # dispatch decision as cheap as with two.  Which of them are usable (not draining,
        # host not blocked) is checked lazily, as candidates are needed.
        if not self.ready and self.prefetched and self.roomy:
            self._reclaim(now)
        if not self.ready or len(self.workers) < self.wait_for_workers or not self.free:
            self.dispatch_pending = False
            return None
        expired: list[Any] = []
        chosen: SendTask | None = None
        # Tasks that look alike get the same boxes and the same answer: try each kind once.
        failed: set[tuple[Any, ...]] = set()
        try:
            for task in self.ready.scan(self.schedule_depth):
                if task.end_time > 0 and task.end_time <= now:
                    expired.append(task)
                    continue
                if 0 < getattr(task, "start_time_min", 0) > now:
                    continue
                c = self.categories.get(task.category)
                if c is not None and -1 < c.max_concurrent <= c.running:
                    continue
                kind = self._signature(task) if failed else None
                if kind in failed:
                    continue
                chosen = self._place(task, now)
                if chosen is not None:
                    break
                failed.add(kind or self._signature(task))
        finally:
            self.ready.restore()
        for task in expired:
            self.fail(task, WORK_QUEUE_RESULT_TASK_TIMEOUT, now)
        if chosen is None and expired:
            return self.next_dispatch(now)
        if chosen is None:
            self.dispatch_pending = False
        return chosen

    def _signature(self, task: Any) -> tuple[Any, ...]:
        r, lo = task.resources_requested, task.resources_min
        c = self.categories.get(task.category)
        # In the bucketing modes tasks alike in all else may be given different buckets.
        predicted = c.bucketing.predict(task.id) if c is not None and c.bucketing else None
        return (r.cores, r.memory, r.disk, r.gpus, r.wall_time, lo.cores, lo.memory, lo.disk,
                lo.gpus, task.end_time, task.min_running_time, task.algorithm, task.category,
                task.resource_request, frozenset(task.features) if task.features else None,
                tuple(predicted.values()) if predicted else None)

    def box_for(self, task: Any, w: WorkerRecord) -> Resources:
        """The allocation box of ``task`` on ``w`` (memoised: boxes are never mutated)."""
        c = self.categories.get(task.category)
        # The largest allocation (limits_of) and the smallest (measured sizes, the category
        # minimum), with the category looked up once.
        if c is None or c.plain:
            limits, minimum = task.resources_requested, task.resources_min
        else:
            largest = self.largest_worker()
            limits = c.task_max(task.resources_requested, task.resource_request, task.id,
                                largest)
            minimum = c.task_min(task.resources_requested, task.resource_request, largest,
                                 task.id)
        key = (limits.cores, limits.memory, limits.disk, limits.gpus, limits.wall_time,
               minimum.cores, minimum.memory, minimum.disk, minimum.gpus, minimum.wall_time,
               w.shape, self.policy.proportional, self.policy.whole_tasks,
               self.policy.submit_multiplier, limits.extra, minimum.extra)
        box = self._boxes.get(key)
        if box is None:
            if len(self._boxes) > 10000:
                self._boxes.clear()
            box = self._boxes[key] = allocation_box(limits, minimum, w.resources, self.policy)
        if self.ramp_down and len(self.workers) > len(self.ready) and (
                box.cores, box.memory, box.disk) != w.shape[:3]:
            # Ramp down (more workers than tasks): give the task all the worker's free space.
            box = box.copy()
            box.cores = 0.0 if box.gpus > 0 else float(w.shape[0] - w.inuse_cores)
            box.memory = float(w.shape[1] - w.inuse_memory)
            box.disk = float(w.shape[2] - w.inuse_disk)
            box.merge_max(minimum)
        return box

    def _place(self, task: Any, now: float) -> SendTask | None:
        mult = self.policy.submit_multiplier
        algorithm = task.algorithm if task.algorithm != WORK_QUEUE_SCHEDULE_UNSET \
            else self.algorithm
        blocked = self.blocked
        # The box depends on the worker only through its shape, unless ramping down (then on
        # what the worker has free): one box_for per shape, not per candidate worker.
        by_shape: dict[tuple[int, int, int, int], Resources] | None = \
            None if self.ramp_down and len(self.workers) > len(self.ready) else {}
        # A worker with free resources first (only those are kept in ``roomy``, so a full
        # cluster costs no scan of every worker); a prefetch slot only when none has room, so
        # a task never queues behind another while a worker sits idle.
        for prefetch, workers in ((False, self.roomy), (True, self.free)):
            pool: list[WorkerRecord] = []
            boxes: dict[int, Resources] = {}
            for w in workers.values():
                # Usable: not draining, host not blocked (checked only for candidates).
                if w.draining or (blocked and self.is_blocked(w.hostname, now)):
                    continue
                bucket = w.bucket(task)
                known = by_shape.get(bucket.shape) if by_shape is not None else None
                if known is not None:
                    box = known
                else:
                    box = self.box_for(task, bucket)
                    if by_shape is not None:
                        by_shape[bucket.shape] = box
                if worker_can_take(bucket, box, task, mult, now, prefetch):
                    if algorithm == WORK_QUEUE_SCHEDULE_FCFS:
                        return SendTask(task, w, box)
                    pool.append(w)
                    boxes[w.key] = box
                    if len(pool) >= CANDIDATES:
                        break
            if pool:
                worker = choose_worker(pool, algorithm, task, self.rng)
                if worker is not None:
                    return SendTask(task, worker, boxes[worker.key])
        return None

    def _reclaim(self, now: float) -> None:
        """Take back one prefetched task that a worker with free resources could start now.

        Prefetching buys throughput for short tasks (the next one starts without a round
        trip), but a task queued behind a long one must not wait while a worker sits idle:
        it is killed there (it never started) and goes back to READY, to be dispatched to
        the idle worker.  Not a try: ``try_count`` is given back."""
        mult = self.policy.submit_multiplier
        blocked = self.blocked
        for task in self.prefetched.values():
            holder = task.worker_key
            for seen, w in enumerate(self.roomy.values()):
                if seen >= CANDIDATES:
                    break
                if w.key == holder or w.draining or \
                        (blocked and self.is_blocked(w.hostname, now)):
                    continue
                bucket = w.bucket(task)
                if worker_can_take(bucket, self.box_for(task, bucket), task, mult, now, False):
                    self.out.append(SendKill(task, holder, outputs_too=False))
                    self._release(task)
                    task.try_count -= 1
                    self._move(task, "reclaim", now)
                    self.ready.push(task)
                    return

    def commit_dispatch(self, d: SendTask, now: float) -> None:
        """Record that ``d.task`` was sent to ``d.worker``."""
        task, worker = d.task, d.worker
        self._move(task, "dispatch", now)
        self.ready.remove(task.id)
        task.try_count += 1
        task.resources_allocated = d.box
        task.worker_key = worker.key
        worker.tasks[task.id] = task
        worker.bucket(task).add_box(d.box)
        if worker.prefetch and worker.over():
            worker.queued_task = task.id
            self.prefetched[task.id] = task
        self.refresh(worker)
        self.counters.tasks_dispatched += 1
        c = self.categories.get_or_create(task.category)
        c.running += 1
        c.stats.tasks_dispatched += 1

    def result_arrived(self, task: Any, now: float = 0.0) -> None:
        """The worker said the task finished; outputs are still to be fetched."""
        if task.workers_lost_in_a_row:  # (written only when it differs; see submit)
            task.workers_lost_in_a_row = 0
        self._move(task, "result", now)
        if self.prefetched:
            # A core came free there: the worker has started the task it held in advance.
            w = self.workers.get(task.worker_key)
            if w is not None and 0 <= w.queued_task != task.id:
                self.prefetched.pop(w.queued_task, None)
                w.queued_task = -1

    def _release(self, task: Any) -> WorkerRecord | None:
        worker = self.workers.get(getattr(task, "worker_key", -1))
        if self.prefetched:
            self._unqueue(task, worker)
        if worker is not None and worker.tasks.pop(task.id, None) is not None:
            worker.bucket(task).add_box(task.resources_allocated, -1)
            self.refresh(worker)
            self.categories[task.category].running -= 1
        task.worker_key = -1
        self.dispatch_pending = True
        return worker

    def _unqueue(self, task: Any, worker: WorkerRecord | None) -> None:
        """``task`` leaves its worker: it is no longer prefetched, and if it ran there, the
        task that worker held in advance has started in its place."""
        self.prefetched.pop(task.id, None)
        if worker is not None and worker.queued_task >= 0:
            if worker.queued_task != task.id:
                self.prefetched.pop(worker.queued_task, None)
            worker.queued_task = -1

    def retrieved(self, task: Any, now: float) -> None:
        """Outputs are fetched: the task is ready to be returned by ``wait()``.

        Its statistics are counted at the next :meth:`settle` (after the manager's next
        send), unless its measurements decide its next allocation.
        """
        self._move(task, "retrieved", now)
        worker = self._release(task)
        if task.result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION or (
                task.result in _MEASURED_RESULTS and getattr(task, "measured", None) is not None):
            self._account(task, worker, now)
        else:
            self.unsettled.append((task, worker))
            self.returned.append(task.id)

    def settle(self) -> None:
        """Count the statistics of the tasks retrieved since the last call."""
        if self.unsettled:
            pending, self.unsettled = self.unsettled, []
            for task, worker in pending:
                self._account(task, worker, 0.0, returned=True)

    def _account(self, task: Any, worker: WorkerRecord | None, now: float,
                 returned: bool = False) -> None:
        """Statistics of a retrieved task; and, unless already ``returned``, whether it
        goes back to the application or, having exhausted its allocation, runs again."""
        if worker is not None:
            if task.result == WORK_QUEUE_RESULT_SUCCESS:
                worker.fast_abort_alarm = False  # evidence the worker is not slow
            worker.tasks_complete += 1
            worker.total_task_time += task.cmd_execution_time / 1e6
            worker.total_transfer_time += task.total_transfer_time / 1e6
        self.counters.count_completion(task)
        if worker is not None:
            on_workers = len(self.tasks) - len(self.ready) - len(self.returned)
            self.capacity.add(task, on_workers)
        c = self.categories.get_or_create(task.category)
        c.stats.count_completion(task)
        if task.result == WORK_QUEUE_RESULT_SUCCESS:
            c.good_count += 1
            c.good_time += task.cmd_execution_time + task.total_transfer_time
        measured = getattr(task, "measured", None)
        if task.result in _MEASURED_RESULTS and measured is not None and c.accumulate(
                measured, task.result != WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
                self.largest_worker(), task.id, _bucketing_success(task.result),
                _exceeded(task, measured)):
            self.category_updates.append(c)
        if returned:
            return
        if task.result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION:
            count_exhausted_attempt(task)
            if measured is not None:
                c.exhausted_seen.merge_max(measured)
            if c.next_label(task.resources_requested, measured) != ALLOCATION_ERROR:
                # Retry with the largest allocation (whole worker or category maximum; in
                # the bucketing modes a larger bucket).
                task.resource_request = ALLOCATION_MAX
                self._requeue_ready(task, now)
                return
        if task.result != WORK_QUEUE_RESULT_SUCCESS:
            c.forget_task(task.id)
        self.returned.append(task.id)

    def fail(self, task: Any, result: int, now: float) -> None:
        """End the task without (further) running it, with ``result``."""
        if task.state == ts.READY:
            self.ready.remove(task.id)
        self._move(task, "fail", now)
        task.result = result
        self._release(task)
        c = self.categories.get(task.category)
        if c is not None:
            c.forget_task(task.id)
        self.returned.append(task.id)

    def requeue(self, task: Any, now: float) -> None:
        """Put a task back to READY (its worker is gone); fail it if out of retries."""
        self._release(task)
        if task.max_retries > 0 and task.try_count > task.max_retries:
            self._move(task, "fail", now)
            task.result = WORK_QUEUE_RESULT_MAX_RETRIES
            self.returned.append(task.id)
            return
        if task.end_time > 0 and task.end_time <= now:
            self._move(task, "fail", now)
            task.result = WORK_QUEUE_RESULT_TASK_TIMEOUT
            self.returned.append(task.id)
            return
        if 0 < self.lost_workers_limit <= task.workers_lost_in_a_row:
            self._move(task, "fail", now)
            task.result = WORK_QUEUE_RESULT_FORSAKEN
            self.returned.append(task.id)
            return
        self._move(task, "requeue", now)
        self.ready.push(task)

    def _requeue_ready(self, task: Any, now: float) -> None:
        """A retrieved task goes back to READY (resource exhaustion with room to grow)."""
        self.requeued_after_exhaustion += 1
        self._move(task, "retry", now)
        if task.max_retries > 0 and task.try_count > task.max_retries:
            self._move(task, "fail", now)
            task.result = WORK_QUEUE_RESULT_MAX_RETRIES
            self.returned.append(task.id)
            return
        self.ready.push(task)

    def cancel(self, task_id: int, now: float = 0.0) -> tuple[Any, WorkerRecord | None] | None:
        """Remove a live task; returns it and the worker it was on (to send ``kill``)."""
        task = self.tasks.get(task_id)
        if task is None or task.state not in ts.LIVE_STATES:
            return None
        worker = self.workers.get(getattr(task, "worker_key", -1))
        if task.state == ts.READY:
            self.ready.remove(task_id)
        if task.state == ts.RETRIEVED:
            try:
                self.returned.remove(task_id)
            except ValueError:
                pass
        self._release(task)
        self._move(task, "cancel", now)
        del self.tasks[task_id]
        self._remember(task_id, ts.CANCELED)
        self.counters.tasks_cancelled += 1
        self.categories.get_or_create(task.category).stats.tasks_cancelled += 1
        return task, worker

    def pop_returned(self, tag: str | None = None, now: float = 0.0) -> Any | None:
        """Hand one finished task to the application (RETRIEVED -> DONE), optionally by tag."""
        if tag is None:
            if not self.returned:
                return None
            task_id = self.returned.popleft()
        else:
            for task_id in self.returned:
                if self.tasks[task_id].tag == tag:
                    self.returned.remove(task_id)
                    break
            else:
                return None
        task = self.tasks.pop(task_id)
        task.time_when_done = task.finish_time = int(now * 1e6)
        self._move(task, "return", now)
        self._remember(task_id, ts.DONE)
        self.counters.tasks_done += 1
        stats = self.categories.get_or_create(task.category).stats
        stats.tasks_done += 1
        if task.result != WORK_QUEUE_RESULT_SUCCESS:
            self.counters.tasks_failed += 1
            stats.tasks_failed += 1
        return task

    def _remember(self, task_id: int, state: int) -> None:
        final = self._final_states
        if task_id >= len(final):
            final.extend(bytes(task_id - len(final) + 1 + len(final) // 2))
        final[task_id] = state

    def state_of(self, task_id: int) -> int:
        """State of any task this manager ever had (DONE/CANCELED after it left the queue)."""
        task = self.tasks.get(task_id)
        if task is not None:
            return int(task.state)
        if 0 <= task_id < len(self._final_states):
            return self._final_states[task_id]
        return ts.UNKNOWN

    def fits_some_worker(self, task: Any) -> bool:
        """Whether any connected worker is large enough for the task's declared needs."""
        limits = self.limits_of(task)
        need = (limits.cores, limits.memory, limits.disk, limits.gpus)
        for w in self.workers.values():
            if w.ready and all(n <= have for n, have in zip(need, w.shape, strict=True)):
                return True
            if w.cop is not None and getattr(task, "coprocess", None) and all(
                    n <= have for n, have in zip(need, w.cop.shape, strict=True)):
                return True
        return False

    def unfit_tasks(self) -> dict[str, int]:
        """Waiting tasks that no connected worker can ever run, counted by category."""
        if not any(w.ready for w in self.workers.values()):
            return {}
        verdicts: dict[tuple[Any, ...], bool] = {}
        out: dict[str, int] = {}
        for task in self.ready.tasks():
            r = task.resources_requested
            key = (task.category, task.resource_request, r.cores, r.memory, r.disk, r.gpus,
                   bool(getattr(task, "coprocess", None)))
            fits = verdicts.get(key)
            if fits is None:
                fits = verdicts[key] = self.fits_some_worker(task)
            if not fits:
                out[task.category] = out.get(task.category, 0) + 1
        return out

    def slow_tasks(self, now: float) -> list[tuple[Any, WorkerRecord]]:
        """Running tasks that fast abort says to take back (``abort_slow_workers``).

        A task is slow when it has run for ``multiplier`` (plus one per earlier fast abort of
        the same task) times the average time of its category's successful tasks, once there
        are at least 10 of them.
        """
        self.settle()
        cats = self.categories
        if not any(c.fast_abort > 0 for c in cats.values()):
            return []
        default = cats.get_or_create("default")
        now_us = now * 1e6
        slow = []
        for w in self.workers.values():
            for t in w.tasks.values():
                if t.state != ts.RUNNING:
                    continue
                c = cats[t.category]
                if c.fast_abort == 0:
                    continue
                average = c.average_good_time()
                if average < 1:
                    continue
                multiplier = c.fast_abort if c.fast_abort > 0 else default.fast_abort
                if multiplier <= 0:
                    continue
                if now_us - t.send_input_start >= average * (multiplier + t.fast_abort_count):
                    slow.append((t, w))
        return slow

    def empty(self) -> bool:
        return not self.tasks

    def hungry(self) -> bool:
        """CCTools: hungry while waiting tasks < max(hungry-minimum, factor * workers)."""
        threshold = max(self.hungry_minimum, self.hungry_minimum_factor * len(self.workers))
        return len(self.ready) < threshold

    # -- workers -----------------------------------------------------------------------------

    def add_worker(self, worker: WorkerRecord, now: float) -> None:
        worker.start_time = now
        self.workers[worker.key] = worker
        self.counters.workers_joined += 1

    def worker_ready(self, worker: WorkerRecord) -> None:
        worker.ready = True
        self.resources_changed(worker)

    def resources_changed(self, worker: WorkerRecord) -> None:
        """A worker reported its resources: recompute what depends on them."""
        for record in (worker, worker.cop) if worker.cop is not None else (worker,):
            r = record.resources
            record.shape = (r.largest_of("cores"), r.largest_of("memory"),
                            r.largest_of("disk"), r.largest_of("gpus"))
        self._largest = None
        self.refresh(worker)
        self.dispatch_pending = True

    def refresh(self, worker: WorkerRecord) -> None:
        """Keep ``free`` (ready workers with room for a task) up to date after a change."""
        if worker.ready and worker.key in self.workers and not is_full(worker):
            self.roomy[worker.key] = worker
        else:
            self.roomy.pop(worker.key, None)
        if worker.ready and worker.key in self.workers and not is_saturated(worker):
            self.free[worker.key] = worker
        else:
            self.free.pop(worker.key, None)

    def remove_worker(self, key: int, now: float, lost: bool = False) -> list[Any]:
        """Forget a worker; its tasks go back to the queue.  Returns the requeued tasks.

        ``lost``: its connection died.  A task that was on :attr:`lost_workers_limit` such
        workers in a row (while it was sent, run or retrieved) is not tried again: it comes
        back FORSAKEN, since it is likely what kills them (an input or output that breaks the
        transfer, a command that brings the node down)."""
        worker = self.workers.pop(key, None)
        self.free.pop(key, None)
        self.roomy.pop(key, None)
        if worker is None:
            return []
        self._largest = None
        self.counters.workers_removed += 1
        if worker.hand_stats:
            for name, value in worker.hand_stats.items():
                self.departed_hands[name] = self.departed_hands.get(name, 0) + value
        tasks = list(worker.tasks.values())
        for task in tasks:
            task.worker_key = -1
            worker.tasks.pop(task.id, None)
            worker.bucket(task).add_box(task.resources_allocated, -1)
            if lost:
                task.workers_lost_in_a_row += 1
            self.requeue(task, now)
        self.dispatch_pending = True
        return tasks

    def block_host(self, host: str, until: float = math.inf) -> None:
        self.blocked[host] = until
        self.counters.workers_blocked += 1

    def unblock_host(self, host: str | None = None) -> None:
        if host is None:
            self.blocked.clear()
        else:
            self.blocked.pop(host, None)
        self.dispatch_pending = True

    def is_blocked(self, host: str, now: float) -> bool:
        until = self.blocked.get(host)
        if until is None:
            return False
        if until <= now:
            del self.blocked[host]
            return False
        return True

    # -- checks ------------------------------------------------------------------------------

    def validate(self) -> None:
        """Assert the invariants (used after every step in tests; see core/invariants.py)."""
        check_invariants(self)
