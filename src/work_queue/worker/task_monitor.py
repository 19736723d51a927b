"""Monitoring a task on the worker (extension ``wq-py-monitor``).

The manager's ``monitor`` request carries the limits (the task's allocation box) and options.
The worker samples the task's process tree from its event loop with a
:class:`work_queue.monitor.measure.TreeMonitor`, kills the task when a limit is broken (unless
``measure_only``), and when the task ends writes ``cctools-monitor.summary`` in the sandbox and
reports the exit code CCTools' ``resource_monitor`` would have exited with.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..constants import WORK_QUEUE_RESULT_SIGNAL
from ..monitor.measure import RM_MONITOR_ERROR

if TYPE_CHECKING:
    from .executor import TaskRun

__all__ = ["RM_MONITOR_ERROR", "TaskMonitor", "finish_monitor", "over_limit",
           "watch_before_start"]

logger = logging.getLogger(__name__)
#: The first look at a task comes soon (short tasks), later ones every ``interval``.
FIRST_SAMPLE_AFTER = 0.05
DEFAULT_INTERVAL = 1.0


class TaskMonitor:
    """Sampling state of one monitored task."""

    def __init__(self, request: dict[str, Any], pid: int, sandbox: str, command: str,
                 now: float, snapshots: Any = None) -> None:
        """``snapshots``: what :func:`watch_before_start` made for this task, if anything."""
        from ..monitor.measure import TreeMonitor, validate_limits

        if isinstance(snapshots, Exception):
            raise snapshots

        limits = request.get("limits") or {}
        if not isinstance(limits, dict):
            raise ValueError("monitor limits must be an object")
        self.limits = validate_limits(limits)
        self.measure_only = bool(request.get("measure_only"))
        interval = request.get("interval") or 0
        self.interval = float(interval) if isinstance(interval, int | float) and interval > 0 \
            else DEFAULT_INTERVAL
        self.task_id = request.get("task_id")
        self.category = str(request.get("category") or "default")
        self.command = command
        self.sandbox = sandbox
        self.tree = TreeMonitor(pid, sandbox, self.limits, start=now,
                                measure_only=self.measure_only)
        self.next_sample = self.tree.next_sample(now, FIRST_SAMPLE_AFTER)
        self.snapshots = snapshots if snapshots is not None else \
            _snapshot_recorder(request, sandbox, now)
        #: how many broken limits the debug log has told of
        self.reported = 0

    def due(self, now: float) -> bool:
        return now >= self.next_sample

    def next_time(self) -> float:
        """When the event loop should wake up for the next sample."""
        return self.next_sample

    def sample(self, now: float) -> str | None:
        """Measure now; the name of a broken limit that should stop the task, if any."""
        broken = self.tree.sample(now)
        self.next_sample = self.tree.next_sample(now, self.interval)
        if self.snapshots is not None:
            self.snapshots.after_sample(self.tree.current, now)
        if broken and len(self.tree.limits_exceeded) > self.reported:
            # as CCTools' monitor says it (also when it only measures), once per limit
            for line in self.tree.exceeded_messages()[self.reported:]:
                logger.debug(line)
            for name in list(self.tree.limits_exceeded)[self.reported:]:
                # CCTools 7.0's monitor (the 2019 tutorial greps the worker's output for it)
                logger.debug("Limit %s broken.", name)
                if not self.measure_only and name in OVER_LIMIT:
                    logger.debug(over_limit(self.task_id, name, self.tree.peaks.get(name, 0.0),
                                            self.tree.limits_exceeded[name]))
            self.reported = len(self.tree.limits_exceeded)
        return None if self.measure_only else broken

    def kill(self) -> None:
        """Stop every process of the task, also those that left its process group."""
        self.tree.kill()

    def finish(self, now: float, rusage: Any, exit_code: int,
               signal: int) -> tuple[int, bytes]:
        """The summary (CCTools JSON) and resource_monitor's exit code."""
        from ..monitor import summary as summary_mod
        from ..monitor.measure import exit_code as monitor_exit_code

        if self.snapshots is not None:
            self.snapshots.check(now)  # a file the task made just before it ended
        summary = self.tree.finish(now, rusage=rusage, exit_status=exit_code, signal=signal)
        if self.snapshots is not None and self.snapshots.snapshots:
            summary["snapshots"] = self.snapshots.snapshots
        summary["command"] = self.command
        if self.task_id is not None:
            summary["task_id"] = str(self.task_id)
        summary["category"] = self.category
        return monitor_exit_code(summary), summary_mod.dumps(summary).encode()


#: CCTools 7.17.1 worker's words for killing a task over its disk or wall time
#: (``enforce_process_limits``, ``enforce_processes_max_running_time``).
OVER_LIMIT = {"disk": "disk size", "wall_time": "running time"}


def over_limit(task_id: Any, name: str, used: float, limit: float) -> str:
    """``Task 3 went over its disk size limit: 30 MB > 10 MB``, as CCTools' worker writes it
    (its two values come from one static buffer, so it prints the first twice: ours differ)."""
    from ..monitor.summary import UNITS, format_value

    return (f"Task {task_id} went over its {OVER_LIMIT[name]} limit: "
            f"{format_value(name, used)} {UNITS[name]} > {format_value(name, limit)} {UNITS[name]}")


def watch_before_start(request: dict[str, Any] | None, sandbox: str, now: float) -> Any:
    """The snapshot watcher of a task about to start, or None; the error if its events file
    is bad (:class:`TaskMonitor` raises it: the task then runs unmonitored).  CCTools' monitor
    looks at the watched files before it spawns the task, so a file the task makes at once is
    seen being created."""
    if not request or not request.get("snapshot_events"):
        return None
    try:
        return _snapshot_recorder(request, sandbox, now)
    except (OSError, ValueError, TypeError) as e:
        return e


def _snapshot_recorder(request: dict[str, Any], sandbox: str, now: float) -> Any:
    """Snapshots as the events file (``--snapshot-events``, in the sandbox) asks, if any."""
    name = request.get("snapshot_events")
    if not name:
        return None
    from ..monitor.snapshots import SnapshotRecorder, SnapshotWatcher, load_events

    watches = load_events(os.path.join(sandbox, str(name)))  # ValueError: not monitored
    return SnapshotRecorder(SnapshotWatcher(watches, sandbox), now,
                            os.path.join(sandbox, "cctools-monitor"))


def finish_monitor(run: TaskRun) -> int:
    """Write a monitored task's summary once it ended; returns resource_monitor's exit code
    (the worker's core makes it the task's)."""
    signal_number = run.exit_code if run.status == WORK_QUEUE_RESULT_SIGNAL else 0
    exit_code = 0 if signal_number else run.exit_code
    try:
        code, run.summary = run.monitor.finish(run.finish or time.time(), run.rusage,
                                               exit_code, signal_number)
    except Exception as e:  # a failed measurement must not lose the task
        logger.warning("task %d: monitoring failed: %s", run.spec.task_id, e)
        code = RM_MONITOR_ERROR
    run.monitor = None
    return int(code)
