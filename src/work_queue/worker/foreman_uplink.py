"""One connection of a foreman to its manager: the worker protocol upward, each task handed
to the foreman's queue (see ``foreman.py`` for the whole picture).

What the manager sends and what the foreman does with it:

* ``put``/``dir``/``puturl``/``putcmd``: into the foreman's cache (``Incoming``, as a worker
  does, except that every object is a file: the foreman's queue sends inputs by path);
* a task block: a downstream task whose inputs are the cached objects at their paths (a
  ``puturl``/``putcmd`` object is made first, once), whose outputs are fetched into the cache
  under the names the manager will ``get``, with the block's resources, environment,
  category, end and wall times;
* ``get``: the object from the cache (``Outgoing``), as a worker sends an output;
* ``kill N``: the downstream task is cancelled (``kill -1``: all of them);
* ``unlink``, ``invalidate-file``: the object leaves the cache, and the foreman's workers
  forget their copies of it;
* ``check``: ``alive`` and the resources; ``send_results``: the results not yet sent, then
  ``end``; ``release``/``exit``: the session ends (``exit`` also stops the foreman's idle
  workers, as CCTools' foreman broadcasts it).

A finished downstream task becomes a ``result`` line with its status, exit code, output and
execution time, announced with ``available_results`` (or pushed, with our manager).  When the
connection ends, the downstream tasks of this connection are cancelled and the foreman's
workers forget the cached inputs: the next manager's files may differ under the same names.

With our manager the foreman takes ``wq-py-resume`` as our worker does (docs/protocol-resume.md;
the link of a foreman is the wide-area one, where connections reset): when the connection
drops while it holds tasks, they go on downstream, their results are kept, and the foreman
comes back with its token (``_come_back``).  Taken back, it delivers what it holds and goes
on; refused, or past the grace time, the session ends as above.
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
from typing import TYPE_CHECKING, Any

from ..constants import (
    WORK_QUEUE_CACHE,
    WORK_QUEUE_FAILURE_ONLY,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_PROTOCOL_VERSION,
    WORK_QUEUE_RESULT_INPUT_MISSING,
    WORK_QUEUE_SUCCESS_ONLY,
)
from ..core.worker_state import COPROCESS_PREFIX
from ..errors import AuthenticationError, RemoteProtocolError
from ..events import read_ready
from ..manager.task import Task
from ..protocol import extensions
from ..protocol import messages as m
from ..protocol.reader import NEED_DATA, Chunk, manager_stream_reader
from ..version import __version__
from . import login
from .cache import Cache, LazyObject
from .executor import TaskSpec, remove_tree
from .rejoin import claim
from .transfers import Incoming, Outgoing

if TYPE_CHECKING:
    from .foreman import Aggregate, Foreman

logger = logging.getLogger(__name__)

# How a connection ended (the same words as a worker's session)
RELEASED, EXITED, LOST, IDLED_OUT = "released", "exit", "lost", "idle"

#: What the foreman announces of our extensions: results pushed as tasks end, output names
#: url-encoded, and coming back for its tasks when the connection drops.  (Not prefetch: a
#: task beyond its free resources would wait in the foreman's queue anyway; not the native
#: monitor or warm Python: its workers decide those.)
FOREMAN_EXTENSIONS = (extensions.PUSH_RESULTS, extensions.ENCODED_NAMES, extensions.RESUME)

#: The figures of its queue a foreman sends with each resource update, as CCTools' foreman
#: does (send_stats_update); a CCTools manager adds them up in ``stats_hierarchy``.
FOREMAN_STATS = (
    "workers_joined", "workers_removed", "workers_released", "workers_idled_out",
    "workers_fast_aborted", "workers_blacklisted", "workers_lost", "tasks_waiting",
    "tasks_on_workers", "tasks_running", "tasks_with_results", "time_send", "time_receive",
    "time_send_good", "time_receive_good", "time_workers_execute",
    "time_workers_execute_good", "time_workers_execute_exhaustion", "bytes_sent",
    "bytes_received")

_OUTPUT_FLAGS = WORK_QUEUE_CACHE | WORK_QUEUE_FAILURE_ONLY | WORK_QUEUE_SUCCESS_ONLY


class _FileCache(Cache):
    """A cache whose objects are all files: the foreman's queue sends inputs by path."""

    SMALL_LIMIT = -1


