"""``WorkQueue``: the manager's public API (CCTools'), a thin facade over its parts.

Network I/O happens inside ``submit``/``wait``, like CCTools.  Where things are:

- this file: the API, argument checking, settings;
- ``core/manager_state.py``: every decision (``ManagerState.handle(event, now)`` answers with
  instructions), with ``core/bookkeeping.py`` (where tasks and workers are, dispatch choice)
  and ``core/policies.py`` (result precedence, output choice, liveness deadlines);
- ``loop.py`` (``ManagerLoop``): accept, poll, read, flush, timers;
- ``receiver.py`` (``Receiver``): each worker message -> a core event, outputs into place;
- ``dispatcher.py`` (``Dispatcher``): carrying out the core's instructions (sending tasks,
  kill/unlink, fetching outputs, dropping workers, the transactions log's TASK lines);
- ``conversation.py``: the replies each connection expects next.

Results are pulled as in protocol 11: the worker says ``available_results``, we answer
``send_results -1``, it streams ``result`` records; for every output we send ``get``, and once
all replies are in, ``kill <id>`` and ``unlink`` of non-cached files.  Requests to one worker are
pipelined; the replies come back in order (see conversation.py).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .. import constants
from ..constants import (
    TASK_STATE_STRINGS,
    WORK_QUEUE_CACHE,
    WORK_QUEUE_DEFAULT_KEEPALIVE_INTERVAL,
    WORK_QUEUE_DEFAULT_KEEPALIVE_TIMEOUT,
    WORK_QUEUE_DEFAULT_PORT,
    WORK_QUEUE_FILE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_WAITFORTASK,
)
from ..core import events as ev
from ..core import instructions as ins
from ..core import task_state as ts
from ..core.categories import MODES
from ..core.manager_state import ManagerState
from ..core.resource_fields import RESOURCE_NAMES as SUMMARY_NAMES
from ..core.resources import OLD_NAMES, Resources
from ..core.rmsummary import ResourceSummary
from ..core.stats import Stats, category_snapshot, hierarchy, snapshot
from ..events import ReadWatcher
from ..protocol import messages as m
from ..protocol.task_writer import TaskWriter
from ..tls import server_context
from . import at_exit, catalog, logs, monitoring, status
from .abstractions import AbstractionsMixin
from .connection import (
    WorkerConnection,
)
from .dispatcher import Dispatcher
from .loop import ManagerLoop
from .ports import bind_listener
from .receiver import Receiver
from .resume import ResumeShell
from .task import Task

logger = logging.getLogger(__name__)

#: tune() names -> attribute setters.  Values documented in the manual / spec 4.7.
TUNE_DEFAULTS: dict[str, float] = {
    "resource-submit-multiplier": 1.0,
    "min-transfer-timeout": 60,
    "foreman-transfer-timeout": 3600,
    "default-transfer-rate": 1 << 20,
    "transfer-outlier-factor": 10,
    "fast-abort-multiplier": -1,
    "keepalive-interval": WORK_QUEUE_DEFAULT_KEEPALIVE_INTERVAL,
    "keepalive-timeout": WORK_QUEUE_DEFAULT_KEEPALIVE_TIMEOUT,
    "short-timeout": 5,
    "long-timeout": 3600,
    "category-steady-n-tasks": 25,
    "hungry-minimum": 10,
    "hungry-minimum-factor": 2,
    "wait-for-workers": 0,
    "attempt-schedule-depth": 100,
    # ours: workers lost in a row with a task on them before it comes back FORSAKEN (0: never)
    "lost-workers-in-a-row": 3,
    "wait-retrieve-many": 0,
    "proportional-resources": 1,
    "proportional-whole-tasks": 1,
    "ramp-down-heuristic": 0,
    # ours: seconds the tasks of a worker whose connection dropped wait for it to come back
    # (wq-py-resume, docs/protocol-resume.md; 0: requeue them at once, as CCTools does;
    # negative: the keepalive timeout)
    "resume-grace-time": -1,
}
TUNE_ALIASES = {
    "asynchrony-multiplier": "resource-submit-multiplier",
    "force-proportional-resources": "proportional-resources",
    "force-proportional-resources-whole-tasks": "proportional-whole-tasks",
}


_M = TypeVar("_M", bound=Callable[..., Any])


def _locked(method: _M) -> _M:
    """Run a public method holding the queue's ``_state_lock`` (see WorkQueue.__init__)."""
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._state_lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


