"""What a worker decides, without doing any of it: the worker's pure core.

The worker process (``worker/session.py``) owns the sockets, the processes and the files; this
module owns the rules.  The session feeds it *events* (a task arrived, a task's process exited,
the manager asked for results, time passed) with the time ``now`` they happened, and carries out
the *instructions* it returns (start this task, kill that one, send this result, end the
session), in order.  No clock, socket or file is touched here, so every rule is tested in
milliseconds with a fake clock (tests/test_worker_core.py), ``validate()`` after each step.

A task's life on the worker::

    TaskReceived -> WAITING --(fits: StartTask)--> RUNNING --TaskExited--> FINISHED
                       |                               |                      |
                       +--(too big: FORSAKEN)----------+--TaskNotStarted------+
                                                                              v
                         (SendResult, pushed or on send_results)         REPORTED
    KillRequested removes a task in any state (DropTask: the session stops it if it runs).

The rules kept here: the resources a task is given (all of the worker's when it asks for
none); packing (a waiting task starts when its cores, memory, disk and gpus fit beside those of
the running tasks, in the order the tasks came); tasks larger than the worker, or asking for a
coprocess the worker does not have, come back FORSAKEN; wall-time and end-time kills; a failed
task whose sandbox filled its disk is DISK_ALLOC_FULL; the resource monitor's exit code replaces
the task's; results go out in the order the tasks came, pushed at once when the manager took the
``wq-py-push-results`` extension, else announced once with ``available_results``; the idle
timeout and the worker's own wall time end the session.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..constants import (
    WORK_QUEUE_RESULT_DISK_ALLOC_FULL,
    WORK_QUEUE_RESULT_FORSAKEN,
    WORK_QUEUE_RESULT_SIGNAL,
    WORK_QUEUE_RESULT_SUCCESS,
    WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME,
    WORK_QUEUE_RESULT_TASK_TIMEOUT,
    WORK_QUEUE_WATCH,
)
from ..protocol import extensions
from ..protocol import messages as m
from ..protocol.task_block import TaskSpec

# Where a task is in its life on the worker.
WAITING, RUNNING, FINISHED, REPORTED = "waiting", "running", "finished", "reported"

# How a session ends (decided here: idle timeout, the worker's wall time, --volatility).
IDLED_OUT, WALL_TIME, VOLATILE = "idle", "wall_time", "volatility"

#: Coprocess names that need an instance of the worker's own coprocess (``--coprocess``).
COPROCESS_PREFIX = "wq_worker_coprocess:"

#: The longest the session waits without looking at the time again.
MAX_WAIT = 5.0


@dataclass(slots=True)
class WorkerLimits:
    """What the worker has to give, and the settings that end a session."""

    cores: float
    memory: float
    disk: float
    gpus: float
    idle_timeout: float = 900.0
    #: the worker's own end (``--wall-time``), absolute; 0 = never
    end_time: float = 0.0
    #: the feature of the worker's coprocess (``--coprocess``), "" if none, and its instances
    coprocess: str = ""
    coprocess_instances: int = 0
    #: --volatility: the chance, at each check ``volatility_interval`` s apart, that the
    #: worker disconnects (CCTools checks once a minute; a testing aid)
    volatility: float = 0.0
    volatility_interval: float = 60.0


@dataclass(slots=True)
class TaskRecord:
    """What the core knows of one task: its allocation, where it is, how it ended."""

    task_id: int
    cores: float
    memory: float
    disk: float
    gpus: float
    wall_time: float
    end_time: float
    #: the worker coprocess the task needs ("" for none)
    coprocess: str
    #: the task has outputs whose growth is sent while it runs (WORK_QUEUE_WATCH)
    watched: bool
    state: str = WAITING
    started_at: float = 0.0
    finished_at: float = 0.0
    status: int = WORK_QUEUE_RESULT_SUCCESS
    exit_code: int = 0
    #: the result the worker forces when it kills the task (wall time, end time)
    forced_status: int | None = None

    @property
    def elapsed_usec(self) -> int:
        """Run time as the ``result`` line carries it (0 for a task that never ran)."""
        if not self.started_at:
            return 0
        return int(max(0.0, self.finished_at - self.started_at) * 1e6)


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskReceived:
    """The manager sent a task block."""

    spec: TaskSpec


@dataclass(frozen=True, slots=True)
class TaskExited:
    """A started task ended: its process (or its warm interpreter's call) returned.

    ``status``/``exit_code`` are as the process ended (a forced status already applied);
    ``disk_full`` says the session measured the sandbox full (asked only when
    ``may_be_disk_full``); ``monitor_code`` is the resource monitor's exit code, if measured."""

    task_id: int
    status: int
    exit_code: int
    disk_full: bool = False
    monitor_code: int | None = None


@dataclass(frozen=True, slots=True)
class TaskNotStarted:
    """The session could not start a task it was told to start (an input missing, the
    program not runnable, the coprocess call failed): it ends with this result unrun."""

    task_id: int
    status: int
    exit_code: int


@dataclass(frozen=True, slots=True)
class TaskDeferred:
    """The session could not get a coprocess instance for the task: it waits again."""

    task_id: int


@dataclass(frozen=True, slots=True)
class KillRequested:
    """The manager's ``kill <taskid>`` (-1: every task)."""

    task_id: int


@dataclass(frozen=True, slots=True)
class ResultsRequested:
    """The manager's ``send_results``."""


@dataclass(frozen=True, slots=True)
class OutputsGrew:
    """A watched output of a running task grew: the manager should come for it."""


@dataclass(frozen=True, slots=True)
class ManagerSpoke:
    """Bytes came from the manager (the session is not idle)."""


@dataclass(frozen=True, slots=True)
class ExtensionConfirmed:
    """The manager confirmed an extension the worker offered."""

    name: str


@dataclass(frozen=True, slots=True)
class ManagerLost:
    """The connection to the manager dropped, and the session waits to resume it
    (``wq-py-resume``): the tasks go on, their results wait, even those already sent (the
    manager may not have read them)."""


@dataclass(frozen=True, slots=True)
class ManagerBack:
    """The manager took the session back (``wq-py-resumed``): the results go out again."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The session's loop came round: start what fits, kill what ran out of time, end an
    idle session.  ``receiving``: the manager is in the middle of sending a file."""

    receiving: bool = False


Event = (TaskReceived | TaskExited | TaskNotStarted | TaskDeferred | KillRequested
         | ResultsRequested | OutputsGrew | ManagerSpoke | ExtensionConfirmed | ManagerLost
         | ManagerBack | Tick)


# -- instructions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTask:
    """Start this waiting task now (its resources are counted as used)."""

    task_id: int


@dataclass(frozen=True, slots=True)
class KillTask:
    """Kill this running task; its result will be ``forced_status``."""

    task_id: int
    forced_status: int


@dataclass(frozen=True, slots=True)
class DropTask:
    """The manager is done with this task: stop it if it runs, forget it, free its sandbox."""

    task_id: int


@dataclass(frozen=True, slots=True)
class SendResult:
    """Send the task's ``result`` (its output, its monitor summary)."""

    task_id: int
    status: int
    exit_code: int
    elapsed_usec: int


@dataclass(frozen=True, slots=True)
class SendUpdates:
    """Send what the task's watched outputs gained since last time."""

    task_id: int


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send this message as it is."""

    message: m.Message


@dataclass(frozen=True, slots=True)
class EndSession:
    """Say goodbye with ``message`` (if any) and end the session (``outcome``: why)."""

    outcome: str
    message: m.Message | None


Instruction = (StartTask | KillTask | DropTask | SendResult | SendUpdates | SendMessage
               | EndSession)


class WorkerState:
    """The decisions of one session with a manager (see the module's docstring)."""

    def __init__(self, limits: WorkerLimits, now: float) -> None:
        self.limits = limits
        #: every task the worker holds, in the order the manager sent them
        self.tasks: dict[int, TaskRecord] = {}
        #: ids of the WAITING tasks, in order
        self.waiting: list[int] = []
        #: resources of the RUNNING tasks, and their coprocess instances
        self.used_cores = self.used_memory = self.used_disk = self.used_gpus = 0.0
        self.used_coprocesses = 0
        #: ``available_results`` was sent and the manager has not asked for them yet
        self.results_announced = False
        #: the manager confirmed extensions.PUSH_RESULTS: results go out as tasks end
        self.push_results = False
        #: False while the connection to the manager is down and the session waits to
        #: resume it: results are kept, not sent
        self.connected = True
        self.last_activity = now
        #: when --volatility next rolls the dice
        self.next_volatility_check = now + limits.volatility_interval
        self._handlers = {
            TaskReceived: self._task_received, TaskExited: self._task_exited,
            TaskNotStarted: self._task_not_started, TaskDeferred: self._task_deferred,
            KillRequested: self._kill_requested, ResultsRequested: self._results_requested,
            OutputsGrew: self._outputs_grew, ManagerSpoke: self._manager_spoke,
            ExtensionConfirmed: self._extension_confirmed, ManagerLost: self._manager_lost,
            ManagerBack: self._manager_back, Tick: self._tick,
        }

    def handle(self, event: Event, now: float) -> list[Instruction]:
        """Take one event; return what the session must do, in order."""
        out: list[Instruction] = []
        self._handlers[type(event)](event, now, out)  # type: ignore[operator]
        return out

    # -- queries --------------------------------------------------------------------------------

    def running_count(self) -> int:
        return sum(1 for r in self.tasks.values() if r.state == RUNNING)

    def held(self) -> dict[int, str]:
        """What the worker holds, for ``wq-py-resume``: task id -> waiting, running or
        finished (a result sent or not)."""
        names = {WAITING: "waiting", RUNNING: "running", FINISHED: "finished",
                 REPORTED: "finished"}
        return {task_id: names[rec.state] for task_id, rec in self.tasks.items()}

    @staticmethod
    def may_be_disk_full(status: int, exit_code: int) -> bool:
        """Whether the session should measure the sandbox of a task that ended so: only a
        failed exit can be DISK_ALLOC_FULL."""
        return status == WORK_QUEUE_RESULT_SUCCESS and exit_code != 0

    def timeout(self, now: float) -> float:
        """Seconds until the next decision that depends on time alone (a kill, the idle
        timeout, the worker's end), at most MAX_WAIT."""
        timeout = MAX_WAIT
        for r in self.tasks.values():
            if r.state == RUNNING:
                if r.wall_time > 0:
                    timeout = min(timeout, r.started_at + r.wall_time - now)
                if r.end_time > 0:
                    timeout = min(timeout, r.end_time - now)
        if not self.tasks:
            timeout = min(timeout, self.last_activity + self.limits.idle_timeout - now + 0.01)
        if self.limits.end_time:
            timeout = min(timeout, self.limits.end_time - now)
        if self.limits.volatility:
            timeout = min(timeout, self.next_volatility_check - now)
        return max(0.0, timeout)

    # -- events ---------------------------------------------------------------------------------

    def _task_received(self, event: TaskReceived, now: float, out: list[Instruction]) -> None:
        spec = event.spec
        lim = self.limits
        if spec.cores < 0 and spec.memory < 0 and spec.disk < 0 and spec.gpus < 0:
            # A task that asks for nothing gets the whole worker, as in CCTools.
            cores, memory, disk, gpus = lim.cores, lim.memory, lim.disk, lim.gpus
        else:
            cores, memory = max(spec.cores, 0), max(spec.memory, 0)
            disk, gpus = max(spec.disk, 0), max(spec.gpus, 0)
        coprocess = spec.coprocess if spec.coprocess.startswith(COPROCESS_PREFIX) else ""
        watched = any(flags & WORK_QUEUE_WATCH for _c, _r, flags in spec.outputs)
        rec = TaskRecord(spec.task_id, cores, memory, disk, gpus, spec.wall_time,
                         spec.end_time, coprocess, watched)
        self.tasks[spec.task_id] = rec
        if cores > lim.cores or memory > lim.memory or disk > lim.disk or gpus > lim.gpus:
            self._finish(rec, WORK_QUEUE_RESULT_FORSAKEN, 0, out)
            return
        self.waiting.append(spec.task_id)
        if len(self.waiting) == 1:
            # Nothing else waits: start it now, before what came after its block is read.
            self._pack(now, out)

    def _task_exited(self, event: TaskExited, now: float, out: list[Instruction]) -> None:
        rec = self.tasks.get(event.task_id)
        if rec is None or rec.state != RUNNING:
            return
        self._release(rec)
        status, exit_code = event.status, event.exit_code
        if event.disk_full and self.may_be_disk_full(status, exit_code):
            # CCTools says DISK_ALLOC_FULL when a task outgrows its disk allocation; we also
            # say it when the task failed because the worker's file system filled up.
            status = WORK_QUEUE_RESULT_DISK_ALLOC_FULL
        if event.monitor_code is not None and rec.forced_status is None \
                and status in (WORK_QUEUE_RESULT_SUCCESS, WORK_QUEUE_RESULT_SIGNAL):
            # A monitored task exits as resource_monitor would: with the monitor's code.
            status, exit_code = WORK_QUEUE_RESULT_SUCCESS, event.monitor_code
        rec.finished_at = now
        self._finish(rec, status, exit_code, out)

    def _task_not_started(self, event: TaskNotStarted, now: float,
                          out: list[Instruction]) -> None:
        rec = self.tasks.get(event.task_id)
        if rec is None or rec.state != RUNNING:
            return
        self._release(rec)
        rec.finished_at = rec.started_at  # it never ran: no run time
        self._finish(rec, event.status, event.exit_code, out)

    def _task_deferred(self, event: TaskDeferred, now: float, out: list[Instruction]) -> None:
        rec = self.tasks.get(event.task_id)
        if rec is None or rec.state != RUNNING:
            return
        self._release(rec)
        rec.state, rec.started_at = WAITING, 0.0
        self.waiting.insert(0, rec.task_id)

    def _kill_requested(self, event: KillRequested, now: float, out: list[Instruction]) -> None:
        ids = list(self.tasks) if event.task_id < 0 else [event.task_id]
        for task_id in ids:
            rec = self.tasks.pop(task_id, None)
            if rec is None:
                continue
            if rec.state == RUNNING:
                self._release(rec)
            elif rec.state == WAITING:
                self.waiting.remove(task_id)
            out.append(DropTask(task_id))

    def _results_requested(self, event: ResultsRequested, now: float,
                           out: list[Instruction]) -> None:
        self.results_announced = False
        running = 0
        for rec in self.tasks.values():
            if rec.state == RUNNING:
                running += 1
                if rec.watched:
                    out.append(SendUpdates(rec.task_id))
            elif rec.state == FINISHED:
                out.append(self._result(rec))
        out.append(SendMessage(m.Info("tasks_running", str(running))))
        out.append(SendMessage(m.End()))

    def _outputs_grew(self, event: OutputsGrew, now: float, out: list[Instruction]) -> None:
        self._announce(out)

    def _manager_spoke(self, event: ManagerSpoke, now: float, out: list[Instruction]) -> None:
        self.last_activity = now

    def _extension_confirmed(self, event: ExtensionConfirmed, now: float,
                             out: list[Instruction]) -> None:
        if event.name == extensions.PUSH_RESULTS:
            self.push_results = True

    def _manager_lost(self, event: ManagerLost, now: float, out: list[Instruction]) -> None:
        self.connected = False
        self.results_announced = False
        for rec in self.tasks.values():
            if rec.state == REPORTED:
                rec.state = FINISHED  # it may never have arrived: sent again on return

    def _manager_back(self, event: ManagerBack, now: float, out: list[Instruction]) -> None:
        self.connected = True
        self.last_activity = now
        if any(rec.state == FINISHED for rec in self.tasks.values()):
            self._announce(out)

    def _tick(self, event: Tick, now: float, out: list[Instruction]) -> None:
        self._time_limits(now, out)
        self._pack(now, out)
        lim = self.limits
        if self.tasks or event.receiving:
            self.last_activity = now
        elif now - self.last_activity > lim.idle_timeout:
            out.append(EndSession(IDLED_OUT,
                                  m.Info("idle-disconnecting", str(int(lim.idle_timeout)))))
            return
        if lim.end_time and now >= lim.end_time:
            out.append(EndSession(WALL_TIME, m.Info("wall_time_exhausted", "0")))
        elif lim.volatility and now >= self.next_volatility_check and self.connected:
            # As CCTools: disconnect without a word, else look again an interval later.
            if random.random() < lim.volatility:
                out.append(EndSession(VOLATILE, None))
            self.next_volatility_check = now + lim.volatility_interval

    # -- rules ----------------------------------------------------------------------------------

    def _time_limits(self, now: float, out: list[Instruction]) -> None:
        """Kill running tasks past their wall time (MAX_RUN_TIME) or end time (TIMEOUT).
        Told again at every tick until the task is seen to exit."""
        for rec in self.tasks.values():
            if rec.state != RUNNING:
                continue
            if rec.wall_time > 0 and now >= rec.started_at + rec.wall_time:
                rec.forced_status = WORK_QUEUE_RESULT_TASK_MAX_RUN_TIME
            elif rec.end_time > 0 and now >= rec.end_time:
                rec.forced_status = WORK_QUEUE_RESULT_TASK_TIMEOUT
            else:
                continue
            out.append(KillTask(rec.task_id, rec.forced_status))

    def _fits(self, rec: TaskRecord) -> bool:
        lim = self.limits
        return (self.used_cores + rec.cores <= lim.cores
                and self.used_memory + rec.memory <= lim.memory
                and self.used_disk + rec.disk <= lim.disk
                and self.used_gpus + rec.gpus <= lim.gpus)

    def _pack(self, now: float, out: list[Instruction]) -> None:
        """Start the waiting tasks that fit, in the order they came."""
        if not self.waiting:
            return
        still: list[int] = []
        for task_id in self.waiting:
            rec = self.tasks[task_id]
            if not self._fits(rec):
                still.append(task_id)
                continue
            if rec.coprocess:
                if rec.coprocess != self.limits.coprocess:
                    self._finish(rec, WORK_QUEUE_RESULT_FORSAKEN, 0, out)
                    continue
                if self.used_coprocesses >= self.limits.coprocess_instances:
                    still.append(task_id)
                    continue
                self.used_coprocesses += 1
            rec.state, rec.started_at = RUNNING, now
            self._account(rec, 1.0)
            out.append(StartTask(task_id))
        self.waiting = still

    def _account(self, rec: TaskRecord, sign: float) -> None:
        self.used_cores += sign * rec.cores
        self.used_memory += sign * rec.memory
        self.used_disk += sign * rec.disk
        self.used_gpus += sign * rec.gpus

    def _release(self, rec: TaskRecord) -> None:
        """A running task no longer holds its resources."""
        self._account(rec, -1.0)
        if rec.coprocess:
            self.used_coprocesses -= 1

    def _finish(self, rec: TaskRecord, status: int, exit_code: int,
                out: list[Instruction]) -> None:
        rec.state, rec.status, rec.exit_code = FINISHED, status, exit_code
        self._announce(out)

    def _announce(self, out: list[Instruction]) -> None:
        """Tell the manager results are here: push them when it takes pushed results (and
        still announce while a running task's watched outputs may grow), else announce once
        until it asks.  Nothing while the connection is down (see ManagerLost)."""
        if not self.connected:
            return
        if self.push_results:
            for rec in self.tasks.values():
                if rec.state == FINISHED:
                    out.append(self._result(rec))
            if not any(r.watched for r in self.tasks.values() if r.state == RUNNING):
                return
        if not self.results_announced:
            self.results_announced = True
            out.append(SendMessage(m.AvailableResults()))

    @staticmethod
    def _result(rec: TaskRecord) -> SendResult:
        rec.state = REPORTED
        return SendResult(rec.task_id, rec.status, rec.exit_code, rec.elapsed_usec)

    # -- checks ---------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the invariants (tests call this after every event)."""
        waiting = [t for t, r in self.tasks.items() if r.state == WAITING]
        assert sorted(waiting) == sorted(self.waiting), (waiting, self.waiting)
        assert len(set(self.waiting)) == len(self.waiting)
        running = [r for r in self.tasks.values() if r.state == RUNNING]
        for name in ("cores", "memory", "disk", "gpus"):
            used = sum(getattr(r, name) for r in running)
            assert abs(used - getattr(self, "used_" + name)) < 1e-6, name
            assert used <= getattr(self.limits, name) + 1e-6, name
        assert self.used_coprocesses == sum(1 for r in running if r.coprocess)
        assert self.used_coprocesses <= max(self.limits.coprocess_instances, 0)
        assert self.connected or REPORTED not in {r.state for r in self.tasks.values()}
        for task_id, rec in self.tasks.items():
            assert rec.task_id == task_id
            assert rec.state in (WAITING, RUNNING, FINISHED, REPORTED), rec.state
            if rec.state in (FINISHED, REPORTED):
                assert rec.elapsed_usec >= 0
