"""``WorkQueue``: the manager.  Network I/O happens inside ``submit``/``wait``, like CCTools.

Theory of operation
-------------------
``wait(timeout)`` runs passes of one loop until a task is ready to be returned or the timeout
passes.  A pass (``_pass``):

1. asks the core (``ManagerState.next_dispatch``) for task/worker/box triples and sends each
   task: its inputs not yet cached at that worker (``put``/``dir``/``puturl``/``putcmd``),
   then the ``task ... end`` block;
2. flushes every connection's buffered control lines;
3. waits (``work_queue.events``) for readable sockets (new workers, messages, status queries)
   and feeds the bytes to each connection's sans-IO reader, handling every complete message;
4. does the periodic work: keepalives, handshake timeouts, the stats log.

Results are pulled as in protocol 11: the worker says ``available_results``, we answer
``send_results -1``, it streams ``result`` records; for every output we send ``get``, and once
all replies are in, ``kill <id>`` and ``unlink`` of non-cached files.  Requests to one worker are
pipelined; the replies come back in order, so each connection keeps a FIFO of what it expects.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from ..constants import (
    TASK_STATE_STRINGS,
    WORK_QUEUE_CACHE,
    WORK_QUEUE_DEFAULT_KEEPALIVE_INTERVAL,
    WORK_QUEUE_DEFAULT_KEEPALIVE_TIMEOUT,
    WORK_QUEUE_DEFAULT_PORT,
    WORK_QUEUE_FILE,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_PROTOCOL_VERSION,
    WORK_QUEUE_RESULT_OUTPUT_MISSING,
    WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR,
    WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
    WORK_QUEUE_WAITFORTASK,
)
from ..core import events as ev
from ..core import instructions as ins
from ..core import task_state as ts
from ..core.categories import MODES
from ..core.manager_state import ManagerState
from ..core.policies import CHECK, DROP_HANDSHAKE, KEEP, Liveness, liveness_verdict
from ..core.policies import transfer_wait as _policy_transfer_wait
from ..core.resources import Resources
from ..core.scheduling import WorkerRecord
from ..core.stats import Stats, category_snapshot, snapshot
from ..errors import AuthenticationError, RemoteProtocolError
from ..events import ReadWatcher
from ..protocol import auth, extensions
from ..protocol import messages as m
from ..protocol.reader import NEED_DATA, Chunk
from ..protocol.urlcodec import url_decode
from ..tls import server_context
from . import at_exit, catalog, logs, monitoring, status
from .abstractions import AbstractionsMixin
from .connection import (
    FileOutput,
    MemoryOutput,
    StagedDirectory,
    WorkerConnection,
    ensure_parent,
    local_output_path,
    set_keepalive,
)
from .ports import bind_listener
from .task import Task
from .transfer import InputMissing, send_input

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
}
TUNE_ALIASES = {
    "asynchrony-multiplier": "resource-submit-multiplier",
    "force-proportional-resources": "proportional-resources",
    "force-proportional-resources-whole-tasks": "proportional-whole-tasks",
}


#: Seconds a loop pass may spend reading ready connections before it answers them and polls
#: again (a thousand workers answering at once would otherwise make one long pass).
PASS_BUDGET = 0.04

#: What the timer says when it drops a connection (policies.liveness_verdict).
_DROP_MESSAGES = {
    "slow-reader": "did not take {blocked} bytes in time; dropping it",
    "slow-payload": "sends a payload of {payload} bytes too slowly; dropping it",
    "stalled": "stalled for {stall:.0f} s in the middle of a message; dropping it",
    "silent": "did not answer a keepalive check; dropping it",
}


def _usec(t: float) -> int:
    return int(t * 1e6)


def _resources_from(values: dict[str, float] | None) -> Resources:
    """``{"cores": 2, "memory": 1024}`` -> Resources; unknown names raise ValueError."""
    if values is not None and not isinstance(values, dict):
        raise TypeError(f"resources must be a dict like {{'cores': 1, 'memory': 512}}, "
                        f"not {type(values).__name__}")
    r = Resources()
    for name, value in (values or {}).items():
        if name not in ("cores", "memory", "disk", "gpus", "wall_time"):
            raise ValueError(f"unknown resource {name!r} (use cores, memory, disk, gpus)")
        if value is not None and not isinstance(value, (int, float)):
            raise TypeError(f"resource {name!r} must be a number, not {type(value).__name__}")
        if value is not None and value < 0 and value != -1:
            raise ValueError(f"resource {name!r} cannot be negative ({value}); "
                             "use -1 or leave it out for 'unspecified'")
        setattr(r, name, -1 if value is None or value < 0 else float(value))
    return r


def _category_name(category: object) -> str:
    if not isinstance(category, str) or not category:
        raise ValueError(f"category must be a non-empty string, not {category!r}")
    return category


#: What a connection may send before its worker handshake: the handshake, status requests.
_BEFORE_HANDSHAKE = (m.Hello, m.StatusRequest, m.HttpGet, m.NameQuery, m.Alive)
#: The largest payload other than a task's output that a worker may send in one message
#: (an error text, a resource summary, a piece of a watched file).
MAX_SIDE_PAYLOAD = 64 << 20


def admission(conn: WorkerConnection) -> Any:
    """The rule for the payloads ``conn`` announces, asked before any byte of one is kept.

    Before the handshake nothing with a payload is accepted (the connection is dropped); the
    output of a task this worker does not hold (cancelled meanwhile, or never given) is read
    to nowhere; any other payload over :data:`MAX_SIDE_PAYLOAD` drops the connection.  So the
    memory one connection holds is its line buffer, the outputs of the tasks it runs, and at
    most one side payload."""

    def admit(msg: m.Message) -> bool:
        w = conn.worker
        if w is None:
            raise RemoteProtocolError(f"{type(msg).__name__} with a payload before the "
                                      f"handshake")
        task_id = getattr(msg, "task_id", None)
        if task_id is not None and task_id not in w.tasks:
            return False
        if not isinstance(msg, m.Result) and msg.payload_length > MAX_SIDE_PAYLOAD:
            raise RemoteProtocolError(f"{type(msg).__name__} of {msg.payload_length} bytes "
                                      f"(the limit is {MAX_SIDE_PAYLOAD})")
        return True

    return admit


class WorkQueue(AbstractionsMixin):
    """A queue of tasks served by workers that connect to ``port``.

    Args:
        port: port to listen on; 0 = first free port (see ``TCP_LOW_PORT``), or a
            ``(low, high)`` range.
        name: project name (advertised to a catalog server).
        shutdown: on exit, tell workers to terminate (``exit``) instead of releasing them.
        stats_log, transactions_log, debug_log: paths of the three logs.
        ssl: ``True`` for TLS with a fresh self-signed certificate, or a
            ``(key_file, cert_file)`` pair; workers then need ``--ssl``.
    """

    def __init__(self, port: int | Sequence[int] = WORK_QUEUE_DEFAULT_PORT,
                 name: str | None = None, shutdown: bool = False,
                 stats_log: str | None = None, transactions_log: str | None = None,
                 debug_log: str | None = None, ssl: Any = None,
                 status_display_interval: float | None = None) -> None:
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
        self._stats_log = logs.StatsLog(stats_log) if stats_log else None
        self._listener = bind_listener(port)
        self._port = self._listener.getsockname()[1]
        self._watcher = ReadWatcher()
        self._watcher.register(self._listener, None)
        self._conns: dict[int, WorkerConnection] = {}
        #: The category and resource lines of a task block, by category and allocation.
        self._box_lines: dict[tuple[Any, ...], bytes] = {}
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
            ins.CategoryChanged: self._log_category}
        at_exit.track(self)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        """Release (or, with ``shutdown=True``, stop) every worker and stop listening."""
        if self._closed:
            return
        self._closed = True
        at_exit.forget(self)
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
        return self._stats_now()

    def _stats_now(self) -> Stats:
        self._state.settle()
        return snapshot(self._state, self._now())

    # -- configuration ---------------------------------------------------------------------------

    def specify_name(self, name: str) -> None:
        self._name = name
        os.environ["WORK_QUEUE_NAME"] = name

    def specify_priority(self, priority: int) -> None:
        self._priority = int(priority)

    def specify_algorithm(self, algorithm: int) -> None:
        self._state.set_algorithm(int(algorithm))

    def specify_task_order(self, order: int) -> None:
        """Deprecated in CCTools; has no effect."""

    def specify_manager_mode(self, mode: int) -> None:
        """Deprecated in CCTools; has no effect."""

    specify_master_mode = specify_manager_mode

    def specify_min_taskid(self, minid: int) -> int:
        return self._state.set_min_task_id(int(minid))

    def specify_keepalive_interval(self, interval: float) -> None:
        """Seconds between keepalive checks of a worker (0 disables them)."""
        self._keepalive_interval = float(interval)

    def specify_keepalive_timeout(self, timeout: float) -> None:
        """Seconds a worker may stay silent after a check before it is dropped."""
        self._keepalive_timeout = float(timeout)

    def specify_password(self, password: str) -> None:
        """Require workers to prove they know ``password`` (CCTools challenge-response)."""
        self._password = password.encode() if isinstance(password, str) else bytes(password)

    def specify_password_file(self, filename: str) -> None:
        """Like ``specify_password`` with the whole file contents, trailing newline included."""
        with open(filename, "rb") as f:
            self._password = f.read()

    def specify_log(self, logfile: str) -> None:
        self._stats_log = logs.StatsLog(logfile)
        self._stats_log.write(self._stats_now(), self._now(), force=True)

    def specify_transactions_log(self, logfile: str) -> None:
        self._txn = logs.TransactionLog(logfile, self._state)
        self._txn.manager("START", self._now())

    def specify_max_resources(self, resources: dict[str, float]) -> None:
        """Resources given to tasks of the default category that declare none themselves."""
        self.specify_category_max_resources("default", resources)

    def specify_min_resources(self, resources: dict[str, float]) -> None:
        """Smallest allocation for tasks of the default category."""
        self.specify_category_min_resources("default", resources)

    def specify_category_max_resources(self, category: str, resources: dict[str, float]) -> None:
        """Resources for tasks of ``category``; a task's own ``specify_*`` values win."""
        self._state.categories.get_or_create(category).set_max(_resources_from(resources))
        self._state.changed()

    def specify_category_min_resources(self, category: str, resources: dict[str, float]) -> None:
        """Smallest allocation for tasks of ``category``."""
        self._state.categories.get_or_create(category).set_min(_resources_from(resources))
        self._state.changed()

    def specify_category_mode(self, category: str | None, mode: int) -> int:
        """Allocation mode of ``category`` (None: the default for categories made later).

        FIXED (default): tasks get what they or their category ask for.  MAX, MIN_WASTE,
        MAX_THROUGHPUT: sizes are learned from measured resources (needs monitoring).
        """
        if mode not in MODES:
            raise ValueError(f"unknown category mode {mode!r}; use WORK_QUEUE_ALLOCATION_MODE_"
                             "FIXED, _MAX, _MIN_WASTE or _MAX_THROUGHPUT")
        cats = self._state.categories
        if category is None:
            cats.default_mode = mode
            return 1
        c = cats.get_or_create(_category_name(category))
        c.set_mode(mode)
        self._log_category(c)
        self._state.changed()
        return 1

    def specify_category_autolabel_resource(self, category: str, resource: str,
                                            autolabel: bool) -> int:
        """Turn automatic labelling of one resource (cores, memory, disk, gpus) on or off."""
        if resource not in ("cores", "memory", "disk", "gpus"):
            raise ValueError(f"unknown resource {resource!r} (use cores, memory, disk, gpus)")
        self._state.set_autolabel(_category_name(category), resource, bool(autolabel))
        return 1

    enable_category_resource = specify_category_autolabel_resource

    def specify_category_first_allocation_guess(self, category: str,
                                                resources: dict[str, float]) -> None:
        """Start ``category`` in steady state with this first allocation."""
        c = self._state.categories.get_or_create(_category_name(category))
        c.set_first_guess(_resources_from(resources))
        self._state.changed()

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

    def activate_fast_abort_category(self, category: str, multiplier: float) -> int:
        """Fast abort for one category: >= 1 on, 0 off, < 0 use the default category's."""
        return self._state.set_fast_abort(_category_name(category), float(multiplier))

    def specify_category_max_concurrent(self, category: str, max_concurrent: int) -> None:
        """At most ``max_concurrent`` tasks of ``category`` run at once (< 0: no limit)."""
        self._state.set_max_concurrent(_category_name(category), int(max_concurrent))

    def stats_category(self, category: str) -> Stats:
        """Statistics of the tasks of one category (same fields as ``stats``)."""
        c = self._state.categories.get(_category_name(category))
        if c is None:
            raise KeyError(f"no category named {category!r}")
        self._state.settle()
        return category_snapshot(self._state, c)

    def stats_by_category(self) -> dict[str, Stats]:
        """``stats_category`` for every category."""
        self._state.settle()
        return {name: category_snapshot(self._state, c)
                for name, c in self._state.categories.items()}

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
        elif key == "short-timeout":
            self._short_timeout = value
        self._state.changed()
        return 0

    # -- tasks ------------------------------------------------------------------------------------

    def submit(self, task: Task) -> int:
        """Queue ``task``; returns its id.  A finished task may be submitted again."""
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        if task.state in ts.LIVE_STATES:
            raise ValueError(f"task {task.id} is already submitted (state "
                             f"{TASK_STATE_STRINGS[task.state]}); submit a clone() instead")
        if task.state != ts.UNKNOWN:
            self._state.settle()  # its statistics are counted before they are reset
            task._reset_results()
        before = getattr(task, "_before_submit", None)
        if before is not None:
            before()
        self._carry_out(self._state.handle(ev.TaskSubmitted(task), self._now()))
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
        self._state.handle(ev.TimeSpent("application", _usec(max(0.0, now - self._app_time_mark))),
                           now)
        if timeout is None or timeout < 0:
            deadline = float("inf")
        else:
            deadline = now + float(timeout)
        self._status_responder.lock.acquire()  # issue 5: the status thread stands aside
        self._advertiser.maybe_update(now)
        try:
            while True:
                task = self._state.pop_returned(tag, self._now())
                if task is not None:
                    self._carry_out(self._state.collect())  # its DONE line
                    return task  # type: ignore[no-any-return]
                if not self._status_responder.handoff.empty():
                    self._adopt_handoffs()
                now = self._now()
                remaining = deadline - now
                self._pass(now, max(0.0, min(remaining, 1.0)))
                if self._state.returned:
                    continue
                if self._now() >= deadline:
                    return None
                if deadline == float("inf") and self._state.empty():
                    return None  # nothing could ever come back: do not hang forever
        finally:
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
        live task; those of the last 1000 tasks that left the queue)."""
        with self._state_lock:
            story = self._state.story(int(taskid))
        return [f"{when:.3f} {TASK_STATE_STRINGS[old]} -> {TASK_STATE_STRINGS[new]} ({cause})"
                for old, new, cause, when in story]

    def cancel_by_taskid(self, id: int) -> Task | None:
        """Remove a task from the queue (killing it if running); returns it, or None."""
        task = self._state.tasks.get(int(id))
        instructions = self._state.handle(ev.TaskCancelled(int(id)), self._now())
        if not instructions:
            return None
        self._carry_out(instructions)
        return task

    def cancel_by_tasktag(self, tag: str) -> Task | None:
        """Cancel the first task with ``tag``; returns it, or None."""
        for task in list(self._state.tasks.values()):
            if task.tag == tag:
                return self.cancel_by_taskid(task.id)
        return None

    def cancel_by_category(self, category: str) -> list[Task]:
        """Cancel every task in ``category``; returns them."""
        return [t for t in (self.cancel_by_taskid(t.id) for t in list(self._state.tasks.values())
                            if t.category == category) if t is not None]

    # -- workers ----------------------------------------------------------------------------------

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

    def block_host(self, host: str) -> None:
        """Send no more tasks to workers on ``host``."""
        self._state.block_host(host)

    def block_host_with_timeout(self, host: str, timeout: float) -> None:
        self._state.block_host(host, self._now() + float(timeout))

    def unblock_host(self, host: str | None = None) -> None:
        """Allow ``host`` again (all hosts when None)."""
        self._state.unblock_host(host)

    blacklist = block_host
    blacklist_with_timeout = block_host_with_timeout

    def blacklist_clear(self, host: str | None = None) -> None:
        self.unblock_host(host)

    def specify_draining_by_hostname(self, hostname: str, drain_mode: bool = True) -> int:
        return self._state.drain_host(hostname, bool(drain_mode))

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

    def workers_summary(self) -> list[dict[str, Any]]:
        groups: dict[tuple[int, int, int, int], int] = {}
        for w in self._state.workers.values():
            r = w.resources
            k = (r.cores, r.memory, r.disk, r.gpus)
            groups[k] = groups.get(k, 0) + 1
        return [{"workers": n, "cores": k[0], "memory": k[1], "disk": k[2], "gpus": k[3]}
                for k, n in groups.items()]

    # -- the loop ---------------------------------------------------------------------------------

    def _pass(self, now: float, poll_timeout: float) -> bool:
        """One iteration of the manager loop; True if anything happened."""
        progressed = self._dispatch_all(now)
        self._flush_all()
        # The statistics of the tasks returned since the last pass, now that the workers
        # have their next tasks (they are off the path from one task to the next).
        self._state.settle()
        # Block in poll unless there is more to do now: more tasks to place, or tasks to return.
        more = progressed and self._state.dispatch_pending
        poll = 0.0 if more or self._state.returned else poll_timeout
        t0 = time.perf_counter()
        events = self._watcher.wait(poll)
        started = time.perf_counter()
        self._state.handle(ev.TimeSpent("polling", int((started - t0) * 1e6)), 0.0)
        handled = 0
        for conn in events:
            if handled and time.perf_counter() - started > PASS_BUDGET:
                # A bounded pass: the other connections are still readable at the next poll
                # (epoll is level-triggered), after this pass's answers have gone out.
                break
            handled += 1
            if conn is None:
                self._accept(self._now())
                progressed = True
                continue
            if conn.closed:
                continue
            if conn.watching_write:
                try:
                    conn.drain()
                except OSError as e:
                    self._debug_msg(f"sending to {conn.address} failed: {e}")
                    self._drop(conn, "UNKNOWN" if conn.worker is None else "FAILURE")
                    continue
            got = conn.receive()
            if got is None:
                continue  # it had room to write, nothing to read
            if not got:
                self._drop(conn, "UNKNOWN" if conn.worker is None else "FAILURE")
                progressed = True
                continue
            try:
                self._process(conn, self._now())
            except (RemoteProtocolError, OSError, ValueError) as e:
                logger.warning("dropping worker %s: %s", conn.address, e)
                self._debug_msg(f"dropping worker {conn.address}: {e}")
                self._drop(conn, "FAILURE")
            progressed = True
        if events:
            # Answers to what just arrived (the next task, kill/unlink of finished ones) leave
            # together in one send per worker.
            self._dispatch_all(self._now(), burst=min(handled, 100))
        # Cleanup lines for tasks about to be returned wait for the next pass (or close()),
        # so wait() returns without a send on its path.
        self._flush_all(everything=not self._state.returned)
        now = self._now()
        if now - self._last_fast_abort >= 0.1:
            self._last_fast_abort = now
            self._abort_slow_tasks(now)
        if now - self._last_periodic >= 1.0:
            self._periodic(now)
        self._state.capacity.pass_done(progressed)
        return progressed

    def _flush_all(self, everything: bool = True) -> None:
        if not self._unsent:
            return
        for conn in list(self._unsent):
            if not (conn.out or conn.tail) or conn.closed:
                self._unsent.discard(conn)
            elif everything or conn.urgent:
                self._unsent.discard(conn)
                try:
                    conn.flush()
                except OSError as e:
                    logger.warning("send to %s failed: %s", conn.address, e)
                    self._drop(conn, "FAILURE")

    def _dispatch_all(self, now: float, burst: int = 100) -> bool:
        progressed = False
        # A bounded burst, so results keep flowing in while many workers are being filled.
        for _ in range(burst):
            d = self._state.next_dispatch(now)
            if d is None:
                break
            progressed = True
            self._send_task(d, now)
        if self._state.out:  # tasks past their end time failed while choosing
            self._carry_out(self._state.collect())
        return progressed

    def _accept(self, now: float) -> None:
        for _ in range(max(10, self._state.wait_for_workers)):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                logger.warning("accept failed: %s", e)
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    self._shed_idle_connection()
                return
            set_keepalive(sock)
            if self._tls is not None:
                # Like CCTools, the TLS handshake is done right away (bounded by short-timeout).
                sock.settimeout(self._short_timeout)
                try:
                    sock = self._tls.wrap_socket(sock, server_side=True)
                except (OSError, ValueError) as e:
                    logger.warning("TLS handshake with %s failed: %s", addr[0], e)
                    sock.close()
                    continue
            sock.setblocking(False)
            self._add_connection(sock, addr, now, self._password is not None)

    def _add_connection(self, sock: Any, addr: Any, now: float,
                        needs_password: bool) -> WorkerConnection:
        """Make a connection of ``sock`` and watch it; with ``needs_password``, nothing but
        the password exchange is accepted from it until that succeeds."""
        key = self._next_key
        self._next_key += 1
        conn = WorkerConnection(sock, f"{addr[0]}:{addr[1]}", key, now, self._unsent,
                                self._now)
        conn.watch_write = self._watch_write
        if self._debug:
            conn.debug = self._debug.write
            self._debug.write(f"new connection from {conn.address}")
        if needs_password:
            assert self._password is not None
            conn.auth = auth.PasswordExchange(self._password, initiator=False)
        conn.reader.admit = admission(conn)
        self._conns[key] = conn
        self._watcher.register(sock, conn)
        return conn

    def _adopt_handoffs(self) -> None:
        """Connections the status thread accepted while the application was busy and that
        turned out to be workers (issue 5): they join the loop with the bytes read so far."""
        handoff = self._status_responder.handoff
        while not handoff.empty():
            sock, addr, data, authed = handoff.get()
            now = self._now()
            conn = self._add_connection(sock, addr, now, False)  # authenticated if need be
            if data:
                conn.bytes_received += len(data)
                conn.reader.feed(data)
                try:
                    self._process(conn, now)
                except (RemoteProtocolError, OSError, ValueError) as e:
                    logger.warning("dropping worker %s: %s", conn.address, e)
                    self._drop(conn, "FAILURE")

    def _shed_idle_connection(self) -> None:
        """Out of file descriptors: close the oldest connection that never handshook."""
        pending = [c for c in self._conns.values() if c.worker is None]
        if pending:
            oldest = min(pending, key=lambda c: c.connected_at)
            self._debug_msg(f"out of file descriptors: dropping {oldest.address}, which "
                            "never completed a handshake")
            self._drop(oldest, "UNKNOWN")

    def _drop(self, conn: WorkerConnection, reason: str, released: bool = False) -> None:
        """Close ``conn``; the core takes its worker's tasks back (``WorkerGone``)."""
        if conn.closed and conn.key not in self._conns:
            return
        self._conns.pop(conn.key, None)
        self._unsent.discard(conn)
        self._watcher.unregister(conn.sock)
        conn.close()
        w = conn.worker
        if w is None:
            if reason == "STATUS_WORKER" and self._txn:
                # CCTools logs a status client's goodbye as a worker without an id
                self._txn.worker_disconnected(None, conn.address, reason, self._now())
            return
        now = self._now()
        self._carry_out(self._state.handle(ev.WorkerGone(w.key, reason, released=released), now))
        if self._txn:
            self._txn.worker_disconnected(w, conn.address, reason, now)

    def _last_word(self, conn: WorkerConnection, data: bytes, reason: str,
                   released: bool = False) -> None:
        """Send ``data`` (if the peer still listens) and close the connection on purpose."""
        try:
            conn.write(data)
            conn.flush()
        except OSError:
            pass
        self._drop(conn, reason, released)

    def _watch_write(self, conn: WorkerConnection, on: bool) -> None:
        self._watcher.want_write(conn.sock, on)

    def _transfer_wait(self, length: int) -> float:
        """Seconds a transfer of ``length`` bytes may take (see policies.transfer_wait)."""
        tune = self._tune
        return _policy_transfer_wait(length, float(tune["default-transfer-rate"]),
                                     float(tune["transfer-outlier-factor"]),
                                     float(tune["min-transfer-timeout"]))

    def _periodic(self, now: float) -> None:
        self._last_periodic = now
        self._advertiser.maybe_update(now)  # issue 5
        for conn in list(self._conns.values()):
            self._check_liveness(conn, now)
        limits = self._factory_limits
        limits.maybe_fetch(now)
        fresh = dict(limits.max_workers) if limits.take() else None
        self._carry_out(self._state.handle(ev.Tick(fresh), now))
        if now - self._last_unfit_warning >= self.unfit_warning_interval:
            self._last_unfit_warning = now
            self._warn_unfit_tasks()
        if self._stats_log:
            self._stats_log.write(self._stats_now(), now)

    def _check_liveness(self, conn: WorkerConnection, now: float) -> None:
        """Keepalive checks, and the handshake, stall and transfer deadlines of one
        connection (the rule: policies.liveness_verdict)."""
        reader, box = conn.reader, conn.outbox
        w = conn.worker
        facts = Liveness(
            connected_at=conn.connected_at, last_message=conn.last_message,
            last_check=conn.last_check, spoke_since_check=conn.spoke_since_check,
            ready=w is not None and w.ready, blocked_since=box.blocked_since,
            blocked_bytes=box.blocked_bytes,
            in_payload=reader.in_payload and conn.payload_number == reader.payloads_started,
            payload_length=reader.payload_length, payload_deadline=conn.payload_deadline,
            expecting=reader.in_payload or bool(conn.expect))
        stall = float(self._tune["min-transfer-timeout"])
        verdict = liveness_verdict(facts, now, self._keepalive_interval,
                                   self._keepalive_timeout, stall, self._transfer_wait)
        if verdict == KEEP:
            return
        if verdict == CHECK:
            conn.write(m.Check().encode())
            conn.last_check = now
            conn.spoke_since_check = False
        elif verdict == DROP_HANDSHAKE:
            self._debug_msg(f"{conn.address} did not complete its handshake in "
                            f"{self._keepalive_timeout:.0f} s; dropping it")
            self._drop(conn, "UNKNOWN")
        else:
            text = _DROP_MESSAGES[verdict].format(blocked=box.blocked_bytes, stall=stall,
                                                  payload=reader.payload_length)
            self._debug_msg(f"worker {conn.address} {text}")
            self._drop(conn, "FAILURE")

    def _abort_slow_tasks(self, now: float) -> None:
        """Fast abort (the rule: ManagerState, on SlowTaskCheck)."""
        self._carry_out(self._state.handle(ev.SlowTaskCheck(), now))

    def _warn_unfit_tasks(self) -> None:
        """Say which waiting tasks are larger than every connected worker (every 3 min)."""
        for category, n in sorted(self._state.unfit_tasks().items()):
            largest = self._state.largest_worker()
            text = (f"{n} waiting task(s) of category '{category}' need more than any "
                    f"connected worker offers (largest worker: {largest.cores:g} cores, "
                    f"{largest.memory:g} MB memory, {largest.disk:g} MB disk, "
                    f"{largest.gpus:g} gpus); they will wait until a larger worker connects")
            logger.warning(text)
            self._debug_msg(text)

    # -- sending tasks ----------------------------------------------------------------------------

    def _send_task(self, d: ins.SendTask, now: float) -> None:
        """Carry out a SendTask: the inputs the worker lacks, then the task block."""
        task: Task = d.task
        worker = d.worker
        conn = self._conns[worker.key]
        t0 = time.perf_counter()
        sent = 0
        cached: list[tuple[str, int]] = []
        extra = self._monitor_files(task, worker)
        conn.before_task(task.id)
        try:
            for spec in (*task.files, *extra) if extra else task.files:
                if not spec.is_input:
                    continue
                if spec.empty_dir or (spec.cached and spec.cachename in worker.cached):
                    if self._txn:  # CCTools logs cached and empty-directory inputs too
                        self._txn.input_sent(task, spec, 0, 0.0, now)
                    continue
                t_file = self._now() if self._txn else 0.0
                n = send_input(conn, spec, worker.os, worker.arch)
                if self._txn:
                    t_end = self._now()
                    self._txn.input_sent(task, spec, n, t_end - t_file, t_end)
                sent += n
                if spec.cached:
                    cached.append((spec.cachename, n))
        except InputMissing as e:
            logger.warning("task %d: %s", task.id, e)
            self._carry_out(self._state.handle(ev.TaskInputMissing(d, str(e), cached), now))
            return
        except OSError as e:
            logger.warning("sending inputs of task %d to %s failed: %s", task.id, conn.address, e)
            self._drop(conn, "FAILURE")
            return
        conn.write(self._task_block(task, d, fork=task.is_python and self._monitor is None
                                    and extensions.PYTHON_WARM in worker.features))
        if not worker.tasks:
            # An idle worker starts at once; the bookkeeping below overlaps with its work.
            try:
                conn.flush()
            except OSError as e:
                logger.warning("send to %s failed: %s", conn.address, e)
                self._drop(conn, "FAILURE")
                return
        send_usec = int((time.perf_counter() - t0) * 1e6)
        self._carry_out(self._state.handle(
            ev.TaskSent(d, now, sent, send_usec, conn.address, cached), self._now()))

    def _monitor_files(self, task: Task, worker: WorkerRecord) -> tuple[Any, ...]:
        """Decide how this attempt of ``task`` is monitored; the files that takes."""
        config = self._monitor
        task._summary_text = None
        if config is None or task.coprocess:
            task._monitor_mode = None
            task._monitor_files = ()
            return ()
        if extensions.MONITOR in worker.features:
            # Our worker measures the task itself and sends the summary with the result.
            task._monitor_mode = "native"
            task._monitor_files = ()
            return ()
        exe = config.executable_spec()
        if exe is None:
            # Without a resource_monitor to send, CCTools workers run the task unmonitored.
            task._monitor_mode = None
            task._monitor_files = ()
            return ()
        summary = task.__dict__.get("_monitor_summary")
        if summary is None:
            summary = task._monitor_summary = monitoring.summary_spec(config, task)
        task._monitor_mode = "wrapped"
        task._monitor_files = (exe, summary)
        return task._monitor_files

    def _task_block(self, task: Task, d: ins.SendTask, fork: bool = False) -> bytes:
        monitored = task._monitor_mode is not None
        native = task._monitor_mode == "native"
        command = task.command
        if monitored and not native:
            command = self._monitor.wrap(task, d.box)  # type: ignore[union-attr]
        cmd = command.encode()
        parts = [f"task {task.id}\ncmd {len(cmd)}\n".encode(), cmd]
        if native:
            request = self._monitor.native_request(task, d.box)  # type: ignore[union-attr]
            parts += [m.Monitor(len(request)).encode(), request]
        coprocess = extensions.PYTHON_WARM if fork else task.coprocess
        if coprocess:
            cop = coprocess.encode()
            parts += [f"coprocess {len(cop)}\n".encode(), cop]
        box = d.box
        key = (task.category, box.cores, box.gpus, box.memory, box.disk)
        lines = self._box_lines.get(key)
        if lines is None:
            if len(self._box_lines) > 1000:
                self._box_lines.clear()
            lines = self._box_lines[key] = (
                f"category {task.category}\ncores {box.cores:.3f}\ngpus {box.gpus:.0f}\n"
                f"memory {box.memory:.0f}\ndisk {box.disk:.0f}\n".encode())
        parts.append(lines)
        if task.end_time > 0 and not monitored:
            parts.append(f"end_time {task.end_time:.6f}\n".encode())
        wall = task.resources_requested.wall_time
        if wall > 0 and not monitored:
            # Seconds, as the manual says.  A CCTools 7.x worker reads this as microseconds
            # (rounding up to 1 s); see docs/compatibility.md.
            parts.append(f"wall_time {wall:.6f}\n".encode())
        for name, value in task.env.items():
            entry = f"{name}={value}" if value is not None else name
            data = entry.encode()
            parts += [f"env {len(data)}\n".encode(), data, b"\n"]
        for spec in task.files:
            if spec.is_input and spec.empty_dir:
                parts.append(f"dir {spec.remote_name}\n".encode())
        files = (*task.files, *task._monitor_files) if task._monitor_files else task.files
        for spec in files:
            if spec.is_input and not spec.empty_dir:
                parts.append(m.TaskFile("infile", spec.cachename, spec.remote_name,
                                        spec.flags).encode())
        for spec in files:
            if not spec.is_input:
                parts.append(m.TaskFile("outfile", spec.cachename, spec.remote_name,
                                        spec.flags).encode())
        parts.append(b"end\n")
        return b"".join(parts)

    # -- receiving --------------------------------------------------------------------------------

    def _process(self, conn: WorkerConnection, now: float) -> None:
        conn.last_message = now
        conn.spoke_since_check = True
        if conn.auth is not None and not self._authenticate(conn):
            return
        reader = conn.reader
        while not conn.closed:
            ev = reader.next_event()
            if ev is NEED_DATA:
                if reader.in_payload and conn.payload_number != reader.payloads_started:
                    conn.payload_number = reader.payloads_started
                    conn.payload_deadline = now + self._transfer_wait(reader.payload_length)
                return
            if isinstance(ev, Chunk):
                self._on_chunk(conn, ev)
            else:
                if self._debug:
                    self._debug.write(logs.wire_text("rx from", conn, ev))
                self._on_message(conn, ev, now)  # type: ignore[arg-type]

    def _authenticate(self, conn: WorkerConnection) -> bool:
        """Advance the password exchange; True once it succeeded."""
        exchange = conn.auth
        assert exchange is not None
        buf = conn.reader._buffer
        while not exchange.done:
            line = buf.maybe_next_line()
            if line is None:
                return False
            try:
                reply = exchange.receive(line)
            except AuthenticationError as e:
                raise RemoteProtocolError(f"password authentication failed: {e}") from None
            if reply:
                conn.write(reply)
        conn.flush()
        conn.auth = None
        return True

    def _on_message(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        w = conn.worker
        if w is None and not isinstance(msg, _BEFORE_HANDSHAKE):
            raise RemoteProtocolError(f"{type(msg).__name__} before the handshake")
        if isinstance(msg, m.Result):
            self._on_result(conn, msg, now)
        elif isinstance(msg, m.End):
            self._on_end(conn, now)
        elif isinstance(msg, m.Info):
            self._on_info(conn, msg, now)
        elif isinstance(msg, m.AvailableResults):
            if not conn.results_requested:
                conn.results_requested = True
                conn.expect.append(("results",))
                conn.write(m.SendResults(-1).encode())
        elif isinstance(msg, m.FileItem | m.DirItem | m.MissingItem):
            self._on_get_item(conn, msg)
        elif isinstance(msg, m.Alive):
            pass
        elif isinstance(msg, m.ResourceReport):
            if w is None:
                raise RemoteProtocolError("resource report before handshake")
            self._on_resource(w, msg, now)
        elif isinstance(msg, m.Update):
            self._on_update(conn, msg)
        elif isinstance(msg, m.MonitorSummary):
            task = w.tasks.get(msg.task_id) if w is not None else None
            if task is not None and task._monitor_mode == "native":
                task._summary_text = msg.payload.decode("utf-8", "replace")
        elif isinstance(msg, m.Hello):
            self._on_hello(conn, msg, now)
        elif isinstance(msg, m.Feature):
            if w is None:
                raise RemoteProtocolError("feature before handshake")
            self._state.handle(ev.FeatureReported(w, msg.name), now)
            if msg.name in (extensions.PUSH_RESULTS, extensions.ENCODED_NAMES):
                conn.write(m.Feature(msg.name).encode())
        elif isinstance(msg, m.CacheUpdate):
            if w is not None:
                self._state.note_cached(w, msg.cachename, msg.size)
        elif isinstance(msg, m.CacheInvalid):
            if w is not None:
                self._state.note_cached(w, msg.cachename, None)
                logger.warning("worker %s could not create %s: %s", w.hostname, msg.cachename,
                               msg.payload.decode("utf-8", "replace").strip())
        elif isinstance(msg, m.StatusRequest | m.HttpGet):
            self._answer_status(conn, msg, now)
        elif isinstance(msg, m.NameQuery):
            conn.write(f"{self._name or ''}\n".encode())
        else:
            raise RemoteProtocolError(f"unexpected message {msg!r}")

    def _on_hello(self, conn: WorkerConnection, msg: m.Hello, now: float) -> None:
        if conn.worker is not None:
            raise RemoteProtocolError("second handshake on one connection")
        if msg.protocol != WORK_QUEUE_PROTOCOL_VERSION:
            raise RemoteProtocolError(f"worker speaks protocol {msg.protocol}, "
                                      f"we speak {WORK_QUEUE_PROTOCOL_VERSION}")
        w = WorkerRecord(conn.key, hostname=msg.hostname, address=conn.address, os=msg.os,
                         arch=msg.arch, version=msg.version)
        conn.worker = w
        self._state.handle(ev.WorkerConnected(w), now)

    def _on_info(self, conn: WorkerConnection, msg: m.Info, now: float) -> None:
        w = conn.worker
        if w is None:
            raise RemoteProtocolError("info before handshake")
        f = msg.field
        if f == "from-factory":
            self._factory_limits.names.add(msg.value)  # the catalog is asked for its limits
        self._carry_out(self._state.handle(ev.WorkerInfo(w, f, msg.value), now))
        if not self._txn:
            return
        if f == "worker-id":
            self._txn.worker_connected(w, conn.address, now)
        elif f == "end_of_resource_update":
            # CCTools logs the worker's resources after every update
            self._txn.worker_resources(w, now)

    def _on_resource(self, w: WorkerRecord, msg: m.ResourceReport, now: float) -> None:
        self._carry_out(self._state.handle(
            ev.ResourcesReported(w, msg.name, msg.total, msg.largest), now))

    def _on_result(self, conn: WorkerConnection, msg: m.Result, now: float) -> None:
        w = conn.worker
        task = w.tasks.get(msg.task_id) if w is not None else None
        if task is None:
            return  # cancelled meanwhile: nothing to do
        codes = (monitoring.RM_OVERFLOW, monitoring.RM_TIME_EXPIRE) \
            if task._monitor_mode is not None else None
        self._carry_out(self._state.handle(ev.ResultReceived(
            w, msg.task_id, msg.status, msg.exit_code, msg.exec_time_usec,  # type: ignore
            msg.payload, codes), now))

    def _fetch_outputs(self, f: ins.FetchOutputs) -> None:
        """Carry out FetchOutputs: one ``get`` per output; the replies come back in order."""
        task = f.task
        conn = self._conns.get(f.worker_key)
        task._pending_gets = len(f.files)
        if conn is not None and f.files:
            for spec in f.files:
                conn.write(m.Get(spec.cachename).encode())
                conn.expect.append(("get", task, spec))
            return
        task._pending_gets = 0
        self._task_retrieved(conn, task, self._now())

    def _on_update(self, conn: WorkerConnection, msg: m.Update) -> None:
        w = conn.worker
        task = w.tasks.get(msg.task_id) if w is not None else None
        if task is None:
            return
        for spec in task.files:
            if not spec.is_input and spec.remote_name == msg.remote_name:
                path = spec.local_path(w.os, w.arch)  # type: ignore[union-attr]
                try:
                    ensure_parent(path)
                    mode = "r+b" if os.path.exists(path) else "wb"
                    with open(path, mode) as f:
                        f.seek(msg.offset)
                        f.write(msg.payload)
                except OSError as e:
                    logger.warning("cannot update watched file %s: %s", path, e)
                return

    def _on_end(self, conn: WorkerConnection, now: float) -> None:
        if not conn.expect:
            raise RemoteProtocolError("unexpected 'end'")
        what = conn.expect.popleft()
        if what[0] == "results":
            conn.results_requested = False
            return
        _, task, spec = what
        staging, conn.staging = conn.staging, None
        if staging is not None:
            self._finish_staging(task, staging)
        if self._txn:
            self._txn.output_done(task, spec, now)
        task._pending_gets -= 1
        if task._pending_gets == 0 and task.state == ts.WAITING_RETRIEVAL:
            self._task_retrieved(conn, task, now)

    def _finish_staging(self, task: Task, staging: StagedDirectory) -> None:
        """A directory output's reply ended: into place if it all arrived, else nothing."""
        if staging.failed or task.state != ts.WAITING_RETRIEVAL:
            staging.abort()
            return
        try:
            staging.commit()
        except OSError as e:
            logger.warning("cannot put output directory %s in place: %s", staging.path, e)
            staging.abort()
            self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)

    def _current_get(self, conn: WorkerConnection) -> tuple[Task, Any]:
        if not conn.expect or conn.expect[0][0] != "get":
            raise RemoteProtocolError("file data without a 'get'")
        _, task, spec = conn.expect[0]
        return task, spec

    def _on_get_item(self, conn: WorkerConnection, msg: m.Message) -> None:
        task, spec = self._current_get(conn)
        live = task.state == ts.WAITING_RETRIEVAL
        w = conn.worker
        base = "" if spec.memory else spec.local_path(w.os, w.arch)  # type: ignore[union-attr]
        if isinstance(msg, m.MissingItem):
            if live:
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_MISSING)
            return
        name = msg.name  # type: ignore[attr-defined]
        if extensions.ENCODED_NAMES in w.features:  # type: ignore[union-attr]
            name = url_decode(name)
        path = local_output_path(base, spec.cachename, name)
        staging = conn.staging
        if isinstance(msg, m.DirItem):
            if not live:
                return
            try:
                if path == base and staging is None:
                    conn.staging = StagedDirectory(base)
                elif staging is not None:
                    os.makedirs(staging.path_for(path), exist_ok=True)
                else:
                    raise RemoteProtocolError(f"worker sent {msg.name!r} before its directory")
            except OSError as e:
                logger.warning("cannot create output directory %s: %s", path, e)
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
                if staging is not None:
                    staging.failed = True
            return
        if staging is not None:
            path = staging.path_for(path)
        # FileItem: data chunks follow
        conn.sink = None
        if live and spec.memory:
            conn.sink = MemoryOutput(task, spec.remote_name, msg.length)  # type: ignore
        elif live:
            try:
                conn.sink = FileOutput(path)
            except OSError as e:
                logger.warning("cannot write output %s: %s", path, e)
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
        self._state.handle(ev.OutputBytesComing(task, msg.length), 0.0)  # type: ignore
        if self._txn:
            self._txn.output_bytes(task, msg.length)  # type: ignore[attr-defined]

    def _on_chunk(self, conn: WorkerConnection, chunk: Chunk) -> None:
        sink = conn.sink
        if sink is not None:
            try:
                sink.write(chunk.data)
                if chunk.last:
                    conn.sink = None
                    sink.commit()
            except OSError as e:
                task, _ = self._current_get(conn)
                if conn.staging is not None:
                    conn.staging.failed = True
                logger.warning("writing output failed: %s", e)
                self._debug_msg(f"writing an output of task {task.id} failed: {e}")
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
                sink.abort()
                conn.sink = None

    def _set_result(self, task: Task, result: int) -> None:
        """An output failed (the rule, result precedence: policies.merge_result)."""
        self._state.handle(ev.OutputFailed(task, result), 0.0)

    def _task_retrieved(self, conn: WorkerConnection | None, task: Task, now: float) -> None:
        """Every reply for the task's outputs is in: its monitor summary, then the core."""
        if task._monitor_mode is not None and self._monitor is not None:
            if task._monitor_mode == "native":
                text = task._summary_text
                monitoring.keep_summary(self._monitor, task, text)
            else:
                text = monitoring.read_summary(self._monitor, task, task._monitor_files[-1])
            monitoring.apply_summary(task, text, self._monitor)
            if task.result == WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION:
                host = conn.worker.hostname if conn is not None and conn.worker else "?"
                self._debug_msg(f"task {task.id} exhausted resources on {host}: "
                                f"{task.limits_exceeded}")
        self._carry_out(self._state.handle(ev.OutputsFetched(task), self._now()))

    def _kill_on_worker(self, k: ins.SendKill) -> None:
        """Carry out SendKill: ``kill`` (unless the task never started there), then unlink
        its files that are not cached; ``later``: cleanup that may wait for the next send."""
        conn = self._conns.get(k.worker_key)
        if conn is None:
            return
        task = k.task
        if k.kill:
            line = m.Kill(task.id).encode()
            if k.later:
                conn.write_after(line, task.id)
            else:
                conn.write(line)
        for spec in task.files:
            if spec.cached or (not spec.is_input and not k.outputs_too) or spec.empty_dir:
                continue
            conn.write(m.Unlink(spec.cachename).encode(), k.later)

    # -- carrying out the core's instructions ---------------------------------------------------

    def _carry_out(self, instructions: list[ins.Instruction]) -> None:
        """Do what the core said, in order (the only place its instructions are read)."""
        doers = self._doers
        for i in instructions:
            doers[type(i)](i)

    def _drop_worker(self, d: ins.DropWorker) -> None:
        conn = self._conns.get(d.worker_key)
        if conn is None:
            return
        self._debug_msg(d.why)
        if d.goodbye:
            self._last_word(conn, m.Exit().encode(), d.reason)
        else:
            self._drop(conn, d.reason)

    def _log_transition(self, t: ins.Transition) -> None:
        """The transactions log's TASK lines, all written here from the core's transitions."""
        txn = self._txn
        if txn is None:
            return
        new, task = t.new, t.task
        if new == ts.READY:
            txn.task_waiting(task, t.now)
        elif new == ts.RUNNING:
            txn.task_running(task, task.host, task.resources_allocated, t.now)
        elif new == ts.WAITING_RETRIEVAL:
            txn.task_waiting_retrieval(task, task.host, t.now)
        elif new == ts.RETRIEVED and t.cause == "retrieved":
            txn.task_retrieved(task, t.now)
        elif new == ts.DONE:
            txn.task_done(task, t.now)
        elif new == ts.CANCELED:
            txn.task_canceled(task, t.now)

    def _note(self, n: ins.Note | ins.BlockHost) -> None:
        if isinstance(n, ins.Note):
            self._debug_msg(n.text)
        else:
            self._debug_msg(n.why)

    # -- status -----------------------------------------------------------------------------------

    def _answer_status(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        if isinstance(msg, m.HttpGet):
            body = status.http_reply(self, msg.path, now)
        else:
            body = json.dumps(status.build(self, msg.kind, now),  # type: ignore[attr-defined]
                              separators=(",", ":")).encode()
        self._last_word(conn, body, "STATUS_WORKER")

    def _log_category(self, c: Any) -> None:
        """CATEGORY lines of the transactions log (on a mode change or a new first allocation)."""
        writer = getattr(self._txn, "category", None)
        if writer is not None:
            writer(c, self._now())

    def _debug_msg(self, text: str) -> None:
        if self._debug:
            self._debug.write(text)
