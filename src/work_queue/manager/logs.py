"""Writers of the three manager logs in CCTools' exact formats: debug, transactions, statistics.

The transactions and statistics logs are opened in append mode and line-buffered, so a crashed
manager leaves complete lines; each opening writes the header comment again, as CCTools does.
Formats: spec section 6 (``work_queue.c``: ``write_transaction*``, ``log_queue_stats``;
``rmsummary.c`` for resource JSON; ``dttools/src/debug.c`` for the debug log).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, TextIO

from ..constants import WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, work_queue_result_str
from ..monitor.summary import RESOURCE_FIELDS

MEGABYTE = 1 << 20

#: The comment block at the top of every transactions log, byte for byte as CCTools writes it
#: (including the missing ``)`` on the DISCONNECTION line).
TXN_HEADER = """\
# time manager_pid MANAGER START|END
# time manager_pid WORKER worker_id host:port CONNECTION
# time manager_pid WORKER worker_id host:port DISCONNECTION (UNKNOWN|IDLE_OUT|FAST_ABORT|FAILURE|STATUS_WORKER|EXPLICIT
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

#: The 56 columns of the statistics log, in order.
STATS_COLUMNS = (
    "timestamp",
    "workers_connected", "workers_init", "workers_idle", "workers_busy", "workers_able",
    "workers_joined", "workers_removed", "workers_released", "workers_idled_out",
    "workers_blocked", "workers_fast_aborted", "workers_lost",
    "tasks_waiting", "tasks_on_workers", "tasks_running", "tasks_with_results",
    "tasks_submitted", "tasks_dispatched", "tasks_done", "tasks_failed", "tasks_cancelled",
    "tasks_exhausted_attempts",
    "time_send", "time_receive", "time_send_good", "time_receive_good", "time_status_msgs",
    "time_internal", "time_polling", "time_application",
    "time_execute", "time_execute_good", "time_execute_exhaustion",
    "bytes_sent", "bytes_received", "bandwidth",
    "capacity_tasks", "capacity_cores", "capacity_memory", "capacity_disk",
    "capacity_instantaneous", "capacity_weighted", "manager_load",
    "total_cores", "total_memory", "total_disk",
    "committed_cores", "committed_memory", "committed_disk",
    "max_cores", "max_memory", "max_disk",
    "min_cores", "min_memory", "min_disk",
)
STATS_HEADER = "# " + " ".join(STATS_COLUMNS) + "\n"
#: Columns printed with ``%f``; all others are integers.
_FLOAT_COLUMNS = frozenset(("bandwidth", "manager_load"))
#: Log columns whose value comes from a differently named statistic.
_STATS_SOURCE = {"time_execute": "time_workers_execute",
                 "time_execute_good": "time_workers_execute_good",
                 "time_execute_exhaustion": "time_workers_execute_exhaustion"}

DISCONNECT_REASONS = ("UNKNOWN", "IDLE_OUT", "FAST_ABORT", "FAILURE", "STATUS_WORKER", "EXPLICIT")
_ALLOCATION_LABELS = {0: "FIRST_RESOURCES", 1: "MAX_RESOURCES"}


# -- numbers and resource JSON as CCTools prints them ---------------------------------------------

def jx_double(value: float) -> str:
    """A JX double: C ``%.16g`` (``1.0`` prints ``1``, ``9.8e-05`` stays exponential)."""
    return "%.16g" % float(value)


def _jx_number(value: float, decimals: int) -> str:
    """``value_to_jx_number``: an integer (truncated) for 0 decimals, else rounded half up."""
    if decimals == 0:
        return str(int(value))
    factor = 10.0 ** decimals
    return jx_double(int(value * factor + 0.5) / factor)


def resources_json(r: Any) -> str:
    """``{"memory":[800,"MB"],"disk":[500,"MB"],"cores":[1,"cores"]}``: CCTools' resource JSON.

    Fields in ``rmsummary`` order, only those set (>= 0), each with its unit and decimals;
    ``r`` is a :class:`Resources`, a :class:`ResourceSummary`, a dict, or None (``{}``).
    """
    return "{" + ",".join(_resource_items(r)) + "}"


def _resource_items(r: Any) -> list[str]:
    if r is None:
        return []
    get = r.get if isinstance(r, dict) else (lambda name, default: getattr(r, name, default))
    items = []
    for name, unit, decimals in RESOURCE_FIELDS:
        value = get(name, -1)
        if value is None or value < 0:
            continue
        items.append(f'"{name}":[{_jx_number(value, decimals)},"{unit}"]')
    return items


