"""What can happen to a manager: the events :meth:`ManagerState.handle` takes.

The shell (``manager/loop.py``) turns bytes from workers, calls of the application and the
passing of time into these records; the core answers each with a list of instructions
(``core/instructions.py``).  They are plain slotted records so that making one costs a few
hundred nanoseconds on the path of every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .scheduling import WorkerRecord


@dataclass(slots=True)
class TaskSubmitted:
    """The application submitted ``task`` (new, or finished and submitted again)."""

    task: Any


@dataclass(slots=True)
class TaskCancelled:
    """The application cancelled the task with this id (it may be anywhere, or gone)."""

    task_id: int


@dataclass(slots=True)
class TaskSent:
    """The shell sent the inputs and the task block of a ``SendTask`` instruction."""

    send: Any  # instructions.SendTask
    #: When the shell began sending it (seconds).
    started: float
    bytes_sent: int
    #: Microseconds spent sending (the ``time_send`` statistic).
    send_usec: int
    #: Address of the worker's connection (shown by the transactions log).
    address: str
    #: (cache name, size) of the cached inputs this send left at the worker.
    cached: list[tuple[str, int]]


@dataclass(slots=True)
class TaskInputMissing:
    """An input could not be read while sending the task of ``send`` (an
    instructions.SendTask): the task ends INPUT_MISSING."""

    send: Any
    reason: str
    #: Cached inputs sent before the missing one.
    cached: list[tuple[str, int]]


@dataclass(slots=True)
class WorkerConnected:
    """A worker completed its handshake (``workqueue`` line)."""

    worker: WorkerRecord


@dataclass(slots=True)
class ResourcesReported:
    """A ``resource`` line: ``name`` (cores, memory, ..., coprocess_*, or tag) and values."""

    worker: WorkerRecord
    name: str
    total: int
    largest: int


@dataclass(slots=True)
class WorkerInfo:
    """An ``info`` line the core acts on (worker-id, worker-end-time, tasks_running, ...)."""

    worker: WorkerRecord
    field: str
    value: str


@dataclass(slots=True)
class FeatureReported:
    """A ``feature`` line of a worker.  For ``wq-py-resume``, ``token`` is the unguessable
    token the shell drew for this worker's session (see WorkerResumed)."""

    worker: WorkerRecord
    name: str
    token: str = ""


@dataclass(slots=True)
class WorkerResumed:
    """A new connection (key ``conn_key``, from ``address``) opened with ``wq-py-resume``:
    it claims the session of ``token`` and ``worker_id``, and holds these tasks (task id ->
    waiting, running or finished).  It has authenticated again if the manager has a password.
    """

    conn_key: int
    address: str
    token: str
    worker_id: str
    held: dict[int, str]


@dataclass(slots=True)
class ResultReceived:
    """A ``result`` record: the worker says a task ended (its outputs are still there)."""

    worker: WorkerRecord
    task_id: int
    status: int
    exit_code: int
    exec_time_usec: int
    output: bytes
    #: The resource monitor's exit codes that turn a success into another result
    #: (``(overflow, time expired)``), or None when the task is not monitored.
    monitor_codes: tuple[int, int] | None = None


@dataclass(slots=True)
class OutputBytesComing:
    """A ``file`` reply of ``length`` bytes for an output of ``task`` is being read."""

    task: Any
    length: int


@dataclass(slots=True)
class OutputFailed:
    """An output of ``task`` is missing or could not be written: ``result`` says which."""

    task: Any
    result: int


@dataclass(slots=True)
class OutputsFetched:
    """Every output of ``task`` was asked for and its reply ended."""

    task: Any


@dataclass(slots=True)
class WorkerGone:
    """The connection of worker ``key`` is closed.

    ``reason`` is the transactions log's (FAILURE, IDLE_OUT, FAST_ABORT, EXPLICIT, ...);
    ``lost`` says whether the tasks on it count a lost worker in a row (its connection died),
    ``released`` whether the manager let it go on purpose (``workers_released``), ``ended``
    whether the worker closed its end in order (its process ended, even killed: the kernel
    closes its socket), rather than the connection being reset or timing out."""

    key: int
    reason: str
    lost: bool = False
    released: bool = False
    ended: bool = False


@dataclass(slots=True)
class Tick:
    """Time passed (about every second): the periodic rules (draining, factory trimming).

    ``factory_limits``: ``max_workers`` per factory name when the catalog gave new ones."""

    factory_limits: dict[str, int] | None = None


@dataclass(slots=True)
class SlowTaskCheck:
    """Time passed (about every 0.1 s): fast abort looks at running tasks."""


@dataclass(slots=True)
class TimeSpent:
    """The shell spent ``usec`` microseconds polling (``polling``) or in the application
    (``application``): only statistics."""

    kind: str
    usec: int


Event = (TaskSubmitted | TaskCancelled | TaskSent | TaskInputMissing | WorkerConnected
         | ResourcesReported | WorkerInfo | FeatureReported | WorkerResumed | ResultReceived
         | OutputBytesComing | OutputFailed | OutputsFetched | WorkerGone | Tick | SlowTaskCheck
         | TimeSpent)
