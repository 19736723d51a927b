"""The foreman (``work_queue_worker --foreman``): a worker to its manager, a manager to its
own workers.

Theory of operation
-------------------
A cluster's workers connect to one foreman near them; the foreman connects to the manager
across the wide-area link as a single worker whose resources are the sum of its workers'.
Each file the manager sends crosses that link once, into the foreman's cache, and the
foreman hands it on to as many of its workers as need it.

The foreman is a thin shell around two things this package already has:

* upstream, the worker protocol (``foreman_uplink.py``: the handshake, ``put``/``dir`` into a
  cache, ``get`` from it, task blocks, ``kill``, ``send_results``), with the readers and
  writers of ``protocol/`` and the cache and transfers of the worker;
* downstream, a :class:`~work_queue.manager.queue.WorkQueue` (``self.queue``), created once
  when the foreman starts and kept across connections to managers, as CCTools does.

Each task from the manager becomes a task of the downstream queue whose inputs are the
foreman's cached copies (declared as files at their cache paths, so a CACHE-flagged input is
sent to each downstream worker once) and whose outputs land in the foreman's cache under the
names the manager will ``get``.  That is where CCTools 7.17.1's foreman goes wrong: it keeps
inputs in its cache but declares them at paths relative to its working directory, so tasks
with files fail there.

The resources reported upward are what CCTools' ``aggregate_workers_resources`` gives: the
sums of the connected workers' workers, cores, memory and gpus, with the largest single
worker's value as ``largest`` (so the manager sizes tasks to fit one worker), and for disk
the foreman's own disk as the total.  With no workers, everything but disk is 0 (and a
manager gives it no task).  The coprocess resources of its workers are summed the same way,
so RemoteTasks pass through; its workers' features go up as its own, except our extensions,
which are agreements between the foreman's queue and its workers.

One loop serves both sides: it polls the manager's connection and the descriptor of the
queue's epoll set together, so either side's bytes wake it; the queue's own loop then runs one
pass without blocking (``queue.wait(0)``).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..manager.queue import WorkQueue
from ..protocol import extensions
from .foreman_uplink import EXITED, IDLED_OUT, LOST, Uplink
from .worker import Worker, WorkerConfig

if TYPE_CHECKING:
    from ..core.resources import WorkerResources
    from ..manager.task import Task

logger = logging.getLogger(__name__)

_EXTENSIONS = frozenset(extensions.WORKER_EXTENSIONS)

#: Longest wait of the foreman's loop (seconds): timers of the downstream queue (keepalives,
#: fast abort, the statistics log) run at least this often.
LOOP_TIMEOUT = 1.0


@dataclass
class ForemanConfig:
    """The foreman's own flags."""

    #: --foreman-port: a port, or a (low, high) range; 0 = any free port (CCTools' default)
    port: int | tuple[int, int] = 0
    #: -Z: write the port the foreman listens on to this file
    port_file: str | None = None
    #: -f: advertise the foreman's queue to the catalog under this name
    name: str | None = None
    #: -F: fast abort multiplier of the foreman's queue (-1: off)
    fast_abort: float = -1.0
    #: --specify-log: the statistics log of the foreman's queue
    stats_log: str | None = None
    #: -C: the catalog server(s) the named foreman advertises to (default: CATALOG_HOST)
    catalog: str | None = None


@dataclass(frozen=True)
class Aggregate:
    """What the foreman reports upward as its resources (see the module docstring)."""

    workers: int = 0
    #: (total, largest) of cores, memory, disk and gpus over its workers
    cores: tuple[int, int] = (0, 0)
    memory: tuple[int, int] = (0, 0)
    disk: tuple[int, int] = (0, 0)
    gpus: tuple[int, int] = (0, 0)
    features: frozenset[str] = frozenset()
    #: the same for the coprocess (RemoteTask) resources of its workers that run one, None
    #: when none does
    coprocess: tuple[tuple[int, int], ...] | None = None


def _sums(records: list[WorkerResources]) -> list[tuple[int, int]]:
    """(total, largest) of cores, memory, disk and gpus (CCTools' work_queue_resources_add)."""
    return [(sum(getattr(r, name) for r in records),
             max((r.largest_of(name) for r in records), default=0))
            for name in ("cores", "memory", "disk", "gpus")]


