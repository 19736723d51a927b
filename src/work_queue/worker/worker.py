"""The worker process: connect to a manager, serve it, reconnect when it goes away.

Theory of operation
-------------------
:meth:`Worker.run` connects (with exponential backoff between ``min_backoff`` and
``max_backoff``), then runs one :class:`Session` per connection.  A session:

* authenticates (if ``--password``) and sends the protocol-11 handshake;
* loops on a watcher (work_queue.events) of the manager socket and one pidfd per running task;
* handles manager messages (task blocks, ``put``/``dir`` into the cache, ``get``, ``kill``,
  ``send_results``, ``release``/``exit``...);
* starts waiting tasks whenever their resources fit (cores, memory, disk, gpus);
* announces finished tasks with ``available_results`` and streams them on ``send_results``.

When the manager disconnects, every task is killed and the cache is emptied (it belongs to
that manager); the worker then reconnects, unless ``--single-shot`` or an idle timeout ended it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import platform
import random
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ..constants import (
    WORK_QUEUE_PROTOCOL_VERSION,
    WORK_QUEUE_RESULT_INPUT_MISSING,
    WORK_QUEUE_RESULT_SIGNAL,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_WATCH,
)
from ..core import worker_state as ws
from ..core.worker_state import WorkerLimits, WorkerState
from ..errors import AuthenticationError, RemoteProtocolError
from ..events import ReadWatcher, read_ready
from ..protocol import auth, extensions
from ..protocol import messages as m
from ..protocol.reader import NEED_DATA, Chunk, manager_stream_reader
from ..protocol.urlcodec import url_encode
from ..tls import client_context
from ..version import __version__
from . import probe
from .cache import Cache, LazyObject
from .coprocess import CoprocessPool
from .executor import (
    EscapeWatch,
    TaskRun,
    TaskSpec,
    child_pids,
    disk_full,
    end_process_group,
    finish_warm_run,
    kill_process,
    make_spare_output_files,
    output_file,
    read_output,
    reap,
    remove_tree,
    start_process,
)
from .pyexec import (
    TASKS_PER_INTERPRETER,
    WarmInterpreter,
    make_coprocess_request,
    make_request,
)
from .task_monitor import RM_MONITOR_ERROR, TaskMonitor

logger = logging.getLogger(__name__)

#: Seconds the worker waits for the manager's next message before tidying up after tasks
#: (ending their process groups, removing their sandboxes).
HOUSEKEEPING_DELAY = 0.002

#: Empty sandboxes made ahead of time, while the worker waits, for the next tasks.
SPARE_SANDBOXES = 4

#: Seconds between looks for ended processes that outlived their tasks, while there are any.
ESCAPEE_POLL = 0.1

# How a session ended (the core decides IDLED_OUT and WALL_TIME)
RELEASED, EXITED, LOST = "released", "exit", "lost"
IDLED_OUT, WALL_TIME = ws.IDLED_OUT, ws.WALL_TIME


@dataclass
class WorkerConfig:
    """Settings of one worker process (the command-line flags)."""

    host: str = "localhost"
    port: int = 9123
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    idle_timeout: float = 900.0
    connect_timeout: float = 900.0
    single_shot: bool = False
    workdir: str | None = None
    wall_time: float = 0.0
    password: bytes | None = None
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    features: list[str] = field(default_factory=list)
    os_name: str = field(default_factory=platform.system)
    arch: str = field(default_factory=platform.machine)
    io_timeout: float = 3600.0
    ssl: bool = False
    #: --from-factory: the factory that started this worker (sent as ``info from-factory``)
    factory_name: str | None = None
    #: -M: find managers whose project matches this regex through the catalog (issue 5)
    manager_name: str | None = None
    catalogs: str | None = None
    connection_mode: str | None = None
    #: run PythonTasks in warm interpreters (announced as a feature)
    warm_python: bool = True
    #: coprocess command for RemoteTasks, instances, and per-coprocess resources
    coprocess: str | None = None
    coprocesses_total: int = 0
    coprocess_cores: int = -1
    coprocess_memory: int = -1
    coprocess_disk: int = -1
    coprocess_gpus: int = -1
    watch_interval: float = 1.0


class Worker:
    """A worker serving managers until it is told to exit or times out."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        base = config.workdir or _default_tmp()
        self.workspace = tempfile.mkdtemp(prefix=f"worker-{os.getuid()}-{os.getpid()}-",
                                          dir=base)
        self.start_time = time.time()
        self.end_time = self.start_time + config.wall_time if config.wall_time > 0 else 0.0
        gpus, gpu_name = probe.detect_gpus() if config.gpus is None else (config.gpus, None)
        self.cores = config.cores if config.cores is not None else probe.detect_cores()
        self.memory = config.memory if config.memory is not None else probe.detect_memory()
        disk = probe.detect_disk(self.workspace)
        self.disk = min(config.disk, disk) if config.disk is not None else disk
        self.gpus = gpus
        self.features = list(config.features)
        if gpu_name:
            self.features.append(gpu_name)
        self.hostname = _host_name()
        self.warm_python = config.warm_python and _warm_python()
        self.coprocesses: CoprocessPool | None = None
        if config.coprocess:
            instances = config.coprocesses_total or int(self.cores) or 1
            self.coprocesses = CoprocessPool(config.coprocess, instances, self.workspace)
            self.features.append(self.coprocesses.feature)
        self.last_task_id = 0
        #: processes that outlived their tasks (decides which sandboxes may be reused)
        self.escapes = EscapeWatch()

    def describe(self) -> str:
        return (f"using {self.cores} cores, {self.memory} MB memory, {self.disk} MB disk, "
                f"{self.gpus} gpus")

    def run(self) -> int:
        """Serve managers; returns the process exit code."""
        cfg = self.config
        print(f"work_queue_worker: creating workspace {self.workspace}", file=sys.stderr)
        print(f"work_queue_worker: {self.describe()}", file=sys.stderr)
        try:
            backoff = cfg.min_backoff
            last_success = time.time()
            while True:
                if self.end_time and time.time() >= self.end_time:
                    return 0
                sock = self._connect()
                if sock is None:
                    if time.time() - last_success > cfg.connect_timeout:
                        logger.info("could not connect for %.0f s; exiting",
                                    cfg.connect_timeout)
                        return 0
                    time.sleep(backoff)
                    backoff = min(cfg.max_backoff, backoff * 2)
                    continue
                backoff = cfg.min_backoff
                outcome = Session(self, sock).run()
                last_success = time.time()
                logger.info("session ended: %s", outcome)
                if outcome in (EXITED, IDLED_OUT, WALL_TIME) or cfg.single_shot:
                    return 0
                if outcome == LOST:
                    time.sleep(min(5.0, cfg.max_backoff))
        except KeyboardInterrupt:
            return 0
        finally:
            if self.coprocesses is not None:
                self.coprocesses.stop()
            shutil.rmtree(self.workspace, ignore_errors=True)

    def _connect(self) -> socket.socket | None:
        use_ssl = self.config.ssl
        if self.config.manager_name:  # issue 5: -M, a manager found through the catalog
            if not hasattr(self, "_finder"):
                from ..catalog.finder import ManagerFinder

                self._finder = ManagerFinder(self.config.manager_name, self.config.catalogs,
                                             self.config.connection_mode)
            found = self._finder.connect()
            if found is None:
                return None
            sock, self.config.host, self.config.port, record_ssl = found
            use_ssl = use_ssl or record_ssl
        else:
            try:
                sock = socket.create_connection((self.config.host, self.config.port),
                                                timeout=15)
            except OSError as e:
                logger.info("cannot connect to %s:%d: %s", self.config.host, self.config.port,
                            e)
                return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if use_ssl:
            try:
                sock = client_context().wrap_socket(sock, server_hostname=self.config.host)
            except (OSError, ValueError) as e:
                logger.warning("TLS handshake with %s failed: %s", self.config.host, e)
                sock.close()
                return None
        return sock


