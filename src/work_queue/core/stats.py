"""Manager statistics: the cumulative counters and the snapshot behind ``q.stats``.

Field names are those of the manual's statistics table (and CCTools ``work_queue_stats``).
Times are microseconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..constants import WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, WORK_QUEUE_RESULT_SUCCESS


@dataclass(slots=True)
class ManagerCounters:
    """Cumulative counters; everything else in the stats is derived from current state."""

    time_when_started: float = 0.0
    workers_joined: int = 0
    workers_removed: int = 0
    workers_released: int = 0
    workers_idled_out: int = 0
    workers_fast_aborted: int = 0
    workers_blocked: int = 0
    workers_lost: int = 0
    #: Workers whose connection dropped and that came back for their tasks (wq-py-resume),
    #: and the tasks they kept (not run again).
    workers_resumed: int = 0
    tasks_recovered: int = 0
    tasks_submitted: int = 0
    tasks_dispatched: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    tasks_exhausted_attempts: int = 0
    time_send: int = 0
    time_receive: int = 0
    time_send_good: int = 0
    time_receive_good: int = 0
    time_status_msgs: int = 0
    time_internal: int = 0
    time_polling: int = 0
    time_application: int = 0
    time_workers_execute: int = 0
    time_workers_execute_good: int = 0
    time_workers_execute_exhaustion: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def count_completion(self, task: Any) -> None:
        """Account a task whose outputs were retrieved."""
        exec_time = int(task.cmd_execution_time)
        self.time_workers_execute += exec_time
        receive = int(task.receive_output_finish - task.receive_output_start)
        if receive > 0:
            self.time_receive += receive
        if task.result == WORK_QUEUE_RESULT_SUCCESS:
            self.time_workers_execute_good += exec_time
            self.time_send_good += int(task.send_input_finish - task.send_input_start)
            self.time_receive_good += receive
        elif task.result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION:
            self.time_workers_execute_exhaustion += exec_time
            self.tasks_exhausted_attempts += 1


def count_exhausted_attempt(task: Any) -> None:
    """The task's own count of attempts that exhausted their allocation, and their time.

    CCTools' ``work_queue_accumulate_task`` counts every such attempt, retried or returned
    (``t->exhausted_attempts``, ``t->time_workers_execute_exhaustion``, which the Python
    binding calls ``total_cmd_exhausted_execute_time``); a resubmission resets both."""
    task.exhausted_attempts += 1
    task.total_cmd_exhausted_execute_time += int(task.cmd_execution_time)


DEFAULT_CAPACITY_TASKS = 10
REPORTS_MIN = 50


class CapacityEstimator:
    """How many tasks the manager could keep busy (CCTools ``compute_capacity``).

    Keeps the last reports of finished tasks (transfer, execute and manager time, and the
    allocation); the capacity is how many tasks' execution the manager's own time per task
    could cover.  ``manager_load`` is an average of whether each loop pass did work.
    """

    def __init__(self) -> None:
        from collections import deque

        #: (transfer, execute, manager time, allocation box) of the last tasks
        self.reports: deque[tuple[float, float, float, Any]] = deque()
        self.limit = REPORTS_MIN
        self.weighted = float(DEFAULT_CAPACITY_TASKS)
        self.instantaneous = DEFAULT_CAPACITY_TASKS
        self.manager_load = 0.0

    def add(self, task: Any, tasks_on_workers: int) -> None:
        send_start = task.send_input_start
        receive_finish = task.receive_output_finish
        transfer = (task.send_input_finish - send_start) + \
            (receive_finish - task.receive_output_start)
        execute = float(task.cmd_execution_time)
        manager = receive_finish - send_start - transfer - execute
        reports = self.reports
        # Boxes are never changed once made, so the box itself is kept.
        reports.append((transfer, execute, manager if manager > 0 else 0.0,
                        task.resources_allocated))
        if 2 * tasks_on_workers > self.limit:
            self.limit = 2 * tasks_on_workers
        while len(reports) >= self.limit:
            reports.popleft()
        if transfer > 0:
            self.instantaneous = math.ceil(execute / max(transfer + manager, 1))
            self.weighted = math.ceil(0.05 * self.instantaneous + 0.95 * self.weighted)

    def pass_done(self, did_work: bool) -> None:
        self.manager_load = self.manager_load * 0.95 + (0.05 if did_work else 0.0)

    def values(self) -> dict[str, Any]:
        n = len(self.reports)
        if n < 1:
            transfer, execute, manager = 1.0, float(DEFAULT_CAPACITY_TASKS), 1.0
            sums, n = [1.0, 512.0, 1024.0, 0.0], 1
        else:
            transfer = sum(r[0] for r in self.reports)
            execute = sum(r[1] for r in self.reports)
            manager = sum(r[2] for r in self.reports)
            sums = [sum(max(getattr(r[3], name), 0) for r in self.reports)
                    for name in ("cores", "memory", "disk", "gpus")]
        transfer, execute, manager = max(1.0, transfer), max(1.0, execute), max(1.0, manager)
        ratio = max(DEFAULT_CAPACITY_TASKS, math.ceil(execute / (transfer + manager)))
        return {
            "capacity_tasks": ratio,
            "capacity_cores": math.ceil(sums[0] * ratio / n),
            "capacity_memory": math.ceil(sums[1] * ratio / n),
            "capacity_disk": math.ceil(sums[2] * ratio / n),
            "capacity_gpus": math.ceil(sums[3] * ratio / n),
            "capacity_instantaneous": self.instantaneous,
            "capacity_weighted": int(self.weighted),
            "manager_load": self.manager_load,
        }


class Stats:
    """A snapshot of the manager statistics; fields readable as attributes (``q.stats.x``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        keys = ("workers_connected", "tasks_waiting", "tasks_running", "tasks_done")
        return "Stats(" + ", ".join(f"{k}={self.__dict__.get(k)}" for k in keys) + ")"


def snapshot(state: Any, now: float) -> Stats:
    """Build the full statistics record from a :class:`ManagerState`."""
    from . import task_state as ts

    c = state.counters
    values: dict[str, Any] = asdict(c)
    values["time_when_started"] = int(c.time_when_started * 1e6)
    workers = list(state.workers.values())
    connected = len(workers)
    busy = sum(1 for w in workers if w.tasks)
    # Only tasks on workers can be running or waiting for retrieval: count those, not the
    # whole (possibly million-task) table.
    on_workers = [t for w in workers for t in w.tasks.values()]
    running = sum(1 for t in on_workers if t.state == ts.RUNNING)
    waiting_retrieval = sum(1 for t in on_workers if t.state == ts.WAITING_RETRIEVAL)
    values.update(
        workers_connected=connected,
        workers_init=0,
        workers_idle=connected - busy,
        workers_busy=busy,
        workers_able=sum(1 for w in workers if w.ready),
        tasks_waiting=len(state.ready),
        tasks_on_workers=running + waiting_retrieval,
        tasks_running=running,
        tasks_with_results=len(state.returned),
        tasks_left=0,
        bandwidth=(c.bytes_sent + c.bytes_received) / max(c.time_send + c.time_receive, 1),
        **state.capacity.values(),
    )
    for name in ("cores", "memory", "disk", "gpus"):
        totals = [getattr(w.resources, name) for w in workers if w.ready]
        values["total_" + name] = sum(totals)
        values["committed_" + name] = sum(getattr(w, "inuse_" + name) for w in workers)
        values["max_" + name] = max(totals, default=0)
        values["min_" + name] = min(totals, default=0)
    add_deprecated(values, (now - c.time_when_started) * 1e6)
    return Stats(values)


#: What a foreman reports of its own queue (``info <name> <value>`` with each update; CCTools'
#: send_stats_update), and of those, what ``hierarchy`` adds to the manager's own figures.
#: (Not the execution times: the manager's own already hold the time of the tasks it sent.)
HAND_STATS = frozenset((
    "workers_joined", "workers_removed", "workers_released", "workers_idled_out",
    "workers_fast_aborted", "workers_blacklisted", "workers_lost", "tasks_waiting",
    "tasks_on_workers", "tasks_running", "tasks_with_results", "time_send", "time_receive",
    "time_send_good", "time_receive_good", "time_workers_execute",
    "time_workers_execute_good", "time_workers_execute_exhaustion", "bytes_sent",
    "bytes_received"))
_HIERARCHY_SUMS = ("workers_joined", "workers_removed", "workers_released",
                   "workers_idled_out", "workers_fast_aborted", "workers_lost", "time_send",
                   "time_receive", "time_send_good", "time_receive_good", "bytes_sent",
                   "bytes_received")


def hierarchy(state: Any, now: float) -> Stats:
    """``stats_hierarchy`` (CCTools ``work_queue_get_stats_hierarchy``): the manager's figures
    plus those its foremen report of their own workers (of foremen still connected and of
    those that left), the tasks waiting in the foremen's queues, and ``workers_connected``
    as workers joined minus removed over the whole tree (a foreman counts as one)."""
    s = snapshot(state, now)
    v = vars(s)
    hands = [w.hand_stats for w in state.workers.values() if w.hand_stats]
    departed = state.departed_hands
    for name in _HIERARCHY_SUMS:
        v[name] += sum(h.get(name, 0) for h in hands) + departed.get(name, 0)
    blocked = sum(h.get("workers_blacklisted", 0) for h in hands)
    v["workers_blocked"] += blocked + departed.get("workers_blacklisted", 0)
    v["tasks_waiting"] += sum(h.get("tasks_waiting", 0) for h in hands)
    v["workers_connected"] = v["workers_joined"] - v["workers_removed"]
    add_deprecated(v, (now - state.counters.time_when_started) * 1e6)  # their old names too
    return s


#: the fields of ``snapshot`` that describe the current workers (zero in a category's stats)
CURRENT_STATE_FIELDS = (
    "workers_connected", "workers_init", "workers_idle", "workers_busy", "workers_able",
    "tasks_left", "bandwidth", "capacity_tasks", "capacity_cores", "capacity_memory",
    "capacity_disk", "capacity_gpus", "capacity_instantaneous", "capacity_weighted",
    "manager_load", *(f"{kind}_{name}" for kind in ("total", "committed", "max", "min")
                      for name in ("cores", "memory", "disk", "gpus")))


def add_deprecated(values: dict[str, Any], wall_clock: float) -> None:
    """The deprecated names CCTools still fills (``fill_deprecated_queue_stats``), and the
    manual's ``workers_blacklisted`` (the old name of ``workers_blocked``)."""
    v = values
    v.update(
        total_workers_connected=v["workers_connected"],
        total_workers_joined=v["workers_joined"],
        total_workers_removed=v["workers_removed"],
        total_workers_lost=v["workers_lost"],
        total_workers_idled_out=v["workers_idled_out"],
        total_workers_fast_aborted=v["workers_fast_aborted"],
        workers_blacklisted=v["workers_blocked"],
        tasks_complete=v["tasks_with_results"],
        total_tasks_dispatched=v["tasks_dispatched"],
        total_tasks_complete=v["tasks_done"],
        total_tasks_failed=v["tasks_failed"],
        total_tasks_cancelled=v["tasks_cancelled"],
        total_exhausted_attempts=v["tasks_exhausted_attempts"],
        start_time=v["time_when_started"],
        total_send_time=v["time_send"],
        total_receive_time=v["time_receive"],
        total_good_transfer_time=v["time_send_good"] + v["time_receive_good"],
        total_execute_time=v["time_workers_execute"],
        total_good_execute_time=v["time_workers_execute_good"],
        total_exhausted_execute_time=v["time_workers_execute_exhaustion"],
        total_bytes_sent=v["bytes_sent"],
        total_bytes_received=v["bytes_received"],
        capacity=v.get("capacity_cores", 0),
        avg_capacity=v.get("capacity_cores", 0),
        workers_ready=v["workers_idle"],
        workers_full=v["workers_busy"],
        total_worker_slots=v["tasks_dispatched"],
        efficiency=0.0,
        idle_percentage=0.0,
    )
    if wall_clock > 0:
        if v["workers_connected"] > 0:
            v["efficiency"] = v["time_workers_execute_good"] / (wall_clock
                                                                * v["workers_connected"])
        v["idle_percentage"] = v["time_polling"] / wall_clock


def category_snapshot(state: Any, category: Any) -> Stats:
    """Statistics of one category: its own counters plus its tasks' current states."""
    from . import task_state as ts

    values: dict[str, Any] = asdict(category.stats)
    values["time_when_started"] = int(values["time_when_started"] * 1e6)
    counts = {ts.READY: 0, ts.RUNNING: 0, ts.WAITING_RETRIEVAL: 0, ts.RETRIEVED: 0}
    for t in state.tasks.values():
        if t.category == category.name:
            counts[t.state] = counts.get(t.state, 0) + 1
    values.update(
        category=category.name,
        tasks_waiting=counts[ts.READY],
        tasks_running=counts[ts.RUNNING],
        tasks_on_workers=counts[ts.RUNNING] + counts[ts.WAITING_RETRIEVAL],
        tasks_with_results=counts[ts.RETRIEVED],
    )
    for name in CURRENT_STATE_FIELDS:
        values.setdefault(name, 0)
    add_deprecated(values, 0)
    return Stats(values)
