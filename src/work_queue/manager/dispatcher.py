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
        # handle(TaskSent(...)) without the record (ManagerState.task_sent).
        out = self._state.task_sent(d, now, sent, send_usec, conn.address, cached, self._now())
        if out:
            self._carry_out(out)

    def _monitor_files(self, task: Task, worker: WorkerRecord) -> tuple[Any, ...]:
        """Decide how this attempt of ``task`` is monitored; the files that takes."""
        config = self._monitor
        if task._summary_text is not None:
            task._summary_text = None
        if config is None or task.coprocess:
            # Unmonitored: the class defaults, written only over another attempt's values
            # (a first write adds to the task's __dict__, ~0.1 us each).
            if task._monitor_mode is not None:
                task._monitor_mode = None
            if task._monitor_files:
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
        """The task block of this attempt (protocol/task_writer.py writes it).  A monitored
        task leaves its end and wall time to the monitor; ``fork``: run it in a warm Python
        interpreter of the worker."""
        mode = task._monitor_mode
        command = task.command
        monitor_request = None
        if mode == "wrapped":
            command = self._monitor.wrap(task, d.box)  # type: ignore[union-attr]
        elif mode == "native":
            monitor_request = self._monitor.native_request(task, d.box)  # type: ignore
        box = d.box
        writer = self._task_writer
        files = (*task.files, *task._monitor_files) if task._monitor_files else task.files
        return writer.block(
            task.id, command.encode(),
            writer.box_lines(task.category, box.cores, box.gpus, box.memory, box.disk),
            monitor=monitor_request,
            coprocess=extensions.PYTHON_WARM if fork else task.coprocess,
            end_time=task.end_time if mode is None else 0.0,
            wall_time=task.resources_requested.wall_time if mode is None else 0.0,
            env=task.env, files=files)

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