class Uplink:
    """One connection to a manager: tasks go to the foreman's queue, results come back."""

    def __init__(self, foreman: Foreman, sock: socket.socket) -> None:
        self.fm = foreman
        self.cfg = foreman.config
        self.queue = foreman.queue
        self.sock = sock
        self.reader = manager_stream_reader(blocks=True)
        self.out = bytearray()
        buf = bytearray(1 << 20)
        self._recv_buffer = (buf, memoryview(buf))
        self.cache = _FileCache(os.path.join(foreman.workspace, "cache"))
        self.incoming = Incoming(self.cache)
        self.outgoing = Outgoing(self.cache, foreman.workspace, sock, self.cfg.io_timeout,
                                 self.send, self.flush, self.cfg.bandwidth)
        #: a task block being read line by line (it did not arrive all at once)
        self.pending_task: TaskSpec | None = None
        #: the manager's task id -> its task in the foreman's queue, and back
        self.tasks: dict[int, Task] = {}
        self.upstream_of: dict[int, int] = {}
        #: finished tasks whose ``result`` the manager has not had yet, by the manager's id
        self.results: dict[int, bytes] = {}
        self.announced = False
        self.push = False
        #: results went up in this pass: the queue's figures follow them
        self.stats_due = False
        #: cache paths declared to the foreman's workers as cached inputs
        self.cached_inputs: set[str] = set()
        self.reported: Aggregate | None = None
        self.last_task_id = 0
        self.last_activity = time.time()
        self.outcome: str | None = None
        #: wq-py-resume: the session's token and grace time ("": none), the worker id the
        #: handshake gave, whether the connection is down now, and the results sent that the
        #: manager has not yet ended with a ``kill`` (they go again after a drop)
        self.token = ""
        self.grace = 0.0
        self.worker_id = ""
        self.away = False
        self.delivered: dict[int, bytes] = {}
        self._handlers = self._message_handlers()

    # -- I/O --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out += data

    def flush(self) -> None:
        if not self.out:
            return
        data = bytes(self.out)
        self.out.clear()
        try:
            sent = self.sock.send(data)
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
            self.flush()
            logger.debug("foreman connected to manager %s:%d", self.cfg.host, self.cfg.port)
            while True:
                try:
                    self._loop()
                except OSError as e:
                    if not self._resumable():
                        raise
                    logger.warning("connection to the manager failed: %s", e)
                    self.outcome = LOST
                if not (self.outcome == LOST and self._resumable() and self._come_back()):
                    break
                self.outcome = None
        except (OSError, RemoteProtocolError, AuthenticationError) as e:
            logger.warning("connection to manager failed: %s", e)
            print(f"work_queue_worker: {e}", file=sys.stderr)
            self.outcome = self.outcome or LOST
        finally:
            self._teardown()
        return self.outcome or LOST

    def _authenticate(self) -> None:
        """The blocking password exchange right after connecting (as the worker's)."""
        assert self.cfg.password is not None
        self.sock.settimeout(30)
        # bytes after the exchange stay for the protocol reader
        login.authenticate(self.sock, self.cfg.password, self.reader._buffer)

    def _handshake(self) -> None:
        """As a worker's, with the operating system ``foreman`` (a CCTools manager then
        gives the connection its foreman timeouts)."""
        fm = self.fm
        ident = hashlib.md5(f"{os.getpid()},{os.getppid()},{random.random()}".encode())
        self.worker_id = "foreman-" + ident.hexdigest()
        lines = [
            m.Hello(WORK_QUEUE_PROTOCOL_VERSION, fm.hostname, "foreman", self.cfg.arch,
                    __version__).encode(),
            m.Info("worker-id", self.worker_id).encode(),
        ]
        if self.cfg.factory_name:
            lines.append(m.Info("from-factory", self.cfg.factory_name).encode())
        lines += [m.Feature(f).encode() for f in fm.features]
        lines += [m.Feature(f).encode() for f in FOREMAN_EXTENSIONS]
        self.send(b"".join(lines))
        self._send_resources()
        self.send(m.Info("worker-end-time", str(int(fm.end_time))).encode())

    def _send_resources(self) -> None:
        """``alive``, the resources of the foreman's workers (see ``Foreman.aggregate``),
        then any feature a new worker brought."""
        agg = self.fm.aggregate()
        old = self.reported
        self.reported = agg
        lines = [m.Feature(f).encode()
                 for f in sorted(agg.features - (old.features if old else frozenset()))]
        lines.append(m.Alive().encode())
        if agg.coprocess is not None:  # its workers' coprocesses serve RemoteTasks
            cores, memory, disk, gpus = agg.coprocess
            lines += [m.ResourceReport("coprocess_" + name, total, 0, largest).encode()
                      for name, (total, largest) in (("disk", disk), ("memory", memory),
                                                     ("gpus", gpus), ("cores", cores))]
        lines += [
            m.ResourceReport("workers", agg.workers, 0, 1 if agg.workers else 0).encode(),
            # disk: the foreman's own (CCTools' foreman: measure_worker_resources)
            m.ResourceReport("disk", int(self.fm.disk), 0, agg.disk[1]).encode(),
            m.ResourceReport("memory", *_total_smallest_largest(agg.memory)).encode(),
            m.ResourceReport("gpus", *_total_smallest_largest(agg.gpus)).encode(),
            m.ResourceReport("cores", *_total_smallest_largest(agg.cores)).encode(),
            m.ResourceReport("tag", self.last_task_id).encode(),
            m.Info("end_of_resource_update", "0").encode(),
        ]
        self.send(b"".join(lines))
        self._send_stats()

    def _send_stats(self) -> None:
        """The figures of the foreman's queue (with each resource update and after results,
        as CCTools' foreman sends them)."""
        stats = self.queue.stats
        self.send(b"".join(m.Info(name, str(int(getattr(stats, name, 0)))).encode()
                           for name in FOREMAN_STATS))

    # -- main loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        poller, longest = self.fm.poller(self.sock.fileno())
        while self.outcome is None:
            now = time.time()
            timeout = longest
            if not self.tasks and self.cfg.idle_timeout > 0:
                timeout = min(timeout, self.last_activity + self.cfg.idle_timeout - now)
            ready = poller.poll(max(0.0, timeout) * 1000)
            if any(fd == self.sock.fileno() for fd, _ in ready) or self._tls_pending():
                self._receive()
            if self.outcome is None:
                self._collect()
                if self.fm.aggregate() != self.reported:
                    self._send_resources()  # a worker of the foreman came or went
                elif self.stats_due:
                    self._send_stats()  # once per pass that sent results
                self.stats_due = False
                self._check_idle(time.time())
            self.flush()

    def _tls_pending(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0

    def _check_idle(self, now: float) -> None:
        if self.tasks:
            self.last_activity = now
        elif self.cfg.idle_timeout > 0 and now - self.last_activity >= self.cfg.idle_timeout:
            logger.info("no task for %.0f s; disconnecting", self.cfg.idle_timeout)
            self.send(m.Info("idle-disconnecting", str(int(self.cfg.idle_timeout))).encode())
            self.outcome = IDLED_OUT

    def _receive(self) -> None:
        buf, view = self._recv_buffer
        left = -1 if self.incoming.wants_copies else self.reader.streamed_left
        data = read_ready(self.sock, buf, view, left)
        if data is None:
            return
        if not data:
            self.outcome = LOST
            return
        self.last_activity = time.time()
        self.reader.feed(data)  # type: ignore[arg-type]
        self._process()

    def _process(self) -> None:
        """Act on every whole message the reader holds."""
        while self.outcome is None:
            ev = self.reader.next_event()
            if ev is NEED_DATA:
                break
            if isinstance(ev, TaskSpec):
                self._on_task(ev)
            elif isinstance(ev, Chunk):
                self.incoming.chunk(ev)
            else:
                self._on_message(ev)  # type: ignore[arg-type]

    def _on_message(self, msg: m.Message) -> None:
        spec = self.pending_task
        if spec is not None:
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

        def stop(outcome: str) -> Callable[[m.Message], None]:
            return lambda msg: setattr(self, "outcome", outcome)

        return {
            m.TaskStart: lambda msg: setattr(self, "pending_task", TaskSpec(msg.task_id)),
            m.Put: incoming.put,
            m.Dir: incoming.directory,
            m.PutCmd: lambda msg: cache.lazy.__setitem__(
                msg.cachename, LazyObject("cmd", msg.source, msg.mode)),
            m.PutUrl: lambda msg: cache.lazy.__setitem__(
                msg.cachename, LazyObject("url", msg.source, msg.mode)),
            m.Get: lambda msg: self.outgoing.send_output(msg.name),
            m.Unlink: lambda msg: self._forget(msg.name),
            m.InvalidateFile: lambda msg: self._forget(msg.name),
            m.Kill: lambda msg: self._kill(msg.task_id),
            m.SendResults: lambda msg: self._send_results(),
            m.Check: lambda msg: self._send_resources(),
            m.Release: stop(RELEASED),
            m.Exit: stop(EXITED),
            m.Feature: self._on_feature,
            m.ResumeToken: self._on_token,
            m.Tlq: ignore, m.Alive: ignore,
            m.AuthRequest: self._on_auth_request,
        }

    def _on_feature(self, msg: m.Feature) -> None:
        if msg.name == extensions.PUSH_RESULTS:
            self.push = True
        elif msg.name == extensions.ENCODED_NAMES:
            self.outgoing.encoded_names = True

    def _on_token(self, msg: m.ResumeToken) -> None:
        self.token, self.grace = msg.token, float(msg.grace)

    def _on_auth_request(self, msg: m.AuthRequest) -> None:
        print("work_queue_worker: this manager requires a password", file=sys.stderr)
        self.outcome = EXITED if self.cfg.single_shot else LOST

    # -- tasks ------------------------------------------------------------------------------------

    def _on_task(self, spec: TaskSpec) -> None:
        """A task from the manager becomes a task of the foreman's queue."""
        self.last_task_id = max(self.last_task_id, spec.task_id)
        if spec.task_id in self.tasks:
            self._kill(spec.task_id)  # the same id again: the old one is gone
        try:
            task = self._downstream_task(spec)
        except (OSError, ValueError) as e:
            logger.warning("task %d: input missing: %s", spec.task_id, e)
            self._finished(spec.task_id, WORK_QUEUE_RESULT_INPUT_MISSING, 1, b"", 0)
            return
        self.queue.submit(task)
        self.tasks[spec.task_id] = task
        self.upstream_of[task.id] = spec.task_id

    def _downstream_task(self, spec: TaskSpec) -> Task:
        t = Task(spec.command)
        t.specify_category(spec.category)
        if spec.coprocess:
            # the line names the feature (``wq_worker_coprocess:NAME``); the task, the NAME
            name = spec.coprocess
            t.specify_coprocess(name[len(COPROCESS_PREFIX):]
                                if name.startswith(COPROCESS_PREFIX) else name)
        for name in ("cores", "memory", "disk", "gpus"):
            value = getattr(spec, name)
            if value >= 0:
                getattr(t, f"specify_{name}")(value)
        if spec.wall_time > 0:
            t.specify_running_time_max(spec.wall_time)
        if spec.end_time > 0:
            t.specify_end_time(spec.end_time * 1e6)
        for name, value in spec.env:
            t.specify_environment_variable(name, value)
        for name in spec.empty_dirs:
            t.specify_directory(self.fm.empty_dir, name, WORK_QUEUE_INPUT)
        for cachename, remote, flags in spec.inputs:
            path = self._input_path(cachename)
            flags &= WORK_QUEUE_CACHE
            if os.path.isdir(path):
                t.specify_directory(path, remote, WORK_QUEUE_INPUT, flags, recursive=True)
            else:
                t.specify_input_file(path, remote, flags)
            if flags:
                self.cached_inputs.add(path)
        for cachename, remote, flags in spec.outputs:
            path = self.cache.path(cachename)
            remove_tree(path)  # what an earlier run left under this name
            t.specify_output_file(path, remote, flags & _OUTPUT_FLAGS)
        return t

    def _input_path(self, cachename: str) -> str:
        """The cache path of an input; a ``puturl``/``putcmd`` object is made first (and the
        manager told, as a worker tells it).  Raises OSError when it cannot be had."""
        cache = self.cache
        if cachename in cache.lazy:
            size, usec, error = cache.materialize(cachename)
            if error is not None:
                data = error.encode()
                self.send(m.CacheInvalid(cachename, len(data)).encode() + data)
                raise FileNotFoundError(error)
            self.send(m.CacheUpdate(cachename, size, usec).encode())
        path = cache.path(cachename)
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{cachename} is not in the foreman's cache")
        return path

    def _collect(self) -> None:
        """Results of the tasks the foreman's queue returned."""
        for task in self.fm.finished_tasks():
            upstream = self.upstream_of.pop(task.id, None)
            if upstream is None:
                continue  # cancelled, or of an earlier connection
            # The raw bytes of the output (``output`` is its decoded text).
            output = bytes(task._output)
            self._finished(upstream, task.result, task.return_status, output,
                           int(getattr(task, "cmd_execution_time", 0)))

    def _finished(self, upstream: int, status: int, exit_code: int, output: bytes,
                  usec: int) -> None:
        result = m.Result(status, exit_code, len(output), usec, upstream).encode() + output
        self._hand_over(upstream, result)

    def _hand_over(self, upstream: int, result: bytes) -> None:
        """A result goes out: pushed, or announced and kept for ``send_results``; while the
        connection is down, kept."""
        if self.push and not self.away:
            self._deliver(upstream, result)
            return
        self.results[upstream] = result
        if not self.announced and not self.away:
            self.announced = True
            self.send(m.AvailableResults().encode())

    def _deliver(self, upstream: int, result: bytes) -> None:
        """Send a result; with a token keep it until the manager's ``kill`` ends the task
        (it may not arrive if the connection drops now)."""
        self.tasks.pop(upstream, None)
        self.send(result)
        if self.token:
            self.delivered[upstream] = result
        self.stats_due = True

    def _send_results(self) -> None:
        for upstream, result in self.results.items():
            self._deliver(upstream, result)
        self.results.clear()
        self.announced = False
        self.send(m.End().encode())

    def _kill(self, upstream: int) -> None:
        """The manager is done with a task (or cancelled it): cancel it downstream."""
        if upstream < 0:
            for task_id in list(self.tasks):
                self._kill(task_id)
            return
        task = self.tasks.pop(upstream, None)
        self.results.pop(upstream, None)
        self.delivered.pop(upstream, None)
        if task is not None and self.upstream_of.pop(task.id, None) is not None:
            self.queue.cancel_by_taskid(task.id)

    def _forget(self, cachename: str) -> None:
        """An object leaves the cache; the foreman's workers forget their copies."""
        path = self.cache.path(cachename)
        self.cache.remove(cachename)
        if path in self.cached_inputs:
            self.cached_inputs.discard(path)
            self.queue.invalidate_cache_file(path)

    # -- coming back after the connection dropped (wq-py-resume) ---------------------------------

    def _resumable(self) -> bool:
        return bool(self.token) and bool(self.tasks or self.results or self.delivered)

    def held(self) -> dict[int, str]:
        """What the foreman holds, for ``wq-py-resume``: the manager's task id -> its state."""
        held = dict.fromkeys(self.tasks, "running")
        held.update(dict.fromkeys(self.results, "finished"))
        held.update(dict.fromkeys(self.delivered, "finished"))
        return held

    def _come_back(self) -> bool:
        """The connection dropped: keep the downstream tasks going and connect again (at
        once, then with the worker's backoff) until the manager takes the session back
        (True) or refuses it, the grace time is over or the foreman's own time ends (False).
        """
        cfg, fm = self.cfg, self.fm
        logger.warning("connection to the manager lost; keeping %d task(s) and coming back "
                       "for them (for up to %g s)", len(self.held()), self.grace)
        partial = self._drop_connection()
        away_since = next_try = time.time()
        backoff = max(0.1, min(1.0, cfg.min_backoff))
        poller, longest = fm.poller(None)
        try:
            while True:
                self._collect()  # results are kept while away
                now = time.time()
                if now - away_since > self.grace or (fm.end_time and now >= fm.end_time):
                    logger.warning("could not reach the manager again in time; dropping "
                                   "the tasks")
                    return False
                if now >= next_try:
                    came_back = self._try_claim(partial, away_since)
                    if came_back is not None:
                        return came_back
                    next_try = now + backoff
                    backoff = min(max(cfg.max_backoff, 0.1), backoff * 2)
                poller.poll(max(0.0, min(longest, next_try - time.time())) * 1000)
        finally:
            self.away = False

    def _drop_connection(self) -> str | None:
        """Close the dead connection; returns the cache name of an object cut short."""
        self.away = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.out.clear()
        self.pending_task = None
        self.announced = False
        # Sent before the drop, maybe never arrived: they go again (the manager takes each
        # result once).
        self.results.update(self.delivered)
        self.delivered.clear()
        return self.incoming.abandon()

    def _try_claim(self, partial: str | None, away_since: float) -> bool | None:
        """One attempt to come back: True taken back, False refused (the session ends),
        None to try again later."""
        sock = self.fm._connect()
        if sock is None:
            return None
        try:
            reply, reader = claim(sock, self.cfg.password, self.token, self.worker_id,
                                  self.held())
        except OSError as e:  # the link broke again, or no answer in time
            sock.close()
            logger.info("resume attempt failed: %s", e)
            return None
        except (RemoteProtocolError, AuthenticationError) as e:
            sock.close()
            logger.warning("the manager did not take the session back (%s)", e)
            return False
        if isinstance(reply, m.ResumeRefused):
            sock.close()
            print(f"work_queue_worker: the manager refused to resume the session "
                  f"({reply.reason}); dropping its tasks", file=sys.stderr)
            return False
        assert isinstance(reply, m.Resumed)
        logger.warning("back with the manager after %.1f s: it kept %d task(s)",
                       time.time() - away_since, reply.kept)
        sock.setblocking(False)
        self.sock = self.outgoing.sock = sock
        self.reader = reader
        self.away = False
        self.last_activity = time.time()
        if partial is not None:
            self.send(self.incoming.forget_cut_short(partial))
        self._process()  # what came with the answer: kills of tasks no longer ours
        held, self.results = self.results, {}
        for upstream, result in held.items():
            self._hand_over(upstream, result)
        self.flush()
        return True

    # -- teardown ---------------------------------------------------------------------------------

    def _teardown(self) -> None:
        try:
            if self.token and self.outcome != LOST:
                # Ending on purpose with the connection up: the manager need not wait for
                # this foreman to come back for its tasks.
                self.send(m.Leaving().encode())
            self.flush()
        except OSError:
            pass
        self._kill(-1)
        if self.outcome == EXITED:
            self.queue.shutdown_workers(0)  # as CCTools' foreman passes ``exit`` on
        for path in self.cached_inputs:
            self.queue.invalidate_cache_file(path)
        self.cached_inputs.clear()
        self.incoming.close()
        try:
            self.sock.close()
        except OSError:
            pass
        self.cache.clear()


def _total_smallest_largest(pair: tuple[int, int]) -> tuple[int, int, int]:
    """A resource line's numbers; smallest is 0, as CCTools' aggregate makes it (its sums
    start from zeroed records)."""
    return pair[0], 0, pair[1]
