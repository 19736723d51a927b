"""Resource monitoring of tasks (``enable_monitoring``), the manager's side.

Each monitored task's summary is parsed into ``t.resources_measured`` (and kept as
``<dir>/wq-<pid>-task-<id>.summary`` when monitoring has a directory).  Who measures depends
on the worker:

* our worker announces the ``wq-py-monitor`` feature and measures the task itself, from its
  event loop (no extra process per task): the manager sends a ``monitor`` line with the
  limits, and the worker sends the summary just before the task's result (no extra file);
* any other worker (CCTools') gets the command wrapped exactly as CCTools wraps it,
  ``./cctools-monitor --no-pprint ... --sh 'cmd'``, with a ``resource_monitor`` executable
  found on this machine sent as the cached input ``cctools-monitor``.

Either way the task's exit code is the monitor's (0 ok, 1 task error, 2 a limit was broken,
3 wall time expired, 4 monitor error) and the real exit status is read from the summary,
as in CCTools.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import tempfile
from dataclasses import dataclass
from typing import Any, TextIO

from ..constants import (
    WORK_QUEUE_CACHE,
    WORK_QUEUE_FILE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_NOCACHE,
    WORK_QUEUE_OUTPUT,
    WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
    WORK_QUEUE_RESULT_RMONITOR_ERROR,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_TIMEOUT,
)
from ..core.resources import Resources
from ..core.rmsummary import RESOURCE_NAMES, ResourceSummary, format_value
from ..monitor.measure import RM_OVERFLOW, RM_TIME_EXPIRE
from .files import FileSpec, make_file_spec

logger = logging.getLogger(__name__)

REMOTE_NAME = "cctools-monitor"
SUMMARY_NAME = REMOTE_NAME + ".summary"
#: the snapshot events file (``t.specify_snapshot_file``); CCTools names it so, without a dot
EVENTS_NAME = REMOTE_NAME + "events.json"



def locate_resource_monitor() -> str | None:
    """The ``resource_monitor`` CCTools workers are sent as ``cctools-monitor``.

    ``CCTOOLS_RESOURCE_MONITOR`` names one (CCTools' own binary, for example); otherwise ours,
    packed once per manager process into a single self-contained file (it needs only a
    ``python3`` on the worker's host).
    """
    path = os.environ.get("CCTOOLS_RESOURCE_MONITOR")
    if path and os.access(path, os.X_OK):
        return path
    global _STANDALONE
    if _STANDALONE is None or not os.path.exists(_STANDALONE):
        from ..monitor.standalone import build

        directory = tempfile.mkdtemp(prefix="wq-monitor-")
        _STANDALONE = build(os.path.join(directory, "resource_monitor"))
    return _STANDALONE


_STANDALONE: str | None = None


@dataclass
class MonitorConfig:
    """What ``enable_monitoring`` / ``enable_monitoring_full`` asked for."""

    directory: str | None = None
    watchdog: bool = True
    full: bool = False
    interval: float = 0
    executable: str | None = None
    summaries: TextIO | None = None

    def summary_path(self, task: Any) -> str | None:
        """Where the task's summary is kept (None: in memory only)."""
        directory = task.monitor_output_directory or self.directory
        if not directory:
            return None
        return os.path.join(directory, f"wq-{os.getpid()}-task-{task.id}.summary")

    def limits(self, box: Resources) -> dict[str, float]:
        """The limits the monitor enforces: the task's allocation box (with the summary
        fields beyond cores, memory, disk, gpus and time its category or itself limits)."""
        out: dict[str, float] = {}
        for name in ("wall_time", "end", "memory", "disk", "gpus", "cores"):
            value = getattr(box, name)
            if value > -1 and not (name in ("gpus", "end", "wall_time") and value == 0):
                out[name] = value
        # every other field of the resource summary a category (or the task) limits, as
        # CCTools' box (merged with the task's minimum) carries it to ``-L``
        out.update(box.extra)
        return out

    def native_request(self, task: Any, box: Resources) -> bytes:
        """The ``monitor`` line's JSON for our worker."""
        request = {"limits": self.limits(box), "measure_only": not self.watchdog,
                   "interval": self.interval, "series": self.full,
                   "task_id": task.id, "category": task.category}
        if task.monitor_snapshot_file:
            request["snapshot_events"] = EVENTS_NAME
        return json.dumps(request, separators=(",", ":")).encode()

    def wrap(self, task: Any, box: Resources) -> str:
        """The command as CCTools wraps it for its ``resource_monitor``."""
        parts = [f"./{REMOTE_NAME} --no-pprint --with-output-files={REMOTE_NAME}"]
        if self.full:
            parts.append(f"-dall -o {REMOTE_NAME}.debug --with-time-series")
        limits = self.limits(box)
        for name in RESOURCE_NAMES:
            if name in limits:
                parts.append(f"-L '{name}: {format_value(name, limits[name])}'")
        parts.append(f"-V 'task_id: {task.id}'")
        if task.category:
            parts.append(f"-V 'category: {task.category}'")
        if getattr(task, "monitor_snapshot_file", None):
            parts.append(f"--snapshot-events {EVENTS_NAME}")
        if not self.watchdog:
            parts.append("--measure-only")
        if self.interval > 0:
            parts.append(f"--interval {int(self.interval)}")
        parts.append("--sh " + shlex.quote(task.command))
        return " ".join(parts)

    def executable_spec(self) -> FileSpec | None:
        if self.executable is None:
            return None
        return _executable_spec(self.executable)

    def close(self) -> None:
        if self.summaries is not None:
            self.summaries.close()
            self.summaries = None


_EXE_SPECS: dict[str, FileSpec] = {}


def _executable_spec(path: str) -> FileSpec:
    spec = _EXE_SPECS.get(path)
    if spec is None:
        spec = _EXE_SPECS[path] = make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_INPUT, path,
                                                 REMOTE_NAME, WORK_QUEUE_CACHE)
    return spec


def summary_spec(config: MonitorConfig, task: Any) -> FileSpec:
    """The output that brings the summary back (a file, or kept in memory)."""
    path = config.summary_path(task)
    spec = make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_OUTPUT, path or SUMMARY_NAME,
                          SUMMARY_NAME, WORK_QUEUE_NOCACHE)
    spec.memory = path is None
    return spec