def measured_json(measured: Any, input_bytes: float, output_bytes: float,
                  input_seconds: float, output_seconds: float) -> str:
    """The ``{resources_measured}`` of RETRIEVED/DONE: the manager's transfer figures first
    (``wq_output_time``, ``wq_input_time``, ``wq_output_size``, ``wq_input_size``), then the
    measured resources."""
    head = [f'"wq_output_time":[{jx_double(output_seconds)},"s"]',
            f'"wq_input_time":[{jx_double(input_seconds)},"s"]',
            f'"wq_output_size":[{jx_double(output_bytes / MEGABYTE)},"MB"]',
            f'"wq_input_size":[{jx_double(input_bytes / MEGABYTE)},"MB"]']
    return "{" + ",".join(head + _resource_items(measured)) + "}"


class _Attempt:
    """What one attempt of a task moved: CCTools resets these when a task is requeued."""

    __slots__ = ("sent", "received", "out_start", "pending")

    def __init__(self, now: float) -> None:
        self.sent = 0.0
        self.received = 0.0
        self.out_start = now  # when the output file being fetched started
        self.pending = 0  # bytes of that file so far


def _open_log(path: str, what: str) -> TextIO:
    try:
        return open(path, "a", buffering=1)
    except OSError as e:
        raise OSError(e.errno, f"cannot open the {what} {path!r}: {e.strerror}") from None


# -- transactions log -----------------------------------------------------------------------------

