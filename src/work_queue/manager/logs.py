"""Writers of the three manager logs: debug, transactions and statistics (CCTools formats).

All are opened in append mode and line-buffered, so a crashed manager leaves complete lines.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from ..core.resources import Resources

TXN_HEADER = """\
# time manager_pid MANAGER START|END
# time manager_pid WORKER worker_id host:port CONNECTION
# time manager_pid WORKER worker_id host:port DISCONNECTION (UNKNOWN|IDLE_OUT|FAST_ABORT|FAILURE|STATUS_WORKER|EXPLICIT)
# time manager_pid WORKER worker_id RESOURCES {resources}
# time manager_pid CATEGORY name MAX {resources_max_per_task}
# time manager_pid CATEGORY name MIN {resources_min_per_task_per_worker}
# time manager_pid CATEGORY name FIRST (FIXED|MAX|MIN_WASTE|MAX_THROUGHPUT) {resources_requested}
# time manager_pid TASK taskid WAITING category_name (FIRST_RESOURCES|MAX_RESOURCES) {resources_requested}
# time manager_pid TASK taskid RUNNING worker_address (FIRST_RESOURCES|MAX_RESOURCES) {resources_allocated}
# time manager_pid TASK taskid WAITING_RETRIEVAL worker_address
# time manager_pid TASK taskid (RETRIEVED|DONE) (SUCCESS|SIGNAL|END_TIME|FORSAKEN|MAX_RETRIES|MAX_WALLTIME|UNKNOWN|RESOURCE_EXHAUSTION) exit_code {limits_exceeded} {resources_measured}
# time manager_pid TRANSFER (INPUT|OUTPUT) taskid cache_flag sizeinmb walltime filename

"""

STATS_COLUMNS = ["timestamp", "workers_connected", "workers_init", "workers_idle", "workers_busy", "workers_able", "workers_joined", "workers_removed", "workers_released", "workers_idled_out", "workers_blocked", "workers_fast_aborted", "workers_lost", "tasks_waiting", "tasks_on_workers", "tasks_running", "tasks_with_results", "tasks_submitted", "tasks_dispatched", "tasks_done", "tasks_failed", "tasks_cancelled", "tasks_exhausted_attempts", "time_send", "time_receive", "time_send_good", "time_receive_good", "time_status_msgs", "time_internal", "time_polling", "time_application", "time_execute", "time_execute_good", "time_execute_exhaustion", "bytes_sent", "bytes_received", "bandwidth", "capacity_tasks", "capacity_cores", "capacity_memory", "capacity_disk", "capacity_instantaneous", "capacity_weighted", "manager_load", "total_cores", "total_memory", "total_disk", "committed_cores", "committed_memory", "committed_disk", "max_cores", "max_memory", "max_disk", "min_cores", "min_memory", "min_disk"]

_UNITS = {"cores": "cores", "memory": "MB", "disk": "MB", "gpus": "gpus", "wall_time": "s",
          "end": "s", "start": "s"}


def resources_json(r: Resources | None) -> str:
    """``{"cores":[1,"cores"],"memory":[800,"MB"],...}`` for the specified values."""
    if r is None:
        return "{}"
    out = {}
    for name in ("start", "end", "wall_time", "memory", "disk", "gpus", "cores"):
        v = getattr(r, name)
        if v >= 0:
            v = round(v, 3) if name == "cores" else v
            out[name] = [int(v) if float(v).is_integer() else v, _UNITS[name]]
    return json.dumps(out, separators=(",", ":"))


def _usec() -> int:
    return int(time.time() * 1e6)


class TransactionLog:
    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)
        self._pid = os.getpid()
        if self._f.tell() == 0:
            self._f.write(TXN_HEADER)

    def _line(self, now: float, text: str) -> None:
        self._f.write(f"{int(now * 1e6)} {self._pid} {text}\n")

    def manager(self, what: str, now: float) -> None:
        self._line(now, f"MANAGER {what}")

    def worker_connected(self, w: Any, address: str, now: float) -> None:
        self._line(now, f"WORKER {w.worker_id} {address}  CONNECTION")

    def worker_disconnected(self, w: Any, address: str, reason: str, now: float) -> None:
        self._line(now, f"WORKER {w.worker_id or '(null)'} {address}  DISCONNECTION {reason}")

    def worker_resources(self, w: Any, now: float) -> None:
        r = Resources(cores=w.resources.cores, memory=w.resources.memory,
                      disk=w.resources.disk, gpus=w.resources.gpus)
        self._line(now, f"WORKER {w.worker_id} RESOURCES {resources_json(r)}")

    def task_waiting(self, task: Any, now: float) -> None:
        self._line(now, f"TASK {task.id} WAITING {task.category} FIRST_RESOURCES "
                        f"{resources_json(task.resources_requested)}")

    def task_running(self, task: Any, address: str, box: Resources, now: float) -> None:
        self._line(now, f"TASK {task.id} RUNNING {address}  FIRST_RESOURCES "
                        f"{resources_json(box)}")

    def task_event(self, task: Any, what: str, now: float, extra: str = "") -> None:
        self._line(now, f"TASK {task.id} {what}" + (f" {extra}" if extra else ""))

    def _final(self, task: Any, what: str, now: float) -> None:
        from ..constants import work_queue_result_str

        self._line(now, f"TASK {task.id} {what} {work_queue_result_str(task.result)}  "
                        f"{task.return_status}  {{}} {{}}")

    def task_retrieved(self, task: Any, now: float) -> None:
        self._final(task, "RETRIEVED", now)

    def task_done(self, task: Any, now: float) -> None:
        self._final(task, "DONE", now)

    def close(self) -> None:
        self._f.close()


class StatsLog:
    """The performance log read by ``work_queue_graph_log``: one line at most every 5 s."""

    INTERVAL = 5.0

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)
        self._last = 0.0
        self._f.write("# " + " ".join(STATS_COLUMNS) + "\n")

    def write(self, stats: Any, now: float, force: bool = False) -> None:
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        values = stats.as_dict()
        values["timestamp"] = int(now * 1e6)
        values["time_execute"] = values.get("time_workers_execute", 0)
        values["time_execute_good"] = values.get("time_workers_execute_good", 0)
        values["time_execute_exhaustion"] = values.get("time_workers_execute_exhaustion", 0)
        fields = []
        for col in STATS_COLUMNS:
            v = values.get(col, 0)
            fields.append(f"{v:f}" if col in ("bandwidth", "manager_load") else str(int(v)))
        self._f.write(" ".join(fields) + "\n")

    def close(self) -> None:
        self._f.close()


class DebugLog:
    """``YYYY/MM/DD HH:MM:SS.cc program[pid] wq: message`` lines."""

    def __init__(self, path: str) -> None:
        self._f = sys.stderr if path in (":stderr", "") else open(path, "a", buffering=1)
        self._prefix = f"{os.path.basename(sys.argv[0] or 'python')}[{os.getpid()}]"

    def write(self, message: str) -> None:
        now = time.time()
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now))
        self._f.write(f"{stamp}.{int(now * 100) % 100:02d} {self._prefix} wq: {message}\n")

    def close(self) -> None:
        if self._f is not sys.stderr:
            self._f.close()