class Session:
    """One connection to a manager."""

    def __init__(self, worker: Worker, sock: socket.socket) -> None:
        self.w = worker
        self.cfg = worker.config
        self.sock = sock
        self.reader = manager_stream_reader(blocks=True)
        self.out = bytearray()
        buf = bytearray(1 << 20)
        self._recv_buffer = (buf, memoryview(buf))
        self.cache = Cache(os.path.join(worker.workspace, "cache"))
        #: the tasks the worker holds (what the core decides about them is in ``core``)
        self.tasks: dict[int, TaskRun] = {}
        pool = worker.coprocesses
        self.core = WorkerState(
            WorkerLimits(worker.cores, worker.memory, worker.disk, worker.gpus,
                         self.cfg.idle_timeout, worker.end_time,
                         pool.feature if pool is not None else "",
                         len(pool.instances) if pool is not None else 0),
            time.time())
        self.pending_task: TaskSpec | None = None
        self.dir_stack: list[str] = []
        self.sink: object | None = None
        self.sink_path = ""
        self.debug = logger.isEnabledFor(logging.DEBUG)
        #: The manager confirmed extensions.ENCODED_NAMES: names in replies are url-encoded.
        self.encoded_names = False
        self.last_watch = 0.0
        self.watcher = ReadWatcher()
        self.outcome: str | None = None
        #: Directories that could not be removed at once (something still wrote into them),
        #: tried again when the worker has a moment.  No task ever uses them again.
        self.trash: list[str] = []
        #: Tasks the manager is done with (killed after their result), and tasks that ended
        #: (their outputs are in the cache): their sandboxes are removed before the next task
        #: starts (so their space is free for it), or when the worker has a moment.
        self.finished: list[TaskRun] = []
        #: Tasks whose process ended and was reported, their process group not yet ended.
        self.exited: list[TaskRun] = []
        #: Output files of reported tasks, closed at the next housekeeping.
        self.unclosed: list[int] = []
        #: Empty sandboxes for the next tasks: kept from earlier tasks that left no process
        #: behind (see ``_clean_finished``), or made ahead of time.
        self.free_sandboxes: list[str] = []
        #: Tasks started since the loop last looked.
        self.started = 0
        #: Sandboxes ``s.<n>`` made so far (the next name).
        self.sandboxes_made = 0
        self.idle_interpreters: list[WarmInterpreter] = []
        self.base_env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        self.env_cache: dict[tuple[Any, ...], dict[str, str]] = {}
        #: pidfds of the processes that outlived their tasks, watched to reap them
        self.escapees: dict[int, _Escapee] = {}

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
            if self.cfg.password is not None:
                self._authenticate()
            self.sock.setblocking(False)
            self._handshake()
            logger.debug("connected to manager %s:%d", self.cfg.host, self.cfg.port)
            self.flush()
            self.watcher.register(self.sock, None)
            self._loop()
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
        password = self.cfg.password
        buf = self.reader._buffer  # bytes after the exchange stay for the protocol reader
        self.sock.settimeout(30)

        def readline() -> bytes:
            while (line := buf.maybe_next_line()) is None:
                data = self.sock.recv(4096)
                if not data:
                    raise AuthenticationError("manager closed the connection during auth")
                buf.feed(data)
            return line

        auth.run_blocking(auth.PasswordExchange(password, initiator=True),
                          self.sock.sendall, readline)

    def _handshake(self) -> None:
        w = self.w
        ident = hashlib.md5(f"{os.getpid()},{os.getppid()},{random.random()}".encode())
        lines = [
            m.Hello(WORK_QUEUE_PROTOCOL_VERSION, w.hostname, self.cfg.os_name, self.cfg.arch,
                    __version__).encode(),
            m.Info("worker-id", "worker-" + ident.hexdigest()).encode(),
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
                run.forced_status = ins.forced_status  # type: ignore[union-attr]
                kill_process(run)
            elif kind is ws.SendUpdates:
                self._send_updates(self.tasks[ins.task_id])  # type: ignore[union-attr]
            elif kind is ws.EndSession:
                self.send(ins.message.encode())  # type: ignore[union-attr]
                self.flush()
                self.outcome = ins.outcome  # type: ignore[union-attr]

    def _housekeeping(self, now: float) -> None:
        """Tidy up after finished tasks and prepare for the next ones."""
        self._clean_finished()
        make_spare_output_files()
        self._make_spare_sandboxes()
        if len(self.escapees) < len(self.w.escapes.seen):
            self._scan_escapees()  # reaps those that ended
        if self.trash and (len(self.trash) > 256 or not self.core.waiting):
            self._empty_trash(now)

    def _end_exited(self) -> None:
        for run in self.exited:
            end_process_group(run)
        self.exited.clear()
        for fd in self.unclosed:
            os.close(fd)
        self.unclosed.clear()

    def _make_sandbox(self, spec: TaskSpec) -> str:
        """An empty directory for the task: ``<workspace>/t.<taskid>`` for a task run by a
        coprocess, as in CCTools (coprocesses, Parsl's among them, look for a task's files
        there); for any other task an empty one kept or made ahead of time, else a new one.

        A kept sandbox is checked to be still empty (a task never sees a file it was not
        given); one that is not is removed.  The sandboxes of finished tasks are empty or
        gone by now (``_start`` calls ``_free_space`` first)."""
        if not spec.coprocess or spec.coprocess == extensions.PYTHON_WARM:
            while self.free_sandboxes:
                path = self.free_sandboxes.pop()
                if _is_empty_dir(path):
                    return path
                self._discard(path)
            path = self._sandbox_name()
        else:
            path = f"{self.w.workspace}/t.{spec.task_id}"
            if any(old.sandbox == path for old in self.finished):
                # The same task again: its old sandbox goes first (after what is left of
                # the processes that might still write into it).
                self._clean_finished()
        try:
            os.mkdir(path)
        except OSError:
            self._discard(path)
            os.mkdir(path)
        return path

    def _make_spare_sandboxes(self) -> None:
        """Make the next tasks' sandboxes while the worker has a moment (off their path)."""
        while len(self.free_sandboxes) < SPARE_SANDBOXES:
            path = self._sandbox_name()
            try:
                os.mkdir(path)
            except OSError:
                return
            self.free_sandboxes.append(path)

    def _sandbox_name(self) -> str:
        """A new name ``<workspace>/s.<n>`` for a sandbox not tied to a task id."""
        self.sandboxes_made += 1
        return f"{self.w.workspace}/s.{self.sandboxes_made}"

    def _recycle(self, run: TaskRun, safe: bool) -> None:
        """Keep the empty sandbox of a finished task for a later task (creating and deleting
        a directory costs as much as starting a short task), if ``safe``: no process the
        task started can still be running (one that escaped its task, with ``setsid`` say,
        may still have the sandbox as its working directory and write into it: that sandbox
        is removed, and a removed directory takes no new files).  Anything else is removed
        now, files and all, so its space is free for the next task.  A kept one is never
        named ``t.<taskid>``, a name a coprocess task may need."""
        sandbox = run.sandbox
        if safe and len(self.free_sandboxes) < 64 and _is_empty_dir(sandbox):
            if os.path.basename(sandbox).startswith("t."):
                kept = self._sandbox_name()
                try:
                    os.rename(sandbox, kept)
                except OSError:
                    self._discard(sandbox)
                    return
                sandbox = kept
            self.free_sandboxes.append(sandbox)
        else:
            self._discard(sandbox)

    def _known_children(self) -> set[int]:
        """The processes the worker started and reaps itself (tasks, interpreters,
        coprocesses): any other child is a process that outlived its task."""
        known = {r.pid for r in self.tasks.values() if r.pid > 0 and (r.running or r.unreaped)}
        known.update(r.pid for r in self.exited if r.unreaped)
        known.update(i.pid for i in self.idle_interpreters)
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

    def _discard(self, path: str) -> None:
        """Remove a used sandbox now, files and all.  What cannot be removed at once (a
        process the task left behind still writes into it) is renamed out of the way, so a
        name like ``t.<taskid>`` is free again, and tried again later from the trash."""
        remove_tree(path)
        if not os.path.lexists(path):
            return
        away = self._sandbox_name() + ".old"
        try:
            os.rename(path, away)
            path = away
        except OSError:
            pass
        self.trash.append(path)

    def _empty_trash(self, now: float) -> None:
        """Delete old sandboxes, for at most a few milliseconds unless there are many."""
        deadline = now + (0.5 if len(self.trash) > 256 else 0.002)
        while self.trash:
            path = self.trash.pop()
            if path not in (r.sandbox for r in self.tasks.values()):
                remove_tree(path)
            if time.time() > deadline:
                break

    def _next_timeout(self, now: float) -> float:
        timeout = self.core.timeout(now)
        for run in self.tasks.values():
            if run.running:
                if run.pidfd < 0:
                    timeout = min(timeout, 0.01)
                if run.watched:
                    timeout = min(timeout, self.cfg.watch_interval)
                if run.monitor is not None:
                    timeout = min(timeout, run.monitor.next_time() - now)
        return max(0.0, timeout)

    def _receive(self) -> None:
        buf, view = self._recv_buffer
        # A small object is collected from the chunks: those must be copies.
        left = -1 if isinstance(self.sink, _SmallObject) else self.reader.streamed_left
        data = read_ready(self.sock, buf, view, left)
        if data is None:
            return
        if not data:
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
                self._on_chunk(ev)
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
        if self.dir_stack:
            self._dir_line(msg)
            return
        if isinstance(msg, m.TaskStart):
            self.pending_task = TaskSpec(msg.task_id)
        elif isinstance(msg, m.Put):
            if msg.length <= self.cache.SMALL_LIMIT:
                self.sink = _SmallObject(self.cache, msg.name, msg.mode)
                self.cache.path(msg.name)  # refuse names that would leave the cache
            else:
                self._open_sink(self.cache.path(msg.name), msg.mode)
        elif isinstance(msg, m.Dir):
            path = self.cache.path(msg.name)
            remove_tree(path)
            os.makedirs(path)
            self.dir_stack.append(path)
        elif isinstance(msg, m.PutCmd):
            self.cache.lazy[msg.cachename] = LazyObject("cmd", msg.source, msg.mode)
        elif isinstance(msg, m.PutUrl):
            self.cache.lazy[msg.cachename] = LazyObject("url", msg.source, msg.mode)
        elif isinstance(msg, m.Get):
            self._send_output(msg.name)
        elif isinstance(msg, m.Unlink):
            self.cache.remove(msg.name)
        elif isinstance(msg, m.Kill):
            self._do(self.core.handle(ws.KillRequested(msg.task_id), time.time()), time.time())
        elif isinstance(msg, m.SendResults):
            self._do(self.core.handle(ws.ResultsRequested(), time.time()), time.time())
        elif isinstance(msg, m.Check):
            self.send(m.Alive().encode()
                      + m.Info("tasks_running", str(self.core.running_count())).encode())
        elif isinstance(msg, m.Release):
            self.outcome = RELEASED
        elif isinstance(msg, m.Exit):
            self.outcome = EXITED
        elif isinstance(msg, m.Feature):
            self.core.handle(ws.ExtensionConfirmed(msg.name), time.time())
            if msg.name == extensions.ENCODED_NAMES:
                self.encoded_names = True
        elif isinstance(msg, m.InvalidateFile | m.Tlq | m.Alive):
            pass
        elif isinstance(msg, m.AuthRequest):
            print("work_queue_worker: this manager requires a password", file=sys.stderr)
            self.outcome = EXITED if self.cfg.single_shot else LOST
        else:
            raise RemoteProtocolError(f"unexpected message from manager: {msg!r}")

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

    def _dir_line(self, msg: m.Message) -> None:
        top = self.dir_stack[-1]
        if isinstance(msg, m.End):
            self.dir_stack.pop()
        elif isinstance(msg, m.Put):
            self._open_sink(os.path.join(top, _entry_name(msg.name)), msg.mode)
        elif isinstance(msg, m.Dir):
            path = os.path.join(top, _entry_name(msg.name))
            os.makedirs(path, exist_ok=True)
            self.dir_stack.append(path)
        elif isinstance(msg, m.Symlink):
            os.symlink(msg.payload.decode("utf-8", "surrogateescape"),
                       os.path.join(top, _entry_name(msg.name)))
        else:
            raise RemoteProtocolError(f"unexpected line in directory: {msg!r}")

    def _open_sink(self, path: str, mode: int) -> None:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        remove_tree(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, (mode | 0o600) & 0o777)
        self.sink = os.fdopen(fd, "wb")
        self.sink_path = path

    def _on_chunk(self, chunk: Chunk) -> None:
        sink = self.sink
        if sink is None:
            raise RemoteProtocolError("file data without a put")
        if chunk.data:
            sink.write(chunk.data)  # type: ignore[attr-defined]
        if chunk.last:
            sink.close()  # type: ignore[attr-defined]
            self.sink = None

    # -- tasks ------------------------------------------------------------------------------------

    def _start(self, run: TaskRun, now: float) -> None:
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
        # A Python task in a warm interpreter gets its function and arguments from memory.
        in_memory = set(spec.command.split()[1:4]) if warm else set()
        for cachename, remote, _flags in spec.inputs:
            try:
                if remote in in_memory and cachename in self.cache.small:
                    run.memory_inputs[remote] = self.cache.small[cachename][0]
                    continue
                if cachename in self.cache.lazy:
                    size, usec, error = self.cache.materialize(cachename)
                    if error is not None:
                        data = error.encode()
                        self.send(f"cache-invalid {cachename} {len(data)}\n".encode() + data)
                        raise FileNotFoundError(error)
                    self.send(m.CacheUpdate(cachename, size, usec).encode())
                self.cache.place(cachename, os.path.join(run.sandbox, remote))
            except (OSError, ValueError) as e:
                logger.warning("task %d: input %s missing: %s", spec.task_id, remote, e)
                self._not_started(run, WORK_QUEUE_RESULT_INPUT_MISSING, 1, now)
                return
        env = self._task_env(spec, run)
        if run.coprocess is not None:
            self._start_coprocess_call(run, now)
        elif not (warm and self._start_warm(run, env, now)):
            for remote, data in run.memory_inputs.items():
                with open(os.path.join(run.sandbox, remote), "wb") as f:
                    f.write(data)
            try:
                start_process(run, env, now)
            except OSError as e:
                # Reported as a shell would report a command it cannot run (exit code 127).
                logger.warning("task %d: cannot start it: %s", spec.task_id, e)
                if run.output_fd >= 0:
                    os.write(run.output_fd, f"work_queue_worker: cannot start the task: {e}\n"
                             .encode())
                run.start = run.finish = now
                self._not_started(run, WORK_QUEUE_RESULT_SUCCESS, 127, now)
                return
            if spec.monitor is not None and run.pid > 0:
                try:
                    run.monitor = TaskMonitor(spec.monitor, run.pid, run.sandbox,
                                              spec.command, now)
                except (OSError, ValueError, TypeError) as e:
                    logger.warning("task %d: cannot monitor it: %s", spec.task_id, e)
        if self.debug:
            logger.debug("started task %d (pid %d): %s", spec.task_id, run.pid, spec.command)
        for _cache, remote, flags in spec.outputs:
            if flags & WORK_QUEUE_WATCH:
                run.watched[remote] = 0
        if run.pidfd >= 0:
            self.watcher.register(run.pidfd, spec.task_id)

    def _task_env(self, spec: TaskSpec, run: TaskRun) -> dict[str, str]:
        """The environment of a task (kept: tasks that look alike in the same sandbox share
        one; it is only read)."""
        key = (tuple(spec.env), run.cores, run.memory, run.disk, run.gpus, run.sandbox)
        env = self.env_cache.get(key)
        if env is not None:
            return env
        env = dict(self.base_env)
        for name, value in spec.env:
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        # As the CCTools worker does: the worker's workspace, shared by its tasks (PythonTask
        # environments are unpacked there once, for every task).  The task's own sandbox is
        # its working directory.
        env.setdefault("WORK_QUEUE_SANDBOX", self.w.workspace)
        if run.cores > 0:
            cores = str(int(run.cores))
            for var in ("CORES", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                        "VECLIB_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
                env[var] = cores
        env["MEMORY"] = str(int(run.memory))
        env["DISK"] = str(int(run.disk))
        if run.gpus > 0:
            env["GPUS"] = str(int(run.gpus))
        # Temporary files of the task stay in (and are deleted with) its sandbox.
        env["TMPDIR"] = env["TEMP"] = env["TMP"] = run.sandbox
        if len(self.env_cache) > 256:
            self.env_cache.clear()
        self.env_cache[key] = env
        return env

    def _start_warm(self, run: TaskRun, env: dict[str, str], now: float) -> bool:
        """Hand a Python task to a warm interpreter; False if it must run the usual way."""
        argv = run.spec.command.split()[1:]
        if len(argv) < 4:
            return False
        request = make_request(run.sandbox, env, argv, run.memory_inputs.get(argv[1]),
                               run.memory_inputs.get(argv[2]))
        if request is None:
            return False
        run.result_name = argv[3]
        return self._run_in_interpreter(run, request, now)

    def _run_in_interpreter(self, run: TaskRun, request: bytes, now: float) -> bool:
        """Hand ``request`` to an idle (or new) warm interpreter; False if that failed."""
        interp = self.idle_interpreters.pop() if self.idle_interpreters else WarmInterpreter()
        run.output_fd = output_file()
        run.result_fd = output_file()
        try:
            interp.start(run.spec.task_id, request, run.output_fd, run.result_fd)
        except OSError:
            interp.stop()
            for fd in (run.output_fd, run.result_fd):
                os.close(fd)
            run.output_fd = run.result_fd = -1
            return False
        run.interp = interp
        run.pid = interp.pid
        run.start = now
        self.watcher.register(interp.sock, interp)
        return True

    def _start_coprocess_call(self, run: TaskRun, now: float) -> None:
        """A RemoteTask: a warm interpreter calls the coprocess; the answer is the output."""
        path = os.path.join(run.sandbox, "infile")
        try:
            with open(path, "rb") as f:
                payload = f.read()
        except OSError:
            payload = b"{}"
        timeout = run.spec.wall_time if run.spec.wall_time > 0 else 3600.0
        request = make_coprocess_request(run.sandbox, run.coprocess.port, run.spec.command,
                                         run.spec.task_id, payload, timeout)
        if request is None or not self._run_in_interpreter(run, request, now):
            if self.w.coprocesses is not None:
                self.w.coprocesses.release(run.spec.task_id)
            run.coprocess = None
            self._not_started(run, WORK_QUEUE_RESULT_INPUT_MISSING, 1, now)

    def _interpreter_answered(self, interp: WarmInterpreter) -> None:
        task_id = interp.task_id
        self.watcher.unregister(interp.sock)
        code = interp.read_reply()
        status = interp.reap() if code is None else 0
        run = self.tasks.get(task_id)
        if code is not None and interp.served < TASKS_PER_INTERPRETER:
            self.idle_interpreters.append(interp)
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
        code = self._finish_monitor(run) if run.monitor is not None else None
        event = ws.TaskExited(run.spec.task_id, run.status, run.exit_code, full, code)
        self._do(self.core.handle(event, run.finish), run.finish)
        if self.core.push_results:
            self.flush()
        self._keep_outputs(run)
        # Its outputs are in the cache: the sandbox is no longer needed (removed before the
        # next task starts, or when the worker has a moment).
        self.finished.append(run)

    def _keep_outputs(self, run: TaskRun) -> None:
        """Move declared outputs from the sandbox into the cache."""
        for cachename, remote, _flags in run.spec.outputs:
            if remote == run.result_name:
                data = read_output(run.result_fd)
                run.result_fd = -1
                if data:
                    self.cache.store(cachename, data)
                continue
            src = os.path.join(run.sandbox, remote)
            if os.path.lexists(src):
                dst = self.cache.path(cachename)
                remove_tree(dst)
                try:
                    os.rename(src, dst)
                except OSError:
                    try:
                        if os.path.isdir(src):
                            shutil.copytree(src, dst, symlinks=True)
                        else:
                            shutil.copy2(src, dst)
                    except OSError as e:
                        logger.warning("cannot keep output %s: %s", remote, e)

    def _finish_monitor(self, run: TaskRun) -> int:
        """Write the task's summary; returns resource_monitor's exit code (the core makes
        it the task's)."""
        signal_number = run.exit_code if run.status == WORK_QUEUE_RESULT_SIGNAL else 0
        exit_code = 0 if signal_number else run.exit_code
        try:
            code, run.summary = run.monitor.finish(run.finish or time.time(), run.rusage,
                                                   exit_code, signal_number)
        except Exception as e:  # a failed measurement must not lose the task
            logger.warning("task %d: monitoring failed: %s", run.spec.task_id, e)
            code = RM_MONITOR_ERROR
        run.monitor = None
        return code

    def _check_tasks(self, now: float) -> None:
        for run in list(self.tasks.values()):
            if not run.running:
                continue
            if run.pidfd < 0 and run.interp is None and reap(run, now):
                self._task_done(run)
                continue
            spec = run.spec
            if run.monitor is not None and run.monitor.due(now):
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
            self._recycle(run, escapes.clean_since(run.epoch) and not self._left_behind(run))
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
                if not _is_empty_dir(run.sandbox):
                    self._clean_finished()
                    return

    # -- outputs ----------------------------------------------------------------------------------

    def _send_output(self, name: str) -> None:
        small = self.cache.small.get(name)
        if small is not None:
            self.send(f"file {self._wire(name)} {len(small[0])}\n".encode() + small[0] + b"end\n")
            return
        try:
            path = self.cache.path(name)
        except ValueError:
            self.send(f"missing {self._wire(name)} 22\n".encode() + b"end\n")
            return
        self._stream_item(name, path)
        self.send(b"end\n")

    def _wire(self, name: str) -> str:
        """``name`` as a reply carries it: url-encoded once the manager confirmed
        extensions.ENCODED_NAMES, else as it is (CCTools)."""
        return url_encode(name) if self.encoded_names else name

    def _stream_item(self, name: str, path: str, top: bool = True) -> None:
        """Send one output (``top``) or one entry of an output directory.

        Only regular files and directories are sent.  Anything else (a FIFO, a socket, a
        device) is never opened (opening a FIFO blocks until someone writes to it, and the
        worker with it): as an output it is reported missing at once (the manager returns the
        task with OUTPUT_MISSING); inside an output directory it is skipped, as the CCTools
        worker skips unusual files there, and the rest of the directory comes back.
        """
        if not top and not self.encoded_names and ("\n" in name or "\r" in name):
            # A CCTools manager reads names to the end of the line: this entry cannot go (the
            # requested name itself came in a line, so it holds no line break).
            logger.warning("skipping %r in an output directory: this manager cannot take a "
                           "name with a line break", name)
            return
        try:
            if os.path.islink(path):
                # Never follow a link out of the workspace: a task must not exfiltrate files.
                real = os.path.realpath(path)
                if not real.startswith(self.w.workspace + os.sep):
                    self.send(f"missing {self._wire(name)} 13\n".encode())
                    return
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                self.send(f"dir {self._wire(name)} 0\n".encode())
                for entry in sorted(os.listdir(path)):
                    self._stream_item(f"{name}/{entry}", os.path.join(path, entry), top=False)
                return
            if not stat.S_ISREG(st.st_mode):
                self._unusual_output(name, top)
                return
            # O_NONBLOCK: should a FIFO replace the file in between, the open does not block.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    self._unusual_output(name, top)
                    return
                size = st.st_size
                self.send(f"file {self._wire(name)} {size}\n".encode())
                self.flush()
                if size:
                    self.sock.settimeout(self.cfg.io_timeout)
                    try:
                        self.sock.sendfile(f, 0, size)
                    finally:
                        self.sock.setblocking(False)
        except FileNotFoundError:
            self.send(f"missing {self._wire(name)} 2\n".encode())
        except OSError as e:
            self.send(f"missing {self._wire(name)} {e.errno or 5}\n".encode())

    def _unusual_output(self, name: str, top: bool) -> None:
        """An output that is neither a regular file nor a directory: missing as an output,
        skipped inside an output directory."""
        if top:
            logger.warning("output %s is not a regular file or a directory", name)
            self.send(f"missing {self._wire(name)} {errno.EINVAL}\n".encode())
        else:
            logger.info("skipping %s in an output directory: not a regular file or a "
                        "directory", name)

    # -- teardown ---------------------------------------------------------------------------------

    def _teardown(self) -> None:
        try:
            self.flush()
        except OSError:
            pass
        now = time.time()
        self._do(self.core.handle(ws.KillRequested(-1), now), now)
        self._end_exited()
        self._clean_finished()
        for interp in self.idle_interpreters:
            interp.stop()
        self.idle_interpreters.clear()
        for path in self.trash + self.free_sandboxes:
            remove_tree(path)
        self.trash.clear()
        self.free_sandboxes.clear()
        for pid in list(self.escapees):
            self._unwatch_escapee(pid)
        if self.sink is not None:
            try:
                self.sink.close()  # type: ignore[attr-defined]
            except OSError:
                pass
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


class _SmallObject:
    """Sink of a small ``put``: the bytes go to the in-memory cache, not to a file."""

    def __init__(self, cache: Cache, name: str, mode: int) -> None:
        self.cache, self.name, self.mode = cache, name, mode
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.cache.store(self.name, b"".join(self.parts), self.mode)


def _warm_python() -> bool:
    """Whether warm interpreters can run Python tasks here (they need cloudpickle)."""
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        return False
    return hasattr(socket, "send_fds") and hasattr(os, "posix_spawn")


def _is_empty_dir(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _entry_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise RemoteProtocolError(f"bad directory entry name {name!r}")
    return name


def _host_name() -> str:
    """This host's name as CCTools reports it: the fully qualified name, unless that is only
    localhost, then the machine's own name."""
    name = socket.getfqdn() or ""
    if not name or name.startswith("localhost") or name.startswith("127."):
        name = socket.gethostname() or name
    return name or "unknown"


def _default_tmp() -> str:
    for var in ("CCTOOLS_TEMP", "_CONDOR_SCRATCH_DIR", "TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(var)
        if value and os.path.isdir(value) and os.access(value, os.W_OK):
            return value
    return "/tmp"