class TransactionLog:
    """The transactions log: ``<µs timestamp> <manager pid> <event>`` lines (spec 6.2).

    ``state`` (the manager's :class:`ManagerState`) lets WAITING lines show the task's minimum
    allocation as CCTools does; without it they show what the task requested.
    """

    def __init__(self, path: str, state: Any = None) -> None:
        self._f = _open_log(path, "transactions log")
        self._pid = os.getpid()
        self._last_us = 0
        self.state = state
        #: Per task id: the bytes and times of its current attempt on a worker.
        self._attempt: dict[int, _Attempt] = {}
        #: Task ids whose RETRIEVED line is written (and DONE not yet).
        self._retrieved: set[int] = set()
        self._f.write(TXN_HEADER)

    def _line(self, now: float, text: str) -> None:
        us = max(int(now * 1e6), self._last_us)  # never back in time
        self._last_us = us
        self._f.write(f"{us} {self._pid} {text}\n")

    def manager(self, what: str, now: float) -> None:
        """``MANAGER START`` / ``MANAGER END``."""
        self._line(now, f"MANAGER {what}")

    # workers

    def worker_connected(self, w: Any, address: str, now: float) -> None:
        self._line(now, f"WORKER {w.worker_id} {address}  CONNECTION")

    def worker_disconnected(self, w: Any, address: str, reason: str, now: float) -> None:
        reason = reason if reason in DISCONNECT_REASONS else "UNKNOWN"
        worker_id = getattr(w, "worker_id", None) or "(null)"
        self._line(now, f"WORKER {worker_id} {address}  DISCONNECTION {reason}")

    def worker_resources(self, w: Any, now: float) -> None:
        """Total memory, disk and cores the worker reported (gpus are not shown, as in CCTools)."""
        r = w.resources
        values = {"memory": r.memory, "disk": r.disk, "cores": r.cores}
        self._line(now, f"WORKER {w.worker_id} RESOURCES {resources_json(values)}")

    # categories

    def category(self, c: Any, now: float) -> None:
        """``CATEGORY <name> MAX|MIN|FIRST`` lines: on a mode change, or a new first allocation."""
        from ..core.categories import ALLOCATION_FIRST, ALLOCATION_MAX

        self._line(now, f"CATEGORY {c.name} MAX {resources_json(c.task_max(None, ALLOCATION_MAX))}")
        self._line(now, f"CATEGORY {c.name} MIN "
                        f"{resources_json(c.task_min(None, ALLOCATION_FIRST))}")
        self._line(now, f"CATEGORY {c.name} FIRST {c.mode_name} "
                        f"{resources_json(c.task_max(None, ALLOCATION_FIRST))}")

    # tasks

    def _label(self, task: Any) -> str:
        return _ALLOCATION_LABELS.get(getattr(task, "resource_request", 0), "FIRST_RESOURCES")

    def min_resources(self, task: Any) -> Any:
        """What the WAITING line shows: CCTools' ``task_min_resources``."""
        requested = task.resources_requested
        state = self.state
        if state is None:
            return requested
        c = state.categories.get_or_create(task.category)
        r = c.task_min(requested, task.resource_request, state.largest_worker(), task.id)
        from ..constants import WORK_QUEUE_ALLOCATION_MODE_FIXED

        if c.mode == WORK_QUEUE_ALLOCATION_MODE_FIXED and requested.disk < 0:
            r = r.copy()
            r.disk = max(r.disk, 0)  # CCTools: "nor below the observed sandboxes" (always 0)
        return r

    def task_waiting(self, task: Any, now: float) -> None:
        """``TASK <id> WAITING <category> <label> {min resources}`` (submitted or requeued)."""
        self._attempt.pop(task.id, None)
        self._retrieved.discard(task.id)
        self._line(now, f"TASK {task.id} WAITING {task.category} {self._label(task)} "
                        f"{resources_json(self.min_resources(task))}")

    def task_running(self, task: Any, address: str, box: Any, now: float) -> None:
        """``TASK <id> RUNNING <ip:port>  <label> {box}``, after its inputs were sent."""
        self._line(now, f"TASK {task.id} RUNNING {address}  {self._label(task)} "
                        f"{resources_json(box)}")

    def task_waiting_retrieval(self, task: Any, address: str, now: float) -> None:
        """``TASK <id> WAITING_RETRIEVAL <ip:port> `` (with CCTools' trailing space)."""
        self._attempt_of(task.id, now).out_start = now
        self._line(now, f"TASK {task.id} WAITING_RETRIEVAL {address} ")

    def task_event(self, task: Any, what: str, now: float, extra: str = "") -> None:
        """A plain ``TASK <id> <what>`` line (``CANCELED``; ``WAITING_RETRIEVAL <addr> ``)."""
        if what == "WAITING_RETRIEVAL":
            self.task_waiting_retrieval(task, extra.rstrip(" "), now)
            return
        if what == "CANCELED":
            self.task_canceled(task, now)
            return
        self._line(now, f"TASK {task.id} {what}" + (f" {extra}" if extra else ""))

    def task_canceled(self, task: Any, now: float) -> None:
        self._attempt.pop(task.id, None)
        self._retrieved.discard(task.id)
        self._line(now, f"TASK {task.id} CANCELED")

    def _final(self, task: Any, what: str, now: float) -> None:
        result = task.result
        text = f"TASK {task.id} {what} {work_queue_result_str(result)}  {task.return_status} "
        measured = getattr(task, "resources_measured", None)
        if result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION:
            limits = getattr(measured, "limits_exceeded", None)
            if limits is None:
                limits = getattr(task, "limits_exceeded", None)
            text += (resources_json(limits) if limits is not None else "") + " "
        else:
            text += " {} "
        attempt = self._attempt.get(task.id)
        if attempt is not None:
            sent, received = attempt.sent, attempt.received
        else:
            sent = getattr(task, "total_bytes_sent", 0)
            received = getattr(task, "total_bytes_received", 0)
        input_us = getattr(task, "time_when_commit_end", 0) - getattr(task, "time_when_commit_start", 0)
        output_us = getattr(task, "receive_output_finish", 0) - getattr(task, "receive_output_start", 0)
        text += measured_json(measured, sent, received, max(input_us, 0) / 1e6,
                              max(output_us, 0) / 1e6)
        self._line(now, text)

    def task_retrieved(self, task: Any, now: float) -> None:
        """``TASK <id> RETRIEVED <RESULT>  <exit>  {limits} {measured}``."""
        self._final(task, "RETRIEVED", now)
        self._retrieved.add(task.id)

    def task_done(self, task: Any, now: float) -> None:
        """``TASK <id> DONE ...`` when ``wait()`` returns the task.

        A task that ended without reaching a worker again (max retries, end time, missing
        input) gets its RETRIEVED line first, as CCTools writes one for it.
        """
        if task.id not in self._retrieved:
            self._final(task, "RETRIEVED", now)
        self._final(task, "DONE", now)
        self._retrieved.discard(task.id)
        self._attempt.pop(task.id, None)

    # transfers

    def _attempt_of(self, task_id: int, now: float) -> _Attempt:
        attempt = self._attempt.get(task_id)
        if attempt is None:
            attempt = self._attempt[task_id] = _Attempt(now)
        return attempt

    def transfer(self, direction: str, task_id: int, cached: bool, size_bytes: float,
                 seconds: float, remote_name: str, now: float) -> None:
        """``TRANSFER INPUT|OUTPUT <taskid> <cache 0|1> <MB %f> <seconds %f> <remote name>``."""
        attempt = self._attempt_of(task_id, now)
        if direction == "INPUT":
            attempt.sent += size_bytes
        else:
            attempt.received += size_bytes
        self._line(now, f"TRANSFER {direction} {task_id} {1 if cached else 0} "
                        f"{size_bytes / MEGABYTE:f} {seconds:f} {remote_name}")

    def input_sent(self, task: Any, spec: Any, size_bytes: float, seconds: float,
                   now: float) -> None:
        """One input file of ``task`` sent (or found cached: 0 bytes) to a worker."""
        self.transfer("INPUT", task.id, bool(getattr(spec, "cached", False)), size_bytes, seconds,
                      spec.remote_name, now)

    def output_bytes(self, task: Any, size_bytes: int) -> None:
        """Bytes of the output file being fetched (counted until :meth:`output_done`)."""
        self._attempt_of(task.id, time.time()).pending += size_bytes

    def output_done(self, task: Any, spec: Any, now: float) -> None:
        """An output file is fetched: a TRANSFER OUTPUT line if it had any bytes (CCTools)."""
        attempt = self._attempt_of(task.id, now)
        size, attempt.pending = attempt.pending, 0
        start, attempt.out_start = attempt.out_start, now
        if size > 0:
            self.transfer("OUTPUT", task.id, bool(getattr(spec, "cached", False)), size,
                          max(now - start, 0.0), spec.remote_name, now)

    def close(self) -> None:
        self._f.close()


