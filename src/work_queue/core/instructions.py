"""What the manager core asks its shell to do: the answers of :meth:`ManagerState.handle`.

Each record names a worker by its key (the shell's connection of the same key carries the
instruction out) and holds everything the shell needs, so the shell makes no decision of its
own.  ``Transition`` records are the task lifecycle as it happens; the shell writes the
transactions log from them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .resources import Resources
from .scheduling import WorkerRecord


@dataclass(slots=True)
class SendTask:
    """Send ``task`` to ``worker`` with allocation ``box`` (then report ``TaskSent``)."""

    task: Any
    worker: WorkerRecord
    box: Resources


@dataclass(slots=True)
class SendKill:
    """Tell worker ``worker_key`` to stop ``task`` and unlink its files that are not cached.

    ``outputs_too``: unlink its outputs as well; ``later``: the task has ended, so the lines
    may wait for the worker's next send."""

    task: Any
    worker_key: int
    outputs_too: bool = True
    later: bool = False
    #: False: only the unlinks (the task never started there).
    kill: bool = True


@dataclass(slots=True)
class FetchOutputs:
    """Ask worker ``worker_key`` for these outputs of ``task`` (one ``get`` each); report
    ``OutputsFetched`` when the last reply ended (at once when ``files`` is empty)."""

    task: Any
    worker_key: int
    files: list[Any]


@dataclass(slots=True)
class DropWorker:
    """Close the connection of worker ``worker_key``; with ``goodbye`` send ``exit`` first.

    The shell then reports ``WorkerGone`` with the same ``reason`` and ``lost``."""

    worker_key: int
    reason: str
    why: str
    goodbye: bool = False
    lost: bool = False


@dataclass(slots=True)
class BlockHost:
    """``host`` gets no tasks until ``until`` (seconds since the epoch); already recorded by
    the core, so the shell only reports it."""

    host: str
    until: float
    why: str


@dataclass(slots=True)
class Note:
    """A line for the debug log: why the core decided something."""

    text: str


@dataclass(slots=True)
class CategoryChanged:
    """A category's first allocation changed: the transactions log writes its CATEGORY lines."""

    category: Any


@dataclass(slots=True)
class Transition:
    """``task`` went from state ``old`` to ``new`` on ``cause`` at ``now``.

    Kept (bounded) per task, so :meth:`ManagerState.story` can tell why a task is where it
    is; the shell writes the transactions log from these records."""

    task: Any
    old: int
    new: int
    cause: str
    now: float


@dataclass(slots=True)
class OfferResume:
    """Confirm ``wq-py-resume`` to worker ``worker_key`` and hand it ``token``: its tasks
    are kept ``grace`` seconds after its connection drops."""

    worker_key: int
    token: str
    grace: int


@dataclass(slots=True)
class AcceptResume:
    """The connection ``conn_key`` resumes the session of ``worker``: from now on it is that
    worker's connection (under ``worker.key``); tell it ``wq-py-resumed <kept>``.  A
    connection the worker still has (its drop not seen yet) is closed without a word."""

    conn_key: int
    worker: WorkerRecord
    kept: int


@dataclass(slots=True)
class RefuseResume:
    """Tell connection ``conn_key`` ``wq-py-resume-refused <reason>``; it stays open for
    the ordinary handshake."""

    conn_key: int
    reason: str


@dataclass(slots=True)
class KillHeld:
    """Send ``kill <id>`` to worker ``worker_key`` for each of ``task_ids``: tasks it holds
    that the manager no longer has on it (requeued, cancelled, or never given to it)."""

    worker_key: int
    task_ids: list[int]


Instruction = (SendTask | SendKill | FetchOutputs | DropWorker | BlockHost | Note
               | CategoryChanged | Transition | OfferResume | AcceptResume | RefuseResume
               | KillHeld)
