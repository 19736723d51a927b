"""Monitoring a task on the worker (extension ``wq-py-monitor``).

The manager's ``monitor`` request carries the limits (the task's allocation box) and options.
The worker samples the task's process tree from its event loop with a
:class:`work_queue.monitor.measure.TreeMonitor`, kills the task when a limit is broken (unless
``measure_only``), and when the task ends writes ``cctools-monitor.summary`` in the sandbox and
reports the exit code CCTools' ``resource_monitor`` would have exited with.
"""

from __future__ import annotations

import os
from typing import Any

SUMMARY_NAME = "cctools-monitor.summary"
#: resource_monitor exit codes (``enum rmonitor_errors``).
RM_SUCCESS, RM_TASK_ERROR, RM_OVERFLOW, RM_TIME_EXPIRE, RM_MONITOR_ERROR = range(5)
#: The first look at a task comes soon (short tasks), later ones every ``interval``.
FIRST_SAMPLE_AFTER = 0.05
DEFAULT_INTERVAL = 1.0


class TaskMonitor:
    """Sampling state of one monitored task."""

    def __init__(self, request: dict[str, Any], pid: int, sandbox: str, command: str,
                 now: float) -> None:
        from ..monitor.measure import TreeMonitor

        limits = request.get("limits") or {}
        self.limits = {str(k): float(v) for k, v in limits.items()
                       if isinstance(v, int | float) and v >= 0}
        self.measure_only = bool(request.get("measure_only"))
        interval = request.get("interval") or 0
        self.interval = float(interval) if isinstance(interval, int | float) and interval > 0 \
            else DEFAULT_INTERVAL
        self.task_id = request.get("task_id")
        self.category = request.get("category") or "default"
        self.command = command
        self.sandbox = sandbox
        self.tree = TreeMonitor(pid, sandbox, self.limits, start=now)
        self.start = now
        self.next_sample = now + FIRST_SAMPLE_AFTER
        wall = self.limits.get("wall_time", 0)
        if wall > 0:
            self.next_sample = min(self.next_sample, now + wall)
        self.broken: str | None = None

    def due(self, now: float) -> bool:
        return now >= self.next_sample

    def next_time(self) -> float:
        """When the event loop should wake up for the next sample."""
        wall = self.limits.get("wall_time", 0)
        if wall > 0:
            return min(self.next_sample, self.start + wall)
        return self.next_sample

    def sample(self, now: float) -> str | None:
        """Measure now; the name of a broken limit that should stop the task, if any."""
        self.next_sample = now + self.interval
        wall = self.limits.get("wall_time", 0)
        broken = "wall_time" if wall > 0 and now - self.start >= wall else self.tree.sample(now)
        if broken and self.broken is None:
            self.broken = broken
        return None if self.measure_only else broken

    def finish(self, now: float, rusage: Any, exit_code: int, signal: int) -> int:
        """Write the summary into the sandbox; returns the monitor's exit code."""
        from ..monitor import summary as summary_mod

        summary = self.tree.finish(now, rusage=rusage, exit_status=exit_code, signal=signal)
        summary.setdefault("command", self.command)
        if self.task_id is not None:
            summary["task_id"] = str(self.task_id)
        summary["category"] = self.category
        broken = self.broken or _broken_in(summary)
        if broken and not summary.get("limits_exceeded"):
            summary["limits_exceeded"] = {broken: self.limits.get(broken, -1)}
        if broken:
            summary["exit_type"] = "limits"
        text = summary_mod.dumps(summary)
        try:
            with open(os.path.join(self.sandbox, SUMMARY_NAME), "w") as f:
                f.write(text)
        except OSError:
            return RM_MONITOR_ERROR
        if broken == "wall_time":
            return RM_TIME_EXPIRE
        if broken:
            return RM_OVERFLOW
        return RM_TASK_ERROR if exit_code != 0 or signal else RM_SUCCESS


def _broken_in(summary: dict[str, Any]) -> str | None:
    exceeded = summary.get("limits_exceeded")
    if isinstance(exceeded, dict) and exceeded:
        return str(next(iter(exceeded)))
    return None
