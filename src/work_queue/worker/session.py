"""One connection to a manager: the worker's shell around its core.

The session owns the socket, the task processes and the files; ``core.worker_state`` owns the
decisions.  Each thing that happens becomes an event for the core (a task block read, a task's
process exited, ``kill``, ``send_results``, the loop coming round), and the session carries out
the instructions it returns (``_do``): start a task (``_start``: sandbox from
``sandboxes.py``, inputs from the cache, launch with ``launch.py``), kill one, drop one, send a
result or a message, end the session.  Files from and to the manager go through
``transfers.py``.

The loop waits on the manager's socket, one pidfd per running task, the warm interpreters and
the processes that outlived their tasks; after each wake-up it reaps what ended, lets the core
start what fits and kill what ran out of time, flushes, and tidies up after finished tasks when
nothing is on the manager's path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constants import (
    WORK_QUEUE_PROTOCOL_VERSION,
    WORK_QUEUE_RESULT_INPUT_MISSING,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME,
    WORK_QUEUE_WATCH,
)
from ..core import worker_state as ws
from ..core.worker_state import WorkerLimits, WorkerState
from ..errors import AuthenticationError, RemoteProtocolError
from ..events import ReadWatcher, read_ready
from ..protocol import extensions
from ..protocol import messages as m
from ..protocol.reader import NEED_DATA, Chunk, manager_stream_reader
from ..version import __version__
from . import login
from .cache import Cache, LazyObject
from .executor import (
    TaskRun,
    TaskSpec,
    child_pids,
    disk_full,
    end_process_group,
    finish_warm_run,
    kill_process,
    make_spare_output_files,
    read_output,
    reap,
    remove_tree,
    start_process,
)
from .launch import Launcher
from .pyexec import TASKS_PER_INTERPRETER, WarmInterpreter
from .rejoin import Rejoin
from .sandboxes import Sandboxes, is_empty_dir, keep_outputs
from .task_monitor import TaskMonitor, finish_monitor, over_limit, watch_before_start
from .transfers import Incoming, Outgoing

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger(__name__)

#: Seconds the worker waits for the manager's next message before tidying up after tasks
#: (ending their process groups, removing their sandboxes).
HOUSEKEEPING_DELAY = 0.002

#: Seconds between looks for ended processes that outlived their tasks, while there are any.
ESCAPEE_POLL = 0.1

# How a session ended (the core decides IDLED_OUT and WALL_TIME)
RELEASED, EXITED, LOST = "released", "exit", "lost"
IDLED_OUT, WALL_TIME = ws.IDLED_OUT, ws.WALL_TIME


class Session:
    """One connection to a manager: carries out what the core (WorkerState) decides."""

    def __init__(self, worker: Worker, sock: socket.socket, authenticated: bool = False) -> None:
        self.w = worker
        self.authenticated = authenticated  # a refused resume's connection (rejoin.py)
        self.cfg = worker.config
        self.sock = sock
        self.reader = manager_stream_reader(blocks=True)
        self.out = bytearray()
        buf = bytearray(1 << 20)
        self._recv_buffer = (buf, memoryview(buf))
        self.cache = Cache(os.path.join(worker.workspace, "cache"), self.cfg.copy_inputs)
        #: the tasks the worker holds (what the core decides about them is in ``core``)
        self.tasks: dict[int, TaskRun] = {}
        pool = worker.coprocesses
        self.core = WorkerState(
            WorkerLimits(worker.cores, worker.memory, worker.disk, worker.gpus,
                         self.cfg.idle_timeout, worker.end_time,
                         pool.feature if pool is not None else "",
                         len(pool.instances) if pool is not None else 0,
                         self.cfg.volatility, self.cfg.volatility_interval),
            time.time())
        #: a task block being read line by line (it did not arrive all at once)
        self.pending_task: TaskSpec | None = None
        self.incoming = Incoming(self.cache)
        self.outgoing = Outgoing(self.cache, worker.workspace, sock, self.cfg.io_timeout,
                                 self.send, self.flush, self.cfg.bandwidth)
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self.last_watch = 0.0
        self.watcher = ReadWatcher()
        self.outcome: str | None = None
        self.sandboxes = Sandboxes(worker.workspace)
        self.launcher = Launcher(worker.workspace, self.watcher)
        #: Tasks the manager is done with (killed after their result), and tasks that ended
        #: (their outputs are in the cache): their sandboxes are removed before the next task
        #: starts (so their space is free for it), or when the worker has a moment.
        self.finished: list[TaskRun] = []
        #: Tasks whose process ended and was reported, their process group not yet ended.
        self.exited: list[TaskRun] = []
        #: Output files of reported tasks, closed at the next housekeeping.
        self.unclosed: list[int] = []
        #: Tasks started since the loop last looked.
        self.started = 0
        #: pidfds of the processes that outlived their tasks, watched to reap them
        self.escapees: dict[int, _Escapee] = {}
        #: wq-py-resume: the token, and coming back when the connection drops (rejoin.py)
        self.rejoin = Rejoin(self)
        self._handlers = self._message_handlers()

    # -- I/O --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out += data

    def flush(self) -> None:
        if self.out:
            data = bytes(self.out)
            self.out.clear()
            try:
                sent = self.sock.send(data)  # usually all of it: the socket buffer has room
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                sent = 0
            if sent < len(data):
                self.sock.settimeout(self.cfg.io_timeout)
                try:
                    self.sock.sendall(data[sent:])
                finally:
                    self.sock.setblocking(False)

    def run(self) -> str:
        try:
            if self.cfg.password is not None and not self.authenticated:
                self._authenticate()
            self.sock.setblocking(False)
            self._handshake()
            logger.debug("connected to manager %s:%d", self.cfg.host, self.cfg.port)
            self.flush()
            self.watcher.register(self.sock, None)
            self.rejoin.serve(self._loop)  # the loop, and again after coming back
        except (OSError, RemoteProtocolError, AuthenticationError) as e:
            logger.warning("connection to manager failed: %s", e)
            print(f"work_queue_worker: {e}", file=sys.stderr)
            self.outcome = self.outcome or LOST
        finally:
            self._teardown()
        return self.outcome or LOST

    def _authenticate(self) -> None:
        """Blocking password exchange right after connecting (both peers run the same steps)."""
        assert self.cfg.password is not None
        self.sock.settimeout(30)
        # bytes after the exchange stay for the protocol reader
        login.authenticate(self.sock, self.cfg.password, self.reader._buffer)

    def _handshake(self) -> None:
        w = self.w
        ident = hashlib.md5(f"{os.getpid()},{os.getppid()},{random.random()}".encode())
        self.worker_id = "worker-" + ident.hexdigest()
        lines = [
            m.Hello(WORK_QUEUE_PROTOCOL_VERSION, w.hostname, self.cfg.os_name, self.cfg.arch,
                    __version__).encode(),
            m.Info("worker-id", self.worker_id).encode(),
        ]
        if self.cfg.factory_name:
            lines.append(m.Info("from-factory", self.cfg.factory_name).encode())
        lines += [m.Feature(f).encode() for f in w.features]
        # Extensions beyond protocol 11 are announced as features; a CCTools manager just
        # records them (see protocol/extensions.py).
        lines += [m.Feature(f).encode() for f in extensions.WORKER_EXTENSIONS
                  if f != extensions.PYTHON_WARM or w.warm_python]
        lines.append(m.Alive().encode())
        lines += self._resource_lines()
        lines += [m.Info("end_of_resource_update", "0").encode(),
                  m.Info("tasks_running", str(self.core.running_count())).encode(),
                  m.Info("worker-end-time", str(int(w.end_time))).encode()]
        self.send(b"".join(lines))

    def _resource_lines(self) -> list[bytes]:
        w = self.w
        out = []
        if w.coprocesses is not None:
            cfg = self.cfg
            for name, value, whole in (("disk", cfg.coprocess_disk, w.disk),
                                       ("memory", cfg.coprocess_memory, w.memory),
                                       ("gpus", cfg.coprocess_gpus, w.gpus),
                                       ("cores", cfg.coprocess_cores, w.cores)):
                v = int(value if value > 0 else whole)
                out.append(m.ResourceReport("coprocess_" + name, v, v, v).encode())
        out.append(m.ResourceReport("workers", 1, 1, 1).encode())
        for name, value in (("disk", w.disk), ("memory", w.memory), ("gpus", w.gpus),
                            ("cores", w.cores)):
            out.append(m.ResourceReport(name, int(value), int(value), int(value)).encode())
        out.append(m.ResourceReport("tag", w.last_task_id).encode())
        return out

    # -- main loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while self.outcome is None:
            now = time.time()
            timeout = self._next_timeout(now)
            if self.finished or self.exited or self.unclosed:
                timeout = min(timeout, HOUSEKEEPING_DELAY)
            elif len(self.escapees) < len(self.w.escapes.seen):
                # Processes that outlived their tasks are the worker's children (it is their
                # subreaper): one without a pidfd to wake the worker when it ends is looked
                # for at the next housekeeping, and reaped.
                timeout = min(timeout, ESCAPEE_POLL)
            events = self.watcher.wait(timeout)
            for data in events:
                if data is None:
                    self._receive()
                    if self.outcome is not None:
                        return
                elif isinstance(data, WarmInterpreter):
                    self._interpreter_answered(data)
                elif isinstance(data, _Escapee):
                    self._scan_escapees()
                else:
                    self._task_exited(data)
            now = time.time()
            self._check_tasks(now)
            self._do(self.core.handle(ws.Tick(self.reader.in_payload), now), now)
            self.rejoin.step(now)  # if the connection is down: try to come back
            if self.outcome is not None:
                return
            started = self.started
            self.started = 0
            # Results and started tasks first; cleaning up after finished tasks can wait.
            self.flush()
            if started or not events or len(self.finished) > 16:
                # Not right after sending a result: the manager, woken by it, is usually
                # scheduled on this CPU and would wait for this work before it can answer.
                # While a new task starts up, or when nothing happens, it is off everyone's path.
                self._housekeeping(now)
            self.flush()

    def _do(self, instructions: list[ws.Instruction], now: float) -> None:
        """Carry out what the core decided, in order."""
        for ins in instructions:
            kind = type(ins)
            if kind is ws.StartTask:
                self._start(self.tasks[ins.task_id], now)  # type: ignore[union-attr]
            elif kind is ws.SendResult:
                self._send_result(ins)  # type: ignore[arg-type]
            elif kind is ws.SendMessage:
                self.send(ins.message.encode())  # type: ignore[union-attr]
            elif kind is ws.DropTask:
                self._drop(ins.task_id)  # type: ignore[union-attr]
            elif kind is ws.KillTask:
                run = self.tasks[ins.task_id]  # type: ignore[union-attr]
                status = ins.forced_status  # type: ignore[union-attr]
                if run.forced_status is None and status == WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME:
                    logger.debug(over_limit(run.spec.task_id, "wall_time", now - run.start,
                                            run.spec.wall_time))
                run.forced_status = status
                kill_process(run)
            elif kind is ws.SendUpdates:
                self._send_updates(self.tasks[ins.task_id])  # type: ignore[union-attr]
            elif kind is ws.EndSession:
                if ins.message is not None:  # type: ignore[union-attr]
                    self.send(ins.message.encode())  # type: ignore[union-attr]
                self.flush()
                self.outcome = ins.outcome  # type: ignore[union-attr]

    def _housekeeping(self, now: float) -> None:
        """Tidy up after finished tasks and prepare for the next ones."""
        self._clean_finished()
        make_spare_output_files()
        self.sandboxes.make_spares()
        if len(self.escapees) < len(self.w.escapes.seen):
            self._scan_escapees()  # reaps those that ended
        trash = self.sandboxes.trash
        if trash and (len(trash) > 256 or not self.core.waiting):
            self.sandboxes.empty_trash(now, {r.sandbox for r in self.tasks.values()})

    def _end_exited(self) -> None:
        for run in self.exited:
            end_process_group(run)
        self.exited.clear()
        for fd in self.unclosed:
            os.close(fd)
        self.unclosed.clear()

    def _make_sandbox(self, spec: TaskSpec) -> str:
        """An empty directory for the task (see Sandboxes.make).  The sandboxes of finished
        tasks are empty or gone by now (``_start`` calls ``_free_space`` first)."""
        if not Sandboxes.is_pooled(spec):
            path = self.sandboxes.task_path(spec)
            if any(old.sandbox == path for old in self.finished):
                # The same task again: its old sandbox goes first (after what is left of
                # the processes that might still write into it).
                self._clean_finished()
        return self.sandboxes.make(spec)

    def _known_children(self) -> set[int]:
        """The processes the worker started and reaps itself (tasks, interpreters,
        coprocesses): any other child is a process that outlived its task."""
        known = {r.pid for r in self.tasks.values() if r.pid > 0 and (r.running or r.unreaped)}
        known.update(r.pid for r in self.exited if r.unreaped)
        known.update(i.pid for i in self.launcher.idle_interpreters)
        known.update(r.interp.pid for r in self.tasks.values() if r.interp is not None)
        if self.w.coprocesses is not None:
            known.update(c.proc.pid for c in self.w.coprocesses.instances
                         if c.proc is not None)
        return known

    def _scan_escapees(self) -> None:
        """Look for processes that outlived their tasks (reaping those that ended), and watch
        the live ones' pidfds, so that the worker reaps each as soon as it ends."""
        seen = self.w.escapes
        seen.scan(self._known_children())
        for pid in list(self.escapees):
            if pid not in seen.seen:
                self._unwatch_escapee(pid)
        for pid in seen.seen:
            if pid not in self.escapees:
                try:
                    fd = os.pidfd_open(pid)
                except (AttributeError, OSError):
                    continue
                self.escapees[pid] = _Escapee(pid, fd)
                self.watcher.register(fd, self.escapees[pid])

    def _unwatch_escapee(self, pid: int) -> None:
        e = self.escapees.pop(pid)
        self.watcher.unregister(e.fd)
        os.close(e.fd)

    def _left_behind(self, run: TaskRun) -> bool:
        """Whether a warm interpreter that ran ``run`` still has children (the task started
        them; they are not the worker's, so EscapeWatch does not see them)."""
        interp = run.interp
        if interp is None or not interp.alive:
            return False
        children = child_pids(interp.pid)
        return children is None or bool(children)

    def _next_timeout(self, now: float) -> float:
        timeout = self.rejoin.timeout(self.core.timeout(now), now)
        for run in self.tasks.values():
            if run.running:
                if run.pidfd < 0:
                    timeout = min(timeout, 0.01)
                if run.watched:
                    timeout = min(timeout, self.cfg.watch_interval)
                if run.monitor is not None and run.broken_limit is None:  # else: killed
                    timeout = min(timeout, run.monitor.next_time() - now)
        return max(0.0, timeout)

    def _receive(self, buffered: bool = False) -> None:
        """Read from the manager and handle what came (``buffered``: what the reader has)."""
        if not buffered:
            buf, view = self._recv_buffer
            # A small object is collected from the chunks: those must be copies.
            left = -1 if self.incoming.wants_copies else self.reader.streamed_left
            data = read_ready(self.sock, buf, view, left)
            if data is None:
                return
            if not data:
                if not self.rejoin.lost(time.time()):
                    self.outcome = LOST
                return
            self.core.handle(ws.ManagerSpoke(), time.time())
            self.reader.feed(data)  # type: ignore[arg-type]
        while self.outcome is None:
            ev = self.reader.next_event()
            if ev is NEED_DATA:
                break
            if isinstance(ev, TaskSpec):
                self._on_task(ev)
            elif isinstance(ev, Chunk):
                self.incoming.chunk(ev)
            else:
                self._on_message(ev)

    # -- messages ---------------------------------------------------------------------------------

    def _on_message(self, msg: m.Message) -> None:
        if self.debug:
            logger.debug("rx: %s", msg)
        spec = self.pending_task
        if spec is not None:
            # A task block read line by line (it did not arrive all at once).
            if spec.add(msg):
                self.pending_task = None
                self._on_task(spec)
            return
        if self.incoming.in_directory:
            self.incoming.dir_line(msg)
            return
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise RemoteProtocolError(f"unexpected message from manager: {msg!r}")
        handler(msg)

    def _message_handlers(self) -> dict[type, Callable[[Any], None]]:
        """What each message from the manager (other than a task block) does."""
        incoming, cache = self.incoming, self.cache

        def ignore(msg: m.Message) -> None:
            pass

        return {
            m.TaskStart: lambda msg: setattr(self, "pending_task", TaskSpec(msg.task_id)),
            m.Put: incoming.put,
            m.Dir: incoming.directory,
            m.PutCmd: lambda msg: cache.lazy.__setitem__(
                msg.cachename, LazyObject("cmd", msg.source, msg.mode)),
            m.PutUrl: lambda msg: cache.lazy.__setitem__(
                msg.cachename, LazyObject("url", msg.source, msg.mode)),
            m.Get: lambda msg: self.outgoing.send_output(msg.name),
            m.Unlink: lambda msg: cache.remove(msg.name),
            m.Kill: lambda msg: self._tell_core(ws.KillRequested(msg.task_id)),
            m.SendResults: lambda msg: self._tell_core(ws.ResultsRequested()),
            m.Check: lambda msg: self.send(
                m.Alive().encode()
                + m.Info("tasks_running", str(self.core.running_count())).encode()),
            m.Release: lambda msg: setattr(self, "outcome", RELEASED),
            m.Exit: lambda msg: setattr(self, "outcome", EXITED),
            m.Feature: self._on_feature,
            m.ResumeToken: self.rejoin.on_token,
            m.InvalidateFile: ignore, m.Tlq: ignore, m.Alive: ignore,
            m.AuthRequest: self._on_auth_request,
        }

    def _tell_core(self, event: ws.Event) -> None:
        now = time.time()
        self._do(self.core.handle(event, now), now)

    def _on_feature(self, msg: m.Feature) -> None:
        self.core.handle(ws.ExtensionConfirmed(msg.name), time.time())
        if msg.name == extensions.ENCODED_NAMES:
            self.outgoing.encoded_names = True

    def _on_auth_request(self, msg: m.AuthRequest) -> None:
        print("work_queue_worker: this manager requires a password", file=sys.stderr)
        self.outcome = EXITED if self.cfg.single_shot else LOST

    def _on_task(self, spec: TaskSpec) -> None:
        if self.debug:
            logger.debug("rx: %s", spec)
        self.w.last_task_id = max(self.w.last_task_id, spec.task_id)
        run = self.tasks[spec.task_id] = TaskRun(spec)
        now = time.time()
        instructions = self.core.handle(ws.TaskReceived(spec), now)
        rec = self.core.tasks[spec.task_id]
        run.cores, run.memory, run.disk, run.gpus = rec.cores, rec.memory, rec.disk, rec.gpus
        if rec.state == ws.FINISHED:  # refused (FORSAKEN) at once
            run.done = True
        # A task that fits starts now, before what came after its block is read (the cleanup
        # of the previous task, say), which can be done while it starts up.
        self._do(instructions, now)

    # -- tasks ------------------------------------------------------------------------------------

    def _start(self, run: TaskRun, now: float) -> None:
        """Carry out the core's StartTask: sandbox, inputs, then the process (or the warm
        interpreter, or the coprocess call); a failure ends the task unrun."""
        spec = run.spec
        if spec.coprocess.startswith(ws.COPROCESS_PREFIX):
            assert self.w.coprocesses is not None  # the core starts no such task otherwise
            run.coprocess = self.w.coprocesses.acquire(spec.task_id)
            if run.coprocess is None:
                self._do(self.core.handle(ws.TaskDeferred(spec.task_id), now), now)
                return
        self.started += 1
        if self.finished:
            self._free_space()
        run.sandbox = self._make_sandbox(spec)
        run.epoch = self.w.escapes.task_started()
        for name in spec.empty_dirs:
            os.makedirs(os.path.join(run.sandbox, name), mode=0o700, exist_ok=True)
        warm = spec.coprocess == extensions.PYTHON_WARM and self.w.warm_python
        if not self._place_inputs(run, warm):
            self._not_started(run, WORK_QUEUE_RESULT_INPUT_MISSING, 1, now)
            return
        if not self._launch(run, warm, now):
            return
        if self.debug:
            logger.debug("started task %d (pid %d): %s", spec.task_id, run.pid, spec.command)
        for _cache, remote, flags in spec.outputs:
            if flags & WORK_QUEUE_WATCH:
                run.watched[remote] = 0
        if run.pidfd >= 0:
            self.watcher.register(run.pidfd, spec.task_id)

    def _place_inputs(self, run: TaskRun, warm: bool) -> bool:
        """Link the task's inputs from the cache into its sandbox (fetching ``puturl`` and
        ``putcmd`` objects first); False if one is missing."""
        spec, cache = run.spec, self.cache
        # A Python task in a warm interpreter gets its function and arguments from memory.
        in_memory = set(spec.command.split()[1:4]) if warm else set()
        for cachename, remote, _flags in spec.inputs:
            try:
                if remote in in_memory and cachename in cache.small:
                    run.memory_inputs[remote] = cache.small[cachename][0]
                    continue
                if cachename in cache.lazy:
                    size, usec, error = cache.materialize(cachename)
                    if error is not None:
                        data = error.encode()
                        self.send(m.CacheInvalid(cachename, len(data)).encode() + data)
                        raise FileNotFoundError(error)
                    self.send(m.CacheUpdate(cachename, size, usec).encode())
                cache.place(cachename, os.path.join(run.sandbox, remote))
            except (OSError, ValueError) as e:
                logger.warning("task %d: input %s missing: %s", spec.task_id, remote, e)
                return False
        return True

    def _launch(self, run: TaskRun, warm: bool, now: float) -> bool:
        """Start the task's process, warm interpreter or coprocess call; False if it could
        not start (it ended unrun)."""
        env = self.launcher.task_env(run.spec, run)
        if run.coprocess is not None:
            if self.launcher.start_coprocess_call(run, now):
                return True
            if self.w.coprocesses is not None:
                self.w.coprocesses.release(run.spec.task_id)
            run.coprocess = None
            self._not_started(run, WORK_QUEUE_RESULT_INPUT_MISSING, 1, now)
            return False
        if warm and self.launcher.start_warm(run, env, now):
            return True
        for remote, data in run.memory_inputs.items():
            with open(os.path.join(run.sandbox, remote), "wb") as f:
                f.write(data)
        snapshots = watch_before_start(run.spec.monitor, run.sandbox, now)
        try:
            start_process(run, env, now)
        except OSError as e:
            # Reported as a shell would report a command it cannot run (exit code 127).
            logger.warning("task %d: cannot start it: %s", run.spec.task_id, e)
            if run.output_fd >= 0:
                os.write(run.output_fd, f"work_queue_worker: cannot start the task: {e}\n"
                         .encode())
            run.start = run.finish = now
            self._not_started(run, WORK_QUEUE_RESULT_SUCCESS, 127, now)
            return False
        spec = run.spec
        if spec.monitor is not None and run.pid > 0:
            try:
                run.monitor = TaskMonitor(spec.monitor, run.pid, run.sandbox, spec.command, now,
                                          snapshots)
            except (OSError, ValueError, TypeError) as e:
                logger.warning("task %d: cannot monitor it: %s", spec.task_id, e)
        return True

    def _interpreter_answered(self, interp: WarmInterpreter) -> None:
        task_id = interp.task_id
        self.watcher.unregister(interp.sock)
        code = interp.read_reply()
        status = interp.reap() if code is None else 0
        run = self.tasks.get(task_id)
        if code is not None and interp.served < TASKS_PER_INTERPRETER:
            self.launcher.idle_interpreters.append(interp)
        elif code is not None:
            interp.stop()
        if run is not None and run.coprocess is not None and self.w.coprocesses is not None:
            # restarts it if it died (a failed call gives a dying coprocess time to exit)
            self.w.coprocesses.release(run.spec.task_id, failed=code != 0)
            run.coprocess = None
        if run is None or run.done:
            return
        finish_warm_run(run, code, status, time.time())
        self._task_done(run)

    def _not_started(self, run: TaskRun, status: int, exit_code: int, now: float) -> None:
        """A task the core said to start could not: it ends unrun with this result."""
        run.done = True
        run.status, run.exit_code = status, exit_code
        if run.sandbox:
            self.finished.append(run)
        self._do(self.core.handle(ws.TaskNotStarted(run.spec.task_id, status, exit_code), now),
                 now)

    def _task_exited(self, task_id: int) -> None:
        run = self.tasks.get(task_id)
        if run is None:
            return
        pidfd = run.pidfd
        if not reap(run, time.time(), tidy=False):
            return
        # The result leaves first; closing the pidfd and ending the process group wait for
        # the next housekeeping.
        self._task_done(run)
        if pidfd >= 0:
            self.watcher.unregister(pidfd)
        self.exited.append(run)

    def _task_done(self, run: TaskRun) -> None:
        """Report a finished task (at once when the manager takes pushed results), then keep
        its outputs in the cache (before the manager's ``get`` for them is read)."""
        full = bool(run.sandbox) and WorkerState.may_be_disk_full(run.status, run.exit_code) \
            and disk_full(run.sandbox, run.disk)
        code = finish_monitor(run) if run.monitor is not None else None
        event = ws.TaskExited(run.spec.task_id, run.status, run.exit_code, full, code)
        self._do(self.core.handle(event, run.finish), run.finish)
        if self.core.push_results:
            self.flush()
        keep_outputs(run, self.cache)
        # Its outputs are in the cache: the sandbox is no longer needed (removed before the
        # next task starts, or when the worker has a moment).
        self.finished.append(run)

    def _check_tasks(self, now: float) -> None:
        for run in list(self.tasks.values()):
            if not run.running:
                continue
            if run.pidfd < 0 and run.interp is None and reap(run, now):
                self._task_done(run)
                continue
            spec = run.spec
            if run.monitor is not None and run.broken_limit is None and run.monitor.due(now):
                broken = run.monitor.sample(now)
                if broken:
                    logger.info("task %d broke its %s limit; killing it", spec.task_id, broken)
                    run.broken_limit = broken
                    run.monitor.kill()
                    kill_process(run)
                    continue
        if now - self.last_watch >= self.cfg.watch_interval:
            self.last_watch = now
            for run in self.tasks.values():
                if run.running and any(self._watch_growth(run)):
                    self._do(self.core.handle(ws.OutputsGrew(), now), now)
                    break

    def _watch_growth(self, run: TaskRun) -> list[tuple[str, int, int]]:
        grown = []
        for remote, offset in run.watched.items():
            try:
                size = os.path.getsize(os.path.join(run.sandbox, remote))
            except OSError:
                continue
            if size > offset:
                grown.append((remote, offset, size - offset))
        return grown

    def _send_result(self, result: ws.SendResult) -> None:
        run = self.tasks[result.task_id]
        # Final growth of watched files is covered by the full 'get' that follows.
        output = b""
        if run.output_fd >= 0:
            output = read_output(run.output_fd, close=False)  # closed at housekeeping
            self.unclosed.append(run.output_fd)
            run.output_fd = -1
        if run.summary:
            self.send(m.MonitorSummary(run.spec.task_id, len(run.summary)).encode()
                      + run.summary)
        self.send(m.Result(result.status, result.exit_code, len(output), result.elapsed_usec,
                           run.spec.task_id).encode() + output)

    def _send_updates(self, run: TaskRun) -> None:
        """What a running task's watched outputs gained since last time."""
        if not run.running:
            return
        for remote, offset, length in self._watch_growth(run):
            with open(os.path.join(run.sandbox, remote), "rb") as f:
                f.seek(offset)
                data = f.read(length)
            run.watched[remote] = offset + len(data)
            self.send(m.Update(run.spec.task_id, remote, offset, len(data)).encode() + data)

    def _drop(self, task_id: int) -> None:
        """The manager is done with a task: stop it if it runs, free what it holds."""
        run = self.tasks.pop(task_id, None)
        if run is None:
            return
        if run.running and run.interp is not None:
            interp = run.interp
            self.watcher.unregister(interp.sock)
            interp.stop()
            run.done = True
        elif run.running:
            kill_process(run)
            if run.pidfd >= 0:
                self.watcher.unregister(run.pidfd)
            reap(run, time.time(), block=True)
        if run.coprocess is not None and self.w.coprocesses is not None:
            self.w.coprocesses.release(task_id)
            run.coprocess = None
        for fd in (run.output_fd, run.result_fd):
            if fd >= 0:
                os.close(fd)
        run.output_fd = run.result_fd = -1
        if run.sandbox:
            self.finished.append(run)

    def _clean_finished(self) -> None:
        """End what is left of finished tasks' processes, then keep their sandboxes for
        later tasks or remove them (see ``_recycle``)."""
        self._end_exited()
        runs = [r for r in self.finished if r.sandbox and not r.running]
        self.finished.clear()
        if not runs:
            return
        escapes = self.w.escapes
        self._scan_escapees()
        for run in runs:
            if not run.sandbox:  # listed twice (ended, then killed)
                continue
            self._remove_inputs(run)
            self.sandboxes.recycle(run.sandbox,
                                   escapes.clean_since(run.epoch) and not self._left_behind(run))
            run.sandbox = ""

    def _remove_inputs(self, run: TaskRun) -> None:
        """Inputs we placed are removed by name, so the sandbox can usually be reused."""
        if run.inputs_removed:
            return
        run.inputs_removed = True
        for _cache, remote, _flags in run.spec.inputs:
            if remote not in run.memory_inputs:
                remove_tree(os.path.join(run.sandbox, remote))

    def _free_space(self) -> None:
        """Before a task starts, the files finished tasks left are removed, so their space
        is free for it.  The inputs we placed are unlinked by name; a sandbox then empty
        holds no space, and is tidied (kept or removed) once the new task has started, off
        its path; one holding anything else is tidied now, its processes ended first."""
        for run in self.finished:
            if run.sandbox and not run.running:
                self._remove_inputs(run)
                if not is_empty_dir(run.sandbox):
                    self._clean_finished()
                    return

    # -- teardown ---------------------------------------------------------------------------------

    def _teardown(self) -> None:
        self.rejoin.goodbye()  # our manager then takes the tasks back at once
        try:
            self.flush()
        except OSError:
            pass
        now = time.time()
        self._do(self.core.handle(ws.KillRequested(-1), now), now)
        self._end_exited()
        self._clean_finished()
        self.launcher.stop()
        self.sandboxes.clear()
        for pid in list(self.escapees):
            self._unwatch_escapee(pid)
        self.incoming.close()
        try:
            self.watcher.close()
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.cache.clear()


@dataclass(slots=True)
class _Escapee:
    """A process that outlived its task, watched through its pidfd."""

    pid: int
    fd: int
