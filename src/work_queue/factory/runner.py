"""The factory's main loop: ask the managers what they need, submit or cancel workers.

Every cycle (30 s, or sooner when the configuration file changes) it

1. re-reads the ``-C`` file if it changed (a bad file keeps the last good settings);
2. reads the managers' records — ``queue_status`` from ``HOST PORT``, or the catalog's records
   of the managers whose project matches ``-M`` (and, with ``-F``, the foremen);
3. computes the workers needed (:mod:`.scaling`), clamps it to ``[min, max]`` and submits up to
   ``workers-per-cycle`` new ones;
4. cancels jobs it no longer needs that have not started yet; workers that did start leave by
   themselves after ``--timeout`` idle seconds (the ``-t`` given to each worker) and are not
   replaced while the need stays lower;
5. notices jobs that ended.

On exit (SIGINT, SIGTERM, SIGQUIT, ``--factory-timeout``, ``--parent-death``) it cancels every
job it submitted; local workers get SIGQUIT, then SIGKILL after ``kill_timeout`` seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..errors import WorkQueueError
from .batch import BatchError, BatchQueue, JobSpec, LocalQueue
from .config import ConfigError, ConfigWatcher, FactoryConfig
from .scaling import Plan, plan, workers_connected, workers_needed

logger = logging.getLogger("work_queue.factory")

FACTORY_PERIOD = 30.0


@dataclass
class ManagerSource:
    """Where the managers' records come from: ``HOST PORT`` or the catalog."""

    host: str | None = None
    port: int | None = None
    catalog: str | None = None
    ssl: bool = False
    password: bytes | None = None
    timeout: float = 30.0

    @property
    def using_catalog(self) -> bool:
        return self.host is None


@dataclass
class WorkerOptions:
    """What goes into each worker's command line besides the manager and the size."""

    executable: str = "work_queue_worker"   # name in the scratch dir, run as ./<name>
    password_file: bool = False              # a copy named "pwfile" is in the scratch dir
    ssl: bool = False
    features: list[str] = field(default_factory=list)
    wrapper: str | None = None
    extra_inputs: list[str] = field(default_factory=list)