# -- statistics log -------------------------------------------------------------------------------

def stats_line(values: dict[str, Any], timestamp_us: int) -> str:
    """One line of the statistics log (56 space-separated fields, no newline)."""
    fields = [str(int(timestamp_us))]
    for col in STATS_COLUMNS[1:]:
        v = values.get(_STATS_SOURCE.get(col, col), 0) or 0
        fields.append(f"{float(v):f}" if col in _FLOAT_COLUMNS else str(int(v)))
    return " ".join(fields)


class StatsLog:
    """The performance log read by ``work_queue_graph_log``: one line at most every 5 s,
    plus forced lines when it is opened and when the manager closes."""

    INTERVAL = 5.0

    def __init__(self, path: str) -> None:
        self._f = _open_log(path, "statistics log")
        self._last = float("-inf")
        self._f.write(STATS_HEADER)

    def write(self, stats: Any, now: float, force: bool = False) -> None:
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        values = stats.as_dict() if hasattr(stats, "as_dict") else dict(stats)
        self._f.write(stats_line(values, int(now * 1e6)) + "\n")

    def close(self) -> None:
        self._f.close()


# -- debug log ------------------------------------------------------------------------------------

#: CCTools' debug flag names (``dttools/src/debug.c``); ``all`` turns every one on.
DEBUG_FLAGS = frozenset((
    "fatal", "error", "notice", "debug", "syscall", "channel", "process", "resolve", "libcall",
    "tcp", "dns", "auth", "local", "http", "ftp", "nest", "chirp", "cvmfs", "multi", "dcap",
    "rfio", "glite", "lfc", "gfal", "grow", "pstree", "alloc", "cache", "poll", "hdfs", "bxgrid",
    "login", "irods", "wq", "mpi", "user", "xrootd", "remote", "batch", "rmonitor", "makeflow",
    "makeflow_run", "makeflow_alloc", "makeflow_lexer", "makeflow_parser", "makeflow_hook", "ext",
    "confuga", "vine", "tlq", "jx", "ssl", "bucketing", "time", "pid",
))
#: Always written whatever the flags (CCTools' defaults).
_ALWAYS = frozenset(("fatal", "error", "notice"))


def parse_debug_flags(flags: Any) -> frozenset[str]:
    """The set of enabled flags from ``-d`` values (``"all"``, ``["wq", "tcp"]``, ``"wq,tcp"``).

    ``clear`` turns off what came before it; an unknown name raises ValueError.
    """
    if isinstance(flags, str):
        flags = [flags]
    enabled: set[str] = set()
    for item in flags or ():
        for name in str(item).replace(",", " ").split():
            if name == "clear":
                enabled.clear()
            elif name == "all":
                enabled |= DEBUG_FLAGS
            elif name in DEBUG_FLAGS:
                enabled.add(name)
            else:
                raise ValueError(f"unknown debug flag {name!r} (use all, wq, tcp, ... or clear)")
    return frozenset(enabled)


