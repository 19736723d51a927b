"""What the manager does with each message from a worker: turn it into a core event, or
read an output into place (a part of ``WorkQueue``)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..constants import (
    WORK_QUEUE_PROTOCOL_VERSION,
    WORK_QUEUE_RESULT_OUTPUT_MISSING,
    WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR,
    WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION,
)
from ..core import events as ev
from ..core import instructions as ins
from ..core import task_state as ts
from ..core.manager_state import ManagerState
from ..core.scheduling import WorkerRecord
from ..errors import RemoteProtocolError
from ..protocol import extensions
from ..protocol import messages as m
from ..protocol.reader import Chunk
from ..protocol.urlcodec import url_decode
from . import monitoring, status
from .connection import (
    FileOutput,
    MemoryOutput,
    StagedDirectory,
    WorkerConnection,
    ensure_parent,
    local_output_path,
)
from .conversation import OutputReply
from .resume import ResumeShell, new_token
from .task import Task

logger = logging.getLogger("work_queue.manager.queue")  # one name users filter on

#: What a connection may send before its worker handshake: the handshake, status requests.
_BEFORE_HANDSHAKE = (m.Hello, m.StatusRequest, m.HttpGet, m.NameQuery, m.Alive, m.Resume)
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
        if w is None and isinstance(msg, m.Resume):
            return True  # its size is bounded by its reader (MAX_RESUME_PAYLOAD)
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

class Receiver:
    """The part of WorkQueue that handles workers' messages (a mixin)."""

    # Set by WorkQueue.__init__; declared for readers and type checkers.
    _state: ManagerState

    def _on_message(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        """Hand ``msg`` to its handler (a table: one lookup per message)."""
        if conn.worker is None and not isinstance(msg, _BEFORE_HANDSHAKE):
            raise RemoteProtocolError(f"{type(msg).__name__} before the handshake")
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            raise RemoteProtocolError(f"unexpected message {msg!r}")
        handler(self, conn, msg, now)

    def _on_available_results(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        if conn.talk.ask_results():
            conn.write(_SEND_RESULTS)

    def _on_alive(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        pass

    def _on_monitor_summary(self, conn: WorkerConnection, msg: m.MonitorSummary,
                            now: float) -> None:
        w = conn.worker
        task = w.tasks.get(msg.task_id) if w is not None else None
        if task is not None and task._monitor_mode == "native":
            task._summary_text = msg.payload.decode("utf-8", "replace")

    def _on_feature(self, conn: WorkerConnection, msg: m.Feature, now: float) -> None:
        w = _worker_of(conn, "feature")
        if msg.name == extensions.RESUME:
            # The token of this worker's session (the core decides whether it is offered).
            self._carry_out(self._state.handle(ev.FeatureReported(w, msg.name, new_token()),
                                               now))
            return
        self._state.handle(ev.FeatureReported(w, msg.name), now)
        if msg.name in (extensions.PUSH_RESULTS, extensions.ENCODED_NAMES):
            conn.write(m.Feature(msg.name).encode())  # confirmed

    def _on_cache_update(self, conn: WorkerConnection, msg: m.CacheUpdate, now: float) -> None:
        self._state.note_cached(_worker_of(conn, "cache-update"), msg.cachename, msg.size)

    def _on_cache_invalid(self, conn: WorkerConnection, msg: m.CacheInvalid,
                          now: float) -> None:
        w = _worker_of(conn, "cache-invalid")
        self._state.note_cached(w, msg.cachename, None)
        logger.warning("worker %s could not create %s: %s", w.hostname, msg.cachename,
                       msg.payload.decode("utf-8", "replace").strip())

    def _on_name_query(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        conn.write(f"{self._name or ''}\n".encode())

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

    def _on_resource(self, conn: WorkerConnection, msg: m.ResourceReport, now: float) -> None:
        w = _worker_of(conn, "resource report")
        self._carry_out(self._state.handle(
            ev.ResourcesReported(w, msg.name, msg.total, msg.largest), now))

    def _on_result(self, conn: WorkerConnection, msg: m.Result, now: float) -> None:
        w = conn.worker
        task = w.tasks.get(msg.task_id) if w is not None else None
        if task is None:
            return  # cancelled meanwhile: nothing to do
        codes = (monitoring.RM_OVERFLOW, monitoring.RM_TIME_EXPIRE) \
            if task._monitor_mode is not None else None
        # handle(ResultReceived(...)) without the record (ManagerState.result_received).
        out = self._state.result_received(
            w, msg.task_id, msg.status, msg.exit_code, msg.exec_time_usec,  # type: ignore
            msg.payload, codes, now)
        if out:
            self._carry_out(out)

    def _fetch_outputs(self, f: ins.FetchOutputs) -> None:
        """Carry out FetchOutputs: one ``get`` per output; the replies come back in order."""
        conn = self._conns.get(f.worker_key)
        if conn is not None and f.files:
            for spec in f.files:
                conn.write(m.Get(spec.cachename).encode())
            conn.talk.ask_outputs(f.task, f.files)
            return
        self._task_retrieved(conn, f.task, self._now())

    def _on_update(self, conn: WorkerConnection, msg: m.Update, now: float) -> None:
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

    def _on_end(self, conn: WorkerConnection, msg: m.Message, now: float) -> None:
        reply = conn.talk.reply_ended()
        if not isinstance(reply, OutputReply):
            return  # the end of the results
        task = reply.task
        staging, conn.talk.staging = conn.talk.staging, None
        if staging is not None:
            self._finish_staging(task, staging)
        if self._txn:
            self._txn.output_done(task, reply.spec, now)
        if reply.last and task.state == ts.WAITING_RETRIEVAL and task.worker_key == conn.key:
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

    def _on_get_item(self, conn: WorkerConnection, msg: m.FileItem | m.DirItem | m.MissingItem,
                     now: float) -> None:
        """One item of a ``get`` reply: a missing output, a directory, or a file whose data
        follows as chunks (read to nowhere when the task is no longer waiting for it)."""
        reply = conn.talk.current_output()
        task, spec = reply.task, reply.spec
        live = task.state == ts.WAITING_RETRIEVAL
        if isinstance(msg, m.MissingItem):
            if live:
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_MISSING)
            return
        w = conn.worker
        assert w is not None
        base = "" if spec.memory else spec.local_path(w.os, w.arch)
        name = url_decode(msg.name) if extensions.ENCODED_NAMES in w.features else msg.name
        path = local_output_path(base, spec.cachename, name)
        if isinstance(msg, m.DirItem):
            if live:
                self._make_output_dir(conn, task, base, path, msg.name)
            return
        self._open_output(conn, task, spec, path, msg.length, live)

    def _make_output_dir(self, conn: WorkerConnection, task: Task, base: str, path: str,
                         name: str) -> None:
        """A ``dir`` item: the output directory itself (staged beside its name) or one of
        its subdirectories."""
        staging = conn.talk.staging
        try:
            if path == base and staging is None:
                conn.talk.staging = StagedDirectory(base)
            elif staging is not None:
                os.makedirs(staging.path_for(path), exist_ok=True)
            else:
                raise RemoteProtocolError(f"worker sent {name!r} before its directory")
        except OSError as e:
            logger.warning("cannot create output directory %s: %s", path, e)
            self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
            if staging is not None:
                staging.failed = True

    def _open_output(self, conn: WorkerConnection, task: Task, spec: Any, path: str,
                     length: int, live: bool) -> None:
        """A ``file`` item: where its data chunks go (memory, or a file in place or in the
        staged directory)."""
        talk = conn.talk
        if talk.staging is not None:
            path = talk.staging.path_for(path)
        talk.sink = None
        if live and spec.memory:
            talk.sink = MemoryOutput(task, spec.remote_name, length)
        elif live:
            try:
                talk.sink = FileOutput(path)
            except OSError as e:
                logger.warning("cannot write output %s: %s", path, e)
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
        self._state.handle(ev.OutputBytesComing(task, length), 0.0)
        if self._txn:
            self._txn.output_bytes(task, length)

    def _on_chunk(self, conn: WorkerConnection, chunk: Chunk) -> None:
        talk = conn.talk
        sink = talk.sink
        if sink is not None:
            try:
                sink.write(chunk.data)
                if chunk.last:
                    talk.sink = None
                    sink.commit()
            except OSError as e:
                task = talk.current_output().task
                if talk.staging is not None:
                    talk.staging.failed = True
                logger.warning("writing output failed: %s", e)
                self._debug_msg(f"writing an output of task {task.id} failed: {e}")
                self._set_result(task, WORK_QUEUE_RESULT_OUTPUT_TRANSFER_ERROR)
                sink.abort()
                talk.sink = None

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
        out = self._state.outputs_fetched(task, self._now())  # handle(OutputsFetched(task))
        if out:
            self._carry_out(out)


    def _answer_status(self, conn: WorkerConnection, msg: m.StatusRequest | m.HttpGet,
                       now: float) -> None:
        if isinstance(msg, m.HttpGet):
            body = status.http_reply(self, msg.path, now)
        else:
            body = json.dumps(status.build(self, msg.kind, now),  # type: ignore[attr-defined]
                              separators=(",", ":")).encode()
        self._last_word(conn, body, "STATUS_WORKER")


def _worker_of(conn: WorkerConnection, what: str) -> WorkerRecord:
    """The connection's worker; a protocol error when ``what`` comes before the handshake."""
    if conn.worker is None:
        raise RemoteProtocolError(f"{what} before handshake")
    return conn.worker


#: ``send_results -1``, asked of a worker once per batch of its results.
_SEND_RESULTS = m.SendResults(-1).encode()

#: Message type -> handler.  Every handler takes (queue, connection, message, now).
_HANDLERS: dict[type, Any] = {
    m.Result: Receiver._on_result,
    m.End: Receiver._on_end,
    m.Info: Receiver._on_info,
    m.AvailableResults: Receiver._on_available_results,
    m.FileItem: Receiver._on_get_item,
    m.DirItem: Receiver._on_get_item,
    m.MissingItem: Receiver._on_get_item,
    m.Alive: Receiver._on_alive,
    m.ResourceReport: Receiver._on_resource,
    m.Update: Receiver._on_update,
    m.MonitorSummary: Receiver._on_monitor_summary,
    m.Hello: Receiver._on_hello,
    m.Feature: Receiver._on_feature,
    m.CacheUpdate: Receiver._on_cache_update,
    m.CacheInvalid: Receiver._on_cache_invalid,
    m.StatusRequest: Receiver._answer_status,
    m.HttpGet: Receiver._answer_status,
    m.NameQuery: Receiver._on_name_query,
    m.Resume: ResumeShell._on_resume,
    m.Leaving: ResumeShell._on_leaving,
}