def _usec(t: float) -> int:
    return int(t * 1e6)


def _resources_from(values: dict[str, float] | None) -> Resources:
    """``{"cores": 2, "memory": 1024}`` -> Resources; unknown names raise ValueError."""
    if values is not None and not isinstance(values, dict):
        raise TypeError(f"resources must be a dict like {{'cores': 1, 'memory': 512}}, "
                        f"not {type(values).__name__}")
    r = Resources()
    for name, value in (values or {}).items():
        if name not in SUMMARY_NAMES and name not in OLD_NAMES:
            raise ValueError(f"unknown resource {name!r} (use a field of the resource "
                             f"summary: {', '.join(SUMMARY_NAMES)})")
        if value is not None and not isinstance(value, (int, float)):
            raise TypeError(f"resource {name!r} must be a number, not {type(value).__name__}")
        if value is not None and value < 0 and value != -1:
            raise ValueError(f"resource {name!r} cannot be negative ({value}); "
                             "use -1 or leave it out for 'unspecified'")
        r.set(name, -1 if value is None or value < 0 else float(value))
    return r


def _category_name(category: object) -> str:
    if not isinstance(category, str) or not category:
        raise ValueError(f"category must be a non-empty string, not {category!r}")
    return category


class WorkQueue(AbstractionsMixin, ManagerLoop, Dispatcher, Receiver, ResumeShell):
    """A queue of tasks served by workers that connect to ``port``.

    Args:
        port: port to listen on; 0 = first free port (see ``TCP_LOW_PORT``), or a
            ``(low, high)`` range.
        name: project name (advertised to a catalog server).
        shutdown: on exit, tell workers to terminate (``exit``) instead of releasing them.
        stats_log, transactions_log, debug_log: paths of the three logs.
        ssl: ``True`` for TLS with a fresh self-signed certificate, or a
            ``(key_file, cert_file)`` pair; workers then need ``--ssl``.
        status_display_interval: in a Jupyter notebook, seconds between redraws of a table
            of the queue's figures that ``wait()`` keeps up to date (see ``display``); None
            or under 1: none.  Outside a kernel it does nothing.
    """

    def __init__(self, port: int | Sequence[int] = WORK_QUEUE_DEFAULT_PORT,
                 name: str | None = None, shutdown: bool = False,
                 stats_log: str | None = None, transactions_log: str | None = None,
                 debug_log: str | None = None, ssl: Any = None,
                 status_display_interval: float | None = None) -> None:
        #: Held by the loop during each pass (not while it polls) and by every public method
        #: while it changes the state, so another thread (the status responder) that holds
        #: it sees a consistent state.  Reentrant, since some public methods call others
        #: (tune -> activate_fast_abort); uncontended it costs well under a microsecond.
        self._state_lock = threading.RLock()
        #: Held by submit() alone, and by whoever holds _state_lock and reads the task tables
        #: (wait()'s loop, the status thread), always taken after _state_lock, never nested.
        self._submit_lock = threading.Lock()
        self._submit_acquire = self._submit_lock.acquire
        self._submit_release = self._submit_lock.release
        self._tls = server_context(ssl)
        self._now = time.time
        now = self._now()
        self._state = ManagerState(now)
        self._shutdown = bool(shutdown)
        self._name = name
        self._password: bytes | None = None
        self._tune = dict(TUNE_DEFAULTS)
        self._priority = 0
        self._keepalive_interval = float(WORK_QUEUE_DEFAULT_KEEPALIVE_INTERVAL)
        self._keepalive_timeout = float(WORK_QUEUE_DEFAULT_KEEPALIVE_TIMEOUT)
        self._short_timeout = 5.0
        self._debug = logs.DebugLog(debug_log) if debug_log else logs.shared_debug_log()
        self._txn = logs.TransactionLog(transactions_log, self._state) if transactions_log \
            else None
        # The transactions log is what Transition instructions are for; without one the core
        # keeps them in its history only (a record and a call less per state change).
        self._state.set_report_transitions(self._txn is not None)
        self._stats_log = logs.StatsLog(stats_log) if stats_log else None
        self._listener = bind_listener(port)
        self._port = self._listener.getsockname()[1]
        self._watcher = ReadWatcher()
        self._watcher.register(self._listener, None)
        self._conns: dict[int, WorkerConnection] = {}
        #: Writes task blocks (and keeps the lines of recent allocations).
        self._task_writer = TaskWriter()
        #: Connections with something queued to send (see WorkerConnection.pending).
        self._unsent: set[WorkerConnection] = set()
        self._next_key = 1
        self._closed = False
        self._last_periodic = now
        self._last_fast_abort = now
        self._monitor: monitoring.MonitorConfig | None = None
        #: Seconds between warnings about tasks no connected worker can fit (CCTools: 180).
        self.unfit_warning_interval = 180.0
        self._last_unfit_warning = now
        self._app_time_mark = now
        self._catalog: tuple[str, int] | None = None
        self._preferred_connection = "by_ip"
        self._tasks_left = 0
        if name:
            os.environ["WORK_QUEUE_NAME"] = name
        if self._txn:
            self._txn.manager("START", now)
        if self._stats_log:
            self._stats_log.write(self._stats_now(), now, force=True)
        logger.debug("listening on port %d", self._port)
        # issue 5: catalog advertising, and status answers while the application is busy
        self._advertiser = catalog.Advertiser(self)
        self._factory_limits = catalog.FactoryLimits(self)
        self._status_responder = status.StatusResponder(self)
        self._status_responder.start()
        #: How each instruction of the core is carried out.
        self._doers: dict[type, Any] = {
            ins.Transition: self._log_transition, ins.SendKill: self._kill_on_worker,
            ins.FetchOutputs: self._fetch_outputs, ins.DropWorker: self._drop_worker,
            ins.Note: self._note, ins.BlockHost: self._note,
            ins.CategoryChanged: lambda i: self._log_category(i.category),
            **self._resume_doers()}
        at_exit.track(self)
        #: issue 18: the notebook's status display; None (nothing for wait() to do) unless
        #: asked for inside a Jupyter kernel.
        self._display: Any = None
        if status_display_interval is not None:
            from .display import start_display
            try:
                self._display = start_display(self, status_display_interval)
            except TypeError:
                self.close()  # a bad interval: give the port back
                raise

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @_locked
    def close(self) -> None:
        """Release (or, with ``shutdown=True``, stop) every worker and stop listening."""
        if self._closed:
            return
        self._closed = True
        at_exit.forget(self)
        if getattr(self, "_display", None) is not None:
            self._display.refresh(self, force=True)  # the last figures, workers still there
        # issue 5: a last catalog update; the status thread stops before the listener closes
        if hasattr(self, "_status_responder"):
            self._status_responder.stop()
            self._advertiser.final(self._now())
        goodbye = m.Exit().encode() if self._shutdown else m.Release().encode()
        for conn in list(self._conns.values()):
            self._last_word(conn, goodbye if conn.worker is not None else b"", "EXPLICIT",
                            released=conn.worker is not None)
        self._watcher.unregister(self._listener)
        self._listener.close()
        self._watcher.close()
        now = self._now()
        if self._stats_log:
            self._stats_log.write(self._stats_now(), now, force=True)
            self._stats_log.close()
        if self._txn:
            self._txn.manager("END", now)
            self._txn.close()
        if self._debug:
            self._debug.close()
        if self._monitor is not None:
            self._monitor.close()

    # -- properties -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._port)

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def using_ssl(self) -> bool:
        return self._tls is not None

    @property
    def stats(self) -> Stats:
        return self._stats_now()

    @property
    def stats_hierarchy(self) -> Stats:
        """``stats`` plus what the foremen among the workers report of their own workers."""
        self._state.settle()
        return self._queue_fields(hierarchy(self._state, self._now()))

    def _stats_now(self) -> Stats:
        self._state.settle()
        return self._queue_fields(snapshot(self._state, self._now()))

    def _queue_fields(self, stats: Stats) -> Stats:
        """The fields CCTools takes from the queue itself (deprecated: ``port``, ``priority``)."""
        stats.port = self.port
        stats.priority = self._priority
        return stats

    # -- configuration ---------------------------------------------------------------------------

    def specify_name(self, name: str) -> None:
        self._name = name
        os.environ["WORK_QUEUE_NAME"] = name

    def specify_priority(self, priority: int) -> None:
        self._priority = int(priority)

    @_locked
    def specify_algorithm(self, algorithm: int) -> None:
        self._state.set_algorithm(int(algorithm))

    def specify_task_order(self, order: int) -> None:
        """Deprecated in CCTools; has no effect."""

    def specify_manager_mode(self, mode: int) -> None:
        """Deprecated in CCTools; has no effect."""

    specify_master_mode = specify_manager_mode

    @_locked
    def specify_min_taskid(self, minid: int) -> int:
        return self._state.set_min_task_id(int(minid))

    def specify_keepalive_interval(self, interval: float) -> None:
        """Seconds between keepalive checks of a worker (0 disables them)."""
        self._keepalive_interval = float(interval)

    def specify_keepalive_timeout(self, timeout: float) -> None:
        """Seconds a worker may stay silent after a check before it is dropped."""
        self._keepalive_timeout = float(timeout)
        self._state.set_keepalive_timeout(self._keepalive_timeout)

    def specify_password(self, password: str) -> None:
        """Require workers to prove they know ``password`` (CCTools challenge-response)."""
        self._password = password.encode() if isinstance(password, str) else bytes(password)

    def specify_password_file(self, file: str) -> None:
        """Like ``specify_password`` with the whole file contents, trailing newline included."""
        with open(file, "rb") as f:
            self._password = f.read()

    @_locked
    def specify_log(self, logfile: str) -> None:
        self._stats_log = logs.StatsLog(logfile)
        self._stats_log.write(self._stats_now(), self._now(), force=True)

    @_locked
    def specify_transactions_log(self, logfile: str) -> None:
        self._txn = logs.TransactionLog(logfile, self._state)
        self._state.set_report_transitions(True)
        self._txn.manager("START", self._now())

    # ``rmd`` (resource dictionary) is CCTools' name for these methods' dictionaries.
    def specify_max_resources(self, rmd: dict[str, float]) -> None:
        """Resources given to tasks of the default category that declare none themselves."""
        self.specify_category_max_resources("default", rmd)

    def specify_min_resources(self, rmd: dict[str, float]) -> None:
        """Smallest allocation for tasks of the default category."""
        self.specify_category_min_resources("default", rmd)

    @_locked
    def specify_category_max_resources(self, category: str, rmd: dict[str, float]) -> None:
        """Resources for tasks of ``category``; a task's own ``specify_*`` values win."""
        self._state.categories.get_or_create(category).set_max(_resources_from(rmd))
        self._state.changed()

    @_locked
    def specify_category_min_resources(self, category: str, rmd: dict[str, float]) -> None:
        """Smallest allocation for tasks of ``category``."""
        self._state.categories.get_or_create(category).set_min(_resources_from(rmd))
        self._state.changed()

    @_locked
    def specify_category_mode(self, category: str | None, mode: int) -> int:
        """Allocation mode of ``category`` (None: the default for categories made later).

        FIXED (default): tasks get what they or their category ask for.  MAX, MIN_WASTE,
        MAX_THROUGHPUT: sizes are learned from measured resources (needs monitoring).
        GREEDY_BUCKETING, EXHAUSTIVE_BUCKETING, DET_GREEDY_BUCKETING, DET_EXHAUSTIVE_BUCKETING,
        QUANTIZED_BUCKETING: each task gets a bucket learned from the measured resources of
        the tasks that succeeded, and a larger one if it exhausts it.
        """
        if mode not in MODES:
            raise ValueError(f"unknown category mode {mode!r}; use WORK_QUEUE_ALLOCATION_MODE_"
                             "FIXED, _MAX, _MIN_WASTE, _MAX_THROUGHPUT, _GREEDY_BUCKETING, "
                             "_EXHAUSTIVE_BUCKETING, _DET_GREEDY_BUCKETING, "
                             "_DET_EXHAUSTIVE_BUCKETING or _QUANTIZED_BUCKETING")
        cats = self._state.categories
        if category is None:
            cats.default_mode = mode
            return 1
        c = cats.get_or_create(_category_name(category))
        c.set_mode(mode)
        self._log_category(c)
        self._state.changed()
        return 1

    @_locked
    def specify_category_autolabel_resource(self, category: str, resource: str,
                                            autolabel: bool) -> int:
        """Turn automatic labelling of one resource on or off.  Any resource of a summary
        is taken, as CCTools does; only cores, memory, disk and gpus are ever labelled."""
        self._state.set_autolabel(_category_name(category), resource, bool(autolabel))
        return 1

    enable_category_resource = specify_category_autolabel_resource

    @_locked
    def specify_category_first_allocation_guess(self, category: str,
                                                rmd: dict[str, float]) -> None:
        """Start ``category`` in steady state with this first allocation."""
        c = self._state.categories.get_or_create(_category_name(category))
        c.set_first_guess(_resources_from(rmd))
        self._state.changed()

    @_locked
    def initialize_categories(self, filename: str, rm: Any = None) -> None:
        """Start categories from earlier runs: their first allocations are learnt from a file
        of resource summaries (JSON objects one after another, each with its ``category``).
        ``rm`` is in CCTools' signature, which does not use it either."""
        with open(filename, encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            summaries = ResourceSummary.many_from_text(text)
        except ValueError as e:
            raise ValueError(f"{filename}: {e}") from None
        self._state.categories.initialize(summaries)
        self._state.changed()

    def estimate_capacity(self) -> None:
        """Accepted for CCTools programs: the capacity is always estimated, as in CCTools
        7.17.1 (``q.stats.capacity_tasks`` and the other ``capacity_*`` fields)."""

    def enable_monitoring(self, dirname: str | None = None, watchdog: bool = True) -> bool:
        """Measure every task's resources into ``t.resources_measured``.

        With ``watchdog`` a task that goes over its allocation is killed and returned with
        RESOURCE_EXHAUSTION (or retried bigger, see categories).  With ``dirname`` each
        task's CCTools summary is kept there, and all of them appended to
        ``wq-<pid>.summaries``.
        """
        return self._enable_monitoring(dirname, watchdog, full=False)

    def enable_monitoring_full(self, dirname: str | None = None, watchdog: bool = True) -> bool:
        """Like ``enable_monitoring``, with time series kept in ``dirname``."""
        return self._enable_monitoring(dirname, watchdog, full=True)

    @_locked
    def _enable_monitoring(self, dirname: str | None, watchdog: bool, full: bool) -> bool:
        if self._monitor is not None:
            self._monitor.close()
        config = monitoring.MonitorConfig(directory=dirname, watchdog=bool(watchdog),
                                          full=full,
                                          executable=monitoring.locate_resource_monitor())
        if dirname:
            os.makedirs(dirname, exist_ok=True)
            config.summaries = open(  # noqa: SIM115 - kept open while monitoring
                os.path.join(dirname, f"wq-{os.getpid()}.summaries"), "a", encoding="utf-8")
        self._monitor = config
        self._update_ramp_down()
        return True

    def _update_ramp_down(self) -> None:
        self._state.set_ramp_down(bool(self._tune["ramp-down-heuristic"]) and
                                  self._monitor is not None and self._monitor.watchdog)

    def activate_fast_abort(self, multiplier: float) -> int:
        """Take back tasks running ``multiplier`` times longer than average (< 1: off)."""
        return self.activate_fast_abort_category("default", multiplier)

    @_locked
    def activate_fast_abort_category(self, name: str, multiplier: float) -> int:
        """Fast abort for category ``name``: >= 1 on, 0 off, < 0 use the default category's."""
        return self._state.set_fast_abort(_category_name(name), float(multiplier))

    @_locked
    def specify_category_max_concurrent(self, category: str, max_concurrent: int) -> None:
        """At most ``max_concurrent`` tasks of ``category`` run at once (< 0: no limit)."""
        self._state.set_max_concurrent(_category_name(category), int(max_concurrent))

    def stats_category(self, category: str) -> Stats:
        """Statistics of the tasks of one category (same fields as ``stats``)."""
        c = self._state.categories.get(_category_name(category))
        if c is None:
            raise KeyError(f"no category named {category!r}")
        self._state.settle()
        return self._queue_fields(category_snapshot(self._state, c))

    def stats_by_category(self, category: str | None = None) -> dict[str, Stats] | Stats:
        """``stats_category`` for every category, by name; with ``category``, that one's
        (the 2019 tutorial slides: ``s = q.stats_by_category('my-category')``)."""
        if category is not None:
            return self.stats_category(category)
        self._state.settle()
        return {name: self._queue_fields(category_snapshot(self._state, c))
                for name, c in self._state.categories.items()}

    @_locked
    def tune(self, name: str, value: float) -> int:
        """Set one of the ``tune`` parameters (spec 4.7).  Returns 0, or -1 if unknown."""
        key = TUNE_ALIASES.get(name, name)
        if key not in self._tune:
            logger.warning("tune: unknown parameter %r", name)
            return -1
        value = float(value)
        self._tune[key] = value
        if self._state.configure(key, value):
            return 0
        if key == "ramp-down-heuristic":
            self._update_ramp_down()
        elif key == "fast-abort-multiplier":
            self.activate_fast_abort(value)
        elif key == "keepalive-interval":
            self._keepalive_interval = value
        elif key == "keepalive-timeout":
            self._keepalive_timeout = value
            self._state.set_keepalive_timeout(value)
        elif key == "short-timeout":
            self._short_timeout = value
        self._state.changed()
        return 0

    # -- tasks ------------------------------------------------------------------------------------

    def submit(self, task: Task) -> int:
        """Queue ``task``; returns its id.  A finished task may be submitted again."""
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        if task.state != ts.UNKNOWN:
            if task.state in ts.LIVE_STATES:
                raise ValueError(f"task {task.id} is already submitted (state "
                                 f"{TASK_STATE_STRINGS[task.state]}); submit a clone() instead")
            self._state.settle()  # its statistics are counted before they are reset
            task._reset_results()
        if task._before_submit is not None:  # a RemoteTask's check of its coprocess
            task._before_submit()
        # The lock by hand and the core's submit() straight (what handle(TaskSubmitted) and
        # submit_task call): submit is the one call made a million times in a row, and each
        # layer costs ~0.1 us.
        # Not the state lock (an RLock, ~0.14 us): submit's own plain lock, which wait() and
        # the status thread hold too, after the state lock (~0.06 us bound).
        self._submit_acquire()
        try:
            state = self._state
            state.submit(task, self._now())
            if state.out:  # its Transition, when a transactions log wants it
                self._carry_out(state.collect())
        finally:
            self._submit_release()
        return int(task.id)

    def wait(self, timeout: float = WORK_QUEUE_WAITFORTASK) -> Task | None:
        """Wait up to ``timeout`` seconds (-1 = forever) for a task to finish, and return it."""
        return self._wait(timeout, None)

    def wait_for_tag(self, tag: str, timeout: float = WORK_QUEUE_WAITFORTASK) -> Task | None:
        """Like ``wait``, but only return a task whose tag is ``tag``."""
        return self._wait(timeout, tag)

    def _wait(self, timeout: float, tag: str | None) -> Task | None:
        if self._closed:
            raise RuntimeError("this WorkQueue is closed")
        now = self._now()
        self._state.time_spent("application", _usec(max(0.0, now - self._app_time_mark)))
        if timeout is None or timeout < 0:
            deadline = float("inf")
        else:
            deadline = now + float(timeout)
        self._status_responder.lock.acquire()  # issue 5: the status thread stands aside
        self._state_lock.acquire()  # released only while the loop polls (ManagerLoop._pass)
        self._submit_acquire()  # the same
        self._advertiser.maybe_update(now)
        try:
            while True:
                if self._display is not None:
                    self._display.refresh(self)  # at most every status_display_interval s
                task = self._state.pop_returned(tag, self._now())
                if task is not None:
                    if self._state.out:
                        self._carry_out(self._state.collect())  # its DONE line
                    if self._display is not None and self._state.empty():
                        self._display.refresh(self, force=True)  # the last task is back
                    return task  # type: ignore[no-any-return]
                if not self._status_responder.handoff.empty():
                    self._adopt_handoffs()
                now = self._now()
                remaining = deadline - now
                if remaining == float("inf") and self._state.empty():
                    remaining = 0.0  # one pass without blocking, then None (below)
                self._pass(now, max(0.0, min(remaining, 1.0)))
                if self._state.returned:
                    continue
                if self._now() >= deadline:
                    return None
                if deadline == float("inf") and self._state.empty():
                    return None  # nothing could ever come back: do not hang forever
        finally:
            self._submit_release()
            self._state_lock.release()
            self._status_responder.lock.release()
            self._app_time_mark = self._now()

    def empty(self) -> bool:
        """True when no submitted task is left to return."""
        return self._state.empty()

    def hungry(self) -> bool:
        """True when more tasks should be submitted to keep the workers busy."""
        return self._state.hungry()

    def task_state(self, taskid: int) -> int:
        return self._state.state_of(int(taskid))

    def task_story(self, taskid: int) -> list[str]:
        """Why a task is where it is: its recent state changes, oldest first, e.g.
        ``"12.5 RUNNING -> WAITING (requeue)"`` after its worker was lost (the last 16 of a
        task; the queue remembers the last 65,536 transitions of all tasks)."""
        with self._state_lock:
            story = self._state.story(int(taskid))
        return [f"{when:.3f} {TASK_STATE_STRINGS[old]} -> {TASK_STATE_STRINGS[new]} ({cause})"
                for old, new, cause, when in story]

    @_locked
    def cancel_by_taskid(self, id: int) -> Task | None:
        """Remove a task from the queue (killing it if running); returns it, or None."""
        task = self._state.tasks.get(int(id))
        instructions = self._state.handle(ev.TaskCancelled(int(id)), self._now())
        # Without a transactions log a waiting task's cancel answers no instruction at all.
        if task is None or task.state != ts.CANCELED:
            return None
        self._carry_out(instructions)
        return task

    @_locked
    def cancel_by_tasktag(self, tag: str) -> Task | None:
        """Cancel the first task with ``tag``; returns it, or None."""
        for task in list(self._state.tasks.values()):
            if task.tag == tag:
                return self.cancel_by_taskid(task.id)
        return None

    @_locked
    def cancel_by_category(self, category: str) -> list[Task]:
        """Cancel every task in ``category``; returns them."""
        return [t for t in (self.cancel_by_taskid(t.id) for t in list(self._state.tasks.values())
                            if t.category == category) if t is not None]

    # -- workers ----------------------------------------------------------------------------------

    @_locked
    def shutdown_workers(self, n: int) -> int:
        """Ask up to ``n`` idle workers (0 = all idle workers) to exit.  Returns how many."""
        count = 0
        for conn in list(self._conns.values()):
            w = conn.worker
            if w is None or w.tasks:
                continue
            if n and count >= n:
                break
            self._last_word(conn, m.Exit().encode(), "EXPLICIT", released=True)
            count += 1
        return count

    @_locked
    def block_host(self, host: str) -> None:
        """Send no more tasks to workers on ``host``."""
        self._state.block_host(host)

    @_locked
    def block_host_with_timeout(self, host: str, timeout: float) -> None:
        self._state.block_host(host, self._now() + float(timeout))

    @_locked
    def unblock_host(self, host: str | None = None) -> None:
        """Allow ``host`` again (all hosts when None)."""
        self._state.unblock_host(host)

    blacklist = block_host
    blacklist_with_timeout = block_host_with_timeout

    def blacklist_clear(self, host: str | None = None) -> None:
        self.unblock_host(host)

    @_locked
    def specify_draining_by_hostname(self, hostname: str, drain_mode: bool = True) -> int:
        return self._state.drain_host(hostname, bool(drain_mode))

    @_locked
    def invalidate_cache_file(self, local_name: str) -> None:
        """Forget every worker's cached copy of ``local_name`` (e.g. after changing it).

        Workers delete the file; the next task that needs it gets the new contents.
        """
        from .files import make_file_spec

        probe = make_file_spec(WORK_QUEUE_FILE, WORK_QUEUE_INPUT, local_name,
                               os.path.basename(local_name) or "x", WORK_QUEUE_CACHE)
        for key in self._state.forget_cached(probe.cachename):
            conn = self._conns.get(key)
            if conn is not None:
                conn.write(m.Unlink(probe.cachename).encode())
        self._flush_all()

    def specify_catalog_server(self, hostname: str, port: int = 9097) -> None:
        """Where to advertise the project name (default: ``CATALOG_HOST``/``CATALOG_PORT``,
        else localhost:9097).  A named manager advertises at its first ``wait``, every 60 s,
        and when it closes."""
        self._catalog = (hostname, int(port))

    def specify_manager_preferred_connection(self, mode: str) -> None:
        """How workers found through the catalog should connect: by_ip, by_hostname, ..."""
        if mode not in ("by_ip", "by_hostname", "by_apparent_ip"):
            raise ValueError(f"preferred connection must be by_ip, by_hostname or "
                             f"by_apparent_ip, not {mode!r}")
        self._preferred_connection = mode

    specify_master_preferred_connection = specify_manager_preferred_connection

    def specify_num_tasks_left(self, ntasks: int) -> None:
        """Tell workers' factories how many more tasks will be submitted."""
        self._tasks_left = max(0, int(ntasks))

    def status(self, request: str) -> list[dict[str, Any]]:
        """The JSON records a status client gets for ``request`` (``"tasks"``, ``"workers"``...)."""
        return status.build(self, request, self._now())

    def application_info(self) -> dict[str, Any] | None:
        """What the notebook status display shows as "application info": override it to
        return ``{"application_info": {"values": {...}, "units": {...}}}`` (a value whose
        unit is ``"MB"`` is shown as a size); None shows no such table."""
        return None

    def workers_summary(self) -> list[dict[str, Any]]:
        groups: dict[tuple[int, int, int, int], int] = {}
        for w in self._state.workers.values():
            r = w.resources
            k = (r.cores, r.memory, r.disk, r.gpus)
            groups[k] = groups.get(k, 0) + 1
        return [{"workers": n, "cores": k[0], "memory": k[1], "disk": k[2], "gpus": k[3]}
                for k, n in groups.items()]


# The manual writes ``q.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT``: the constants can be read
# from a queue too (CCTools' queue has none of them).
for _name, _value in vars(constants).items():
    if _name.startswith("WORK_QUEUE_"):
        setattr(WorkQueue, _name, _value)