def debug_prefix(now: float, program: str, pid: int, flag: str) -> str:
    """``2024/05/01 12:00:00.42 program[123]wq: `` (centiseconds; no space before the flag)."""
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now))
    return f"{stamp}.{int(now * 100) % 100:02d} {program}[{pid}]{flag}: "


class DebugLog:
    """The debug log: ``YYYY/MM/DD HH:MM:SS.cc program[pid]flag: message`` lines.

    ``path`` may be ``:stderr`` or ``:stdout``; ``flags`` as for ``-d`` (default ``all``, as
    CCTools' Python ``debug_log=`` sets).  ``program`` is empty for the manager library, like
    CCTools' bindings; the tools pass their name.  ``rotate_max`` > 0 renames a file that grew
    past that many bytes to ``<path>.old`` and starts a new one (CCTools' ``-O``).
    """

    def __init__(self, path: str, flags: Any = "all", program: str = "",
                 rotate_max: int = 0) -> None:
        self.flags = parse_debug_flags(flags) | _ALWAYS
        self._path = path
        self._program = program
        self._rotate_max = int(rotate_max)
        if path in (":stderr", ""):
            self._f: TextIO = sys.stderr
        elif path == ":stdout":
            self._f = sys.stdout
        else:
            self._f = _open_log(path, "debug log")

    def enabled(self, flag: str) -> bool:
        return flag in self.flags

    def write(self, message: str, flag: str = "wq") -> None:
        if flag not in self.flags:
            return
        now = time.time()
        self._f.write(debug_prefix(now, self._program, os.getpid(), flag) + message.rstrip()
                      + "\n")
        if self._rotate_max > 0 and self._f not in (sys.stderr, sys.stdout):
            self._rotate()

    def _rotate(self) -> None:
        try:
            if os.path.getsize(self._path) < self._rotate_max:
                return
            self._f.close()
            os.replace(self._path, self._path + ".old")
        except OSError:
            return
        self._f = _open_log(self._path, "debug log")

    def close(self) -> None:
        if self._f not in (sys.stderr, sys.stdout):
            self._f.close()


class DebugFormatter(logging.Formatter):
    """A :mod:`logging` formatter writing CCTools debug lines; the flag is the record's
    ``flag`` attribute (``extra={"flag": "tcp"}``), else ``debug``/``notice``/``error`` by level.
    """

    def __init__(self, program: str = "") -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        flag = getattr(record, "flag", None)
        if flag is None:
            flag = ("error" if record.levelno >= logging.ERROR else
                    "notice" if record.levelno >= logging.WARNING else "debug")
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return debug_prefix(record.created, self.program, record.process or os.getpid(),
                            flag) + text.rstrip()


def wire_text(direction: str, conn: Any, message: Any) -> str:
    """``rx from <host> (<ip:port>): <line>`` / ``tx to ...``: one protocol line, as CCTools
    logs it under the ``wq`` flag (file contents that follow a line are not shown)."""
    worker = getattr(conn, "worker", None)
    host = getattr(worker, "hostname", None) or "unknown"
    if isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        try:
            data = message.encode()
        except Exception:
            data = str(message).encode()
    line = data.split(b"\n", 1)[0][:4096].decode("utf-8", "replace")
    return f"{direction} {host} ({conn.address}): {line}"


# -- process-wide debug configuration (CCTools' set_debug_flag / specify_debug_log) -----------------

_shared: dict[str, Any] = {"flags": frozenset(), "path": None, "log": None}


def set_debug_flags(*flags: str) -> None:
    """Turn on debug flags for every manager made afterwards without its own ``debug_log``
    (to stderr unless :func:`specify_debug_log` names a file).  ``clear`` turns them off."""
    current = set(_shared["flags"])
    new = parse_debug_flags(list(flags))
    if "clear" in " ".join(flags).replace(",", " ").split():
        current = set()
    _shared["flags"] = frozenset(current | new)
    _shared["log"] = None


def specify_debug_log(path: str) -> None:
    """CCTools ``specify_debug_log``: flag ``all``, written to ``path``."""
    _shared["flags"] = parse_debug_flags("all")
    _shared["path"] = path
    _shared["log"] = None


def shared_debug_log() -> DebugLog | None:
    """The process-wide debug log, if flags were set; shared by every manager using it."""
    if not _shared["flags"]:
        return None
    if _shared["log"] is None:
        log = DebugLog(_shared["path"] or ":stderr", flags=sorted(_shared["flags"]))
        log.close = lambda: None  # type: ignore[method-assign]  # shared: closed at exit
        _shared["log"] = log
    return _shared["log"]  # type: ignore[no-any-return]