class Factory:
    """One factory: a batch queue, the settings, and the jobs it submitted."""

    def __init__(self, queue: BatchQueue, config: FactoryConfig, source: ManagerSource,
                 worker: WorkerOptions | None = None, config_watcher: ConfigWatcher | None = None,
                 period: float = FACTORY_PERIOD, kill_timeout: float = 5.0,
                 parent_pid: int | None = None, out: TextIO | None = None,
                 query: Callable[[ManagerSource, FactoryConfig], list[dict[str, Any]]]
                 | None = None) -> None:
        self.queue = queue
        self.config = config
        self.source = source
        self.worker = worker or WorkerOptions()
        self.watcher = config_watcher
        self.period = period
        self.kill_timeout = kill_timeout
        self.parent_pid = parent_pid
        self.out = out or sys.stdout
        self._query = query or query_managers
        self.abort = False
        self.last_plan: Plan | None = None
        self.managers: list[dict[str, Any]] = []
        self._no_manager_since = time.time()

    # -- configuration -----------------------------------------------------------------------
    def reload_config(self) -> bool:
        """Apply the configuration file if it changed; False if it was bad (kept old)."""
        if self.watcher is None:
            return True
        try:
            new = self.watcher.load(self.config, self.source.host is not None)
        except ConfigError as e:
            self._say(f"Error re-reading '{self.watcher.path}': {e}. Using previous values.",
                      error=True)
            return False
        if new is not None:
            self.config = new
            self._print_config()
        return True

    def _print_config(self) -> None:
        c = self.config
        lines = [f"Configuration file '{self.watcher.path if self.watcher else ''}' "
                 "has been loaded.",
                 f"manager-name: {c.manager_name}"]
        if c.foremen_name:
            lines.append(f"foremen-name: {c.foremen_name}")
        lines += [f"max-workers: {c.max_workers}", f"min-workers: {c.min_workers}",
                  f"workers-per-cycle: {c.workers_per_cycle}",
                  f"tasks-per-worker: {c.tasks_per_worker}", f"timeout: {c.timeout} s",
                  f"cores: {c.cores if c.cores > 0 else 1}"]
        for name in ("memory", "disk"):
            if getattr(c, name) > -1:
                lines.append(f"{name}: {getattr(c, name)} MB")
        if c.gpus > -1:
            lines.append(f"gpus: {c.gpus}")
        if c.extra_options:
            lines.append(f"worker-extra-options: {c.extra_options}")
        self._say("\n".join(lines))

    # -- the worker command ------------------------------------------------------------------
    def resource_args(self) -> str:
        c = self.config
        if self.queue.type == "condor":
            out = (" --cores=$$([TARGET.Cpus]) --memory=$$([TARGET.Memory])"
                   " --disk=$$([TARGET.Disk/1024])")
            if c.gpus > 0:
                out += " --gpus=$$([TARGET.GPUs])"
            return out
        out = ""
        for name in ("cores", "memory", "disk", "gpus"):
            if getattr(c, name) > -1:
                out += f" --{name}={getattr(c, name)}"
        return out

    def worker_command(self) -> str:
        """The command line of one worker, as CCTools' factory writes it."""
        c, w, s = self.config, self.worker, self.source
        features = "".join(f' --feature "{f}"' for f in w.features)
        pw = "-P pwfile" if w.password_file else ""
        ssl = "--ssl" if (w.ssl or s.ssl) else ""
        extra = c.extra_options or ""
        catalog = s.catalog or ""
        if s.using_catalog:
            regex = c.foremen_name or c.manager_name
            from_factory = f'--from-factory "{c.factory_name}"' if c.factory_name else ""
            cmd = (f"./{w.executable} -M {regex} -t {c.timeout} -C '{catalog}' -d all "
                   f"-o worker.log {from_factory} {pw} {self.resource_args()} {ssl} "
                   f"{features} {extra}")
        else:
            cmd = (f"./{w.executable} {s.host} {s.port} -t {c.timeout} -C '{catalog}' -d all "
                   f"-o worker.log {pw} {self.resource_args()} {ssl} {features} {extra}")
        if w.wrapper:
            cmd = f"{w.wrapper} {cmd}"
        return cmd

    def job_spec(self) -> JobSpec:
        c = self.config
        inputs = [self.worker.executable]
        if self.worker.password_file:
            inputs.append("pwfile")
        inputs += [os.path.basename(p) for p in self.worker.extra_inputs]
        blocked: list[str] = []
        for rec in self.managers:
            b = rec.get("workers_blocked")
            blocked += [b] if isinstance(b, str) else [h for h in b or [] if isinstance(h, str)]
        return JobSpec(self.worker_command(), inputs, c.cores, c.memory, c.disk, c.gpus, blocked)

    # -- one cycle ---------------------------------------------------------------------------
    def read_managers(self) -> list[dict[str, Any]]:
        try:
            return self._query(self.source, self.config)
        except (OSError, ValueError, WorkQueueError) as e:
            where = (f"{self.source.host} port {self.source.port}" if not self.source.using_catalog
                     else f"the catalog for '{self.config.manager_name}'")
            self._say(f"couldn't read the status of {where}: {e}", error=True)
            return []

    def cycle(self) -> Plan:
        """One round: read, decide, submit/cancel, collect ended jobs."""
        if self.reload_config():
            self.queue.autosize = bool(self.config.autosize)
            self.queue.condor_requirements = self.config.condor_requirements
        c = self.config
        self.managers = self.read_managers()
        if self.managers:
            self._no_manager_since = time.time()
        elif c.factory_timeout > 0 and time.time() - self._no_manager_since > c.factory_timeout:
            self._say("There have been no managers for longer then the factory timeout, "
                      "exiting", error=True)
            self.abort = True
        connected = workers_connected(self.managers)
        foremen: list[dict[str, Any]] = []
        if c.foremen_name and self.source.using_catalog:
            needed = workers_needed(self.managers, c.size, c.tasks_per_worker, bool(c.capacity),
                                    only_not_running=True)
            foremen = self._query(self.source, _foremen_config(c))
            needed += workers_needed(foremen, c.size, c.tasks_per_worker, bool(c.capacity))
            connected += max(workers_connected(foremen) - len(foremen), 0)
        else:
            needed = workers_needed(self.managers, c.size, c.tasks_per_worker,
                                    bool(c.capacity))
        self.collect()
        p = plan(needed, len(self.queue.jobs), connected, c.min_workers, c.max_workers,
                 c.workers_per_cycle)
        self.last_plan = p
        self._print_stats(p, foremen)
        self._advertise(p, foremen)
        if self.abort:
            return p
        if p.new > 0:
            self.submit(p.new)
        self.trim(len(self.queue.jobs) - p.needed)
        return p

    def submit(self, count: int) -> int:
        """Submit ``count`` workers; stops at the first refusal (logged). How many went."""
        spec = self.job_spec()
        done = 0
        for _ in range(count):
            try:
                self.queue.submit(spec)
            except BatchError as e:
                self._say(f"could not submit a worker: {e}", error=True)
                break
            done += 1
        if done:
            logger.info("submitted %d workers", done)
        return done

    def trim(self, excess: int) -> int:
        """Cancel up to ``excess`` jobs that have not started yet, newest first."""
        removed = 0
        if excess <= 0:
            return 0
        for job in sorted(self.queue.jobs.values(), key=lambda j: j.submitted, reverse=True):
            if removed >= excess:
                break
            if not job.started and not job.removed:
                logger.info("cancelling job %s, which is no longer needed", job.id)
                self.queue.remove(job.id)
                removed += 1
        if removed:
            self.collect()
        return removed

    def collect(self) -> int:
        ended = self.queue.poll()
        for job in ended:
            logger.debug("worker job %s exited", job.id)
        return len(ended)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Cycle until told to stop, then cancel every worker submitted."""
        try:
            while not self.abort:
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    self._say("parent process exited, shutting down")
                    break
                self.cycle()
                self._wait()
        finally:
            self.shutdown()

    def _wait(self) -> None:
        deadline = time.monotonic() + self.period
        while not self.abort and time.monotonic() < deadline:
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            self.collect()
            if self.watcher is not None and self.watcher.changed():
                return
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                return

    def shutdown(self) -> None:
        """Cancel every job this factory submitted (and, for local ones, wait for them)."""
        jobs = list(self.queue.jobs)
        self._say(f"removing {len(jobs)} workers...")
        for job_id in jobs:
            self.queue.remove(job_id)
        if isinstance(self.queue, LocalQueue):
            deadline = time.monotonic() + self.kill_timeout
            while self.queue.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.queue.running():
                self.queue.kill_all()
                deadline = time.monotonic() + 5   # zombies may linger where nobody reaps them
                while self.queue.running() and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.collect()
        self.queue.close()
        self._say("all workers removed.")

    # -- output ------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        if error:
            logger.warning(text)
            print(f"work_queue_factory: {text}", file=sys.stderr, flush=True)
        else:
            logger.info(text)
            print(text, file=self.out, flush=True)

    def _print_stats(self, p: Plan, foremen: list[dict[str, Any]]) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        lines = [f"{stamp}: |submitted: {p.submitted} |needed: {p.needed} "
                 f"|waiting connection: {p.to_connect} |requested: {max(p.new, 0)} ",
                 f"{'PROJECT':<18} {'HOST':<21} {'PORT':>5} {'WAITING':>7} {'RUNNING':>7} "
                 f"{'COMPLETE':>8} {'WORKERS':>7}"]
        for m in [*self.managers, *foremen]:
            rec = self._manager_summary(m)
            lines.append(f"{str(rec['project'])[:18]:<18} {str(rec['name'])[:21]:<21} "
                         f"{rec['port']:>5} {rec['tasks_waiting']:>7} {rec['tasks_running']:>7} "
                         f"{rec['tasks_complete']:>8} {rec['workers']:>7}")
        print("\n".join(lines) + "\n", file=self.out, flush=True)

    def _manager_summary(self, m: dict[str, Any]) -> dict[str, Any]:
        out = {"project": m.get("project") or self.source.host,
               "name": m.get("name") if self.source.using_catalog else self.source.host}
        for key in ("port", "tasks_waiting", "tasks_running", "tasks_complete", "workers"):
            try:
                out[key] = int(m.get(key) or 0)
            except (TypeError, ValueError):
                out[key] = 0
        return out

    def status_record(self, p: Plan, foremen: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``wq_factory`` record CCTools factories send to the catalog."""
        import getpass

        from ..version import __version__
        c = self.config
        rec: dict[str, Any] = {"type": "wq_factory", "port": _pretend_port()}
        if self.source.using_catalog:
            rec["project_regex"] = c.manager_name
            rec["submission_regex"] = c.foremen_name or c.manager_name
            rec["max_workers"] = c.max_workers
            if c.factory_name:
                rec["factory_name"] = c.factory_name
        rec.update(workers_submitted=p.submitted, workers_needed=max(p.needed, 0),
                   workers_requested=max(p.new, 0), workers_to_connect=max(p.to_connect, 0),
                   managers=[self._manager_summary(m) for m in self.managers],
                   foremen=[self._manager_summary(f) for f in foremen],
                   owner=getpass.getuser(), version=__version__)
        return rec

    def _advertise(self, p: Plan, foremen: list[dict[str, Any]]) -> None:
        if not self.source.using_catalog or not self.source.catalog:
            return
        try:
            from ..catalog import client
        except ImportError:
            return
        send = getattr(client, "send_update", None)
        if send is None:
            return
        try:
            send(self.source.catalog, self.status_record(p, foremen))
        except (OSError, ValueError, TypeError) as e:
            logger.debug("could not report to the catalog: %s", e)


