"""Carrying out the core's instructions: sending tasks, kill/unlink, fetching outputs,
dropping workers, and the transactions log's TASK lines (a part of ``WorkQueue``)."""

from __future__ import annotations

import logging
import time
from typing import Any

from ..core import events as ev
from ..core import instructions as ins
from ..core import task_state as ts
from ..core.manager_state import ManagerState
from ..core.scheduling import WorkerRecord
from ..protocol import extensions
from ..protocol import messages as m
from . import monitoring
from .task import Task
from .transfer import InputMissing, send_input

logger = logging.getLogger("work_queue.manager.queue")  # one name users filter on

class Dispatcher:
    """The part of WorkQueue that does what the core's instructions say (a mixin)."""

    # Set by WorkQueue.__init__; declared for readers and type checkers.
    _state: ManagerState


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