class Foreman(Worker):
    """A worker process whose tasks run on the workers of its own queue."""

    def __init__(self, config: WorkerConfig, foreman: ForemanConfig) -> None:
        super().__init__(config)
        self.foreman_config = foreman
        self.queue = WorkQueue(port=foreman.port, name=foreman.name,
                               stats_log=foreman.stats_log)
        if config.password is not None:
            # the worker's password file, as bytes (the queue takes them as they are)
            self.queue.specify_password(config.password)  # type: ignore[arg-type]
        if foreman.fast_abort > 0:
            self.queue.activate_fast_abort(foreman.fast_abort)
        if foreman.name and foreman.catalog:
            host, _, port = foreman.catalog.split(",")[0].partition(":")
            self.queue.specify_catalog_server(host, int(port or 9097))
        print(f"work_queue_worker-foreman: listening on port {self.queue.port}", flush=True)
        if foreman.port_file:
            with open(foreman.port_file, "w") as f:
                f.write(f"{self.queue.port}\n")
        #: an empty directory: the local name of the empty directories tasks ask for
        self.empty_dir = os.path.join(self.workspace, "empty")
        os.makedirs(self.empty_dir, exist_ok=True)

    def describe(self) -> str:
        return (f"foreman on port {self.queue.port} (its workers' resources, "
                f"{self.disk} MB disk)")

    # -- the downstream queue -------------------------------------------------------------------

    def aggregate(self) -> Aggregate:
        """The resources of the connected, ready workers of the foreman's queue."""
        # Read-only: the queue's record of each worker (what it reported, and features).
        ready = [w for w in self.queue._state.workers.values() if w.ready]
        features: set[str] = set().union(*(w.features for w in ready))
        # Our extensions are announced as features, but they are agreements between the
        # foreman's queue and its workers, not something the foreman does for its manager.
        features -= _EXTENSIONS
        cores, memory, disk, gpus = _sums([w.resources for w in ready])
        cop = [w.cop.resources for w in ready if w.cop is not None]
        return Aggregate(sum(w.resources.workers for w in ready), cores, memory, disk, gpus,
                         frozenset(features), tuple(_sums(cop)) if cop else None)

    def finished_tasks(self) -> list[Task]:
        """The tasks the foreman's queue has returned since the last call (it runs the
        queue's loop once, without blocking)."""
        out = []
        while (task := self.queue.wait(0)) is not None:
            out.append(task)
        return out

    def poller(self, upstream_fd: int | None) -> tuple[select.poll, float]:
        """A poll object watching the manager's connection (if any) and the foreman's queue,
        and the longest the loop should wait on it."""
        p = select.poll()
        if upstream_fd is not None:
            p.register(upstream_fd, select.POLLIN)
        fd = _queue_fd(self.queue)
        if fd is None:  # no epoll here: the queue's sockets are looked at every 50 ms
            return p, 0.05
        p.register(fd, select.POLLIN)
        return p, LOOP_TIMEOUT

    # -- the process ----------------------------------------------------------------------------

    def run(self) -> int:
        """Serve managers (as ``Worker.run``, one :class:`Uplink` per connection); the
        foreman's queue stays up between connections."""
        cfg = self.config
        print(f"work_queue_worker: creating workspace {self.workspace}", file=sys.stderr)
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
                    self.finished_tasks()  # the foreman's workers are kept talking to
                    time.sleep(backoff)
                    backoff = min(cfg.max_backoff, backoff * 2)
                    continue
                backoff = cfg.min_backoff
                outcome = Uplink(self, sock).run()
                last_success = time.time()
                logger.info("session ended: %s", outcome)
                if outcome in (EXITED, IDLED_OUT) or cfg.single_shot:
                    return 0
                if outcome == LOST:
                    time.sleep(min(5.0, cfg.max_backoff))
        except KeyboardInterrupt:
            return 0
        finally:
            self.queue.close()
            if self.coprocesses is not None:
                self.coprocesses.stop()
            shutil.rmtree(self.workspace, ignore_errors=True)


def _queue_fd(queue: WorkQueue) -> int | None:
    """The descriptor of the queue's epoll set: readable whenever one of the queue's sockets
    is, so one poll waits on the manager and on the foreman's workers together."""
    epoll = getattr(queue._watcher, "_epoll", None)
    return epoll.fileno() if epoll is not None else None