_PRETEND_PORT: list[int] = []


def _pretend_port() -> int:
    """A negative number naming this factory in catalog updates (it has no port)."""
    if not _PRETEND_PORT:
        import random
        _PRETEND_PORT.append(-random.randrange(1, 65536))
    return _PRETEND_PORT[0]


def _foremen_config(c: FactoryConfig) -> FactoryConfig:
    f = c.copy()
    f.manager_name = c.foremen_name
    return f


def query_managers(source: ManagerSource, config: FactoryConfig) -> list[dict[str, Any]]:
    """The manager records to serve: ``queue_status`` of ``HOST PORT``, or the catalog's
    records of the managers whose project matches ``config.manager_name``."""
    from ..catalog import client

    if not source.using_catalog:
        records = client.query_manager(source.host, source.port, request="queue",
                                       timeout=source.timeout, ssl=source.ssl,
                                       password=source.password)
        return [r for r in records if isinstance(r, dict)][:1]
    catalogs = [source.catalog] if source.catalog else None
    return client.find_managers(config.manager_name or "", catalogs=catalogs)


def default_catalog() -> str:
    """The catalog servers workers are told about (``-C``), as ``host:port[,host:port]``."""
    from ..catalog.client import default_catalogs, format_catalogs

    return format_catalogs(default_catalogs())