def read_summary(config: MonitorConfig, task: Any, spec: FileSpec) -> str | None:
    """The summary text fetched for ``task``, or None if none arrived."""
    if spec.memory:
        value = task.memory_outputs.get(SUMMARY_NAME)
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        value.seek(0)
        return value.read().decode("utf-8", "replace")  # type: ignore[no-any-return]
    try:
        with open(spec.source, encoding="utf-8", errors="replace") as f:  # type: ignore
            return f.read()
    except OSError:
        return None


def keep_summary(config: MonitorConfig, task: Any, text: str | None) -> None:
    """Write a summary our worker sent where CCTools would have put the fetched file."""
    path = config.summary_path(task)
    if path is None or text is None:
        return
    try:
        # CCTools creates the directory's parents as it receives the file (get_file)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        logger.warning("cannot keep the summary of task %s in %s: %s", task.id, path, e)


def apply_summary(task: Any, text: str | None, config: MonitorConfig) -> None:
    """Fill the task's measured resources from its summary (CCTools
    ``read_measured_resources``) and turn the monitor's exit code into a result."""
    monitor_code = task.return_status
    summary: ResourceSummary | None = None
    if text:
        try:
            summary = ResourceSummary.from_text(text)
        except ValueError:
            summary = None
    if summary is None:
        task.measured = None
        task.resources_measured = ResourceSummary()
        if task.result == WORK_QUEUE_RESULT_SUCCESS:
            task.result = WORK_QUEUE_RESULT_RMONITOR_ERROR
        return
    task.return_status = summary.exit_status
    if summary.cores > 0:
        # cleanup noise, so small fluctuations do not look like new maxima (CCTools), never
        # below zero
        summary.cores = max(0.0, min(summary.cores, float(math.ceil(summary.cores - 0.1))))
    task.measured = summary
    task.resources_measured = summary
    task.limits_exceeded = summary.limits_exceeded
    if task.result == WORK_QUEUE_RESULT_SUCCESS:
        if monitor_code == RM_OVERFLOW:
            task.result = WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
        elif monitor_code == RM_TIME_EXPIRE:
            task.result = WORK_QUEUE_RESULT_TASK_TIMEOUT
    if config.summaries is not None:
        config.summaries.write(text.rstrip("\n") + "\n\n")  # type: ignore[union-attr]
        config.summaries.flush()
