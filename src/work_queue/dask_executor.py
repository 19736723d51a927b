"""``DaskWQ``: a WorkQueue whose ``get`` is a Dask scheduler, as CCTools' ``work_queue_dask``.

::

    m = DaskWQ(port=0)
    result = collection.compute(scheduler=m.get, resources={"cores": 1})
    with dask.config.set(scheduler=m.get):
        result = collection.compute()

CCTools 7.17.1's version walks the graph as tuples of Dask's old format and fails on what the
Dask releases pip installs today hand a scheduler (a graph expression of ``Task`` objects).
This one asks Dask itself for the tasks and their dependencies (:mod:`work_queue.dask_graph`)
and runs each group of them at a worker as a PythonTask (:mod:`work_queue.dask_remote`): the
values of the keys a group needs travel with it, its outputs come back to the manager, which
keeps them only until every group that needs them has been submitted.  Every group whose inputs
are known is submitted at once, so the workers are never idle waiting for the user's program.

Importing :mod:`work_queue` does not import this module, nor Dask: ``work_queue.DaskWQ`` loads it
on first use.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from . import dask_remote
from .constants import WORK_QUEUE_RESULT_SUCCESS
from .dask_graph import Group, flatten_keys, graph_tasks, pack_results, plan_groups
from .dask_remote import run_subgraph
from .manager.python_task import PythonTask
from .manager.queue import WorkQueue

# The remote function travels by value, so a worker needs Dask but not this package.
cloudpickle.register_pickle_by_value(dask_remote)


class DaskWQExecutionError(Exception):
    """A task of the graph failed in Work Queue (lost its retries, exhausted its resources...),
    as opposed to raising an exception, which ``get`` raises as it is."""


@dataclass
class DaskOptions:
    """The keyword arguments of :meth:`DaskWQ.get`, applied to every task of one graph."""

    environment: str | None = None
    extra_files: Mapping[str, str] | None = None
    env_vars: Mapping[str, str | Callable[[Any, Any], str]] | None = None
    low_memory_mode: bool = False
    resources: Mapping[str, float] | None = None
    resources_mode: int | None = None
    retries: int = 5
    verbose: bool = False
    ignored: dict[str, Any] = field(default_factory=dict)


class DaskWQ(WorkQueue):
    """A WorkQueue manager that computes Dask graphs: ``collection.compute(scheduler=m.get)``."""

    def get(self, dsk: Any, keys: Any, *, environment: str | None = None,
            extra_files: Mapping[str, str] | None = None,
            env_vars: Mapping[str, str | Callable[[Any, Any], str]] | None = None,
            low_memory_mode: bool = False, resources: Mapping[str, float] | None = None,
            resources_mode: int | None = None, retries: int = 5, verbose: bool = False,
            **ignored: Any) -> Any:
        """Compute ``keys`` (a key or nested lists of keys) of the graph ``dsk``.

        ``environment``: a packed environment (conda-pack tarball) the tasks run in.
        ``extra_files``: ``{local path: remote name}`` given to every task.
        ``env_vars``: ``{NAME: value}`` set for every task; a value may be a function of
        ``(manager, task)`` returning the string.
        ``low_memory_mode``: no fusion of linear chains, each Dask task is a Work Queue task of
        its own, so no worker process holds more than one task's inputs and result at a time.
        ``resources``: ``{"cores": .., "memory": .., "disk": ..}``, the maximum per task (set on
        each task's category, named after the Dask task).
        ``resources_mode``: a ``WORK_QUEUE_ALLOCATION_MODE_*`` for those categories; turns on
        monitoring, as in CCTools.
        ``retries``: how many times Work Queue may retry a task that fails (not one that raises).
        ``verbose``: print each task as it completes.
        An exception a task raises is raised here, as Dask's local schedulers do.
        """
        if retries is not None and retries < 1:
            raise ValueError("retries should be larger than 0")
        if environment is not None and not isinstance(environment, str):
            raise TypeError("environment should be the path of a packed environment")
        options = DaskOptions(environment, extra_files, env_vars, low_memory_mode, resources,
                              resources_mode, retries, verbose, dict(ignored))
        if ignored and verbose:
            print("options ignored:", ignored)
        return _GraphRun(self, dsk, keys, options).execute()

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        return self.get(dsk, keys, **kwargs)

    def _dask_category(self, name: str, options: DaskOptions) -> str:
        """Set up category ``name`` the first time a graph's task uses it."""
        known: set[str] = self.__dict__.setdefault("_dask_categories", set())
        if name not in known:
            if options.resources:
                self.specify_category_max_resources(name, dict(options.resources))
            if options.resources_mode is not None:
                self.specify_category_mode(name, options.resources_mode)
                if not self.__dict__.get("_dask_monitoring"):
                    self.enable_monitoring()
                    self._dask_monitoring = True
            known.add(name)
        return name


class _GraphRun:
    """One call of ``DaskWQ.get``: the groups of a graph, their values, their tasks."""

    def __init__(self, m: DaskWQ, dsk: Any, keys: Any, options: DaskOptions) -> None:
        self.m = m
        self.keys = keys
        self.options = options
        self.tasks = graph_tasks(dsk)
        self.targets = set(flatten_keys(keys))
        self.groups = plan_groups(self.tasks, flatten_keys(keys),
                                  fuse=not options.low_memory_mode)
        self.values: dict[Any, Any] = {}
        #: groups each group still waits for
        self.waiting = {gid: 0 for gid in self.groups}
        #: groups yet to be started that need each key
        self.consumers: dict[Any, int] = {}
        for group in self.groups.values():
            for d in group.dependents:
                self.waiting[d] += 1
            for key in group.inputs:
                self.consumers[key] = self.consumers.get(key, 0) + 1
        self.tag = f"dask-{uuid.uuid4().hex}"
        self.running: dict[int, Group] = {}
        self.done = 0

    def execute(self) -> Any:
        try:
            self._start([g for gid, g in self.groups.items() if not self.waiting[gid]])
            while self.running:
                t = self.m.wait_for_tag(self.tag, 5)
                if t is None:
                    continue
                group = self.running.pop(t.id)
                assert isinstance(t, PythonTask)
                self._start(self._store(group, self._result_of(t, group), t.hostname))
            return pack_results(self.keys, self.values)
        finally:
            self._cancel()

    def _start(self, ready: list[Group]) -> None:
        """Run the ready groups: trivial ones here at once, the others as submitted tasks."""
        while ready:
            group = ready.pop()
            inputs = self._take_inputs(group)
            if group.local:
                outputs = run_subgraph({k: self.tasks[k] for k in group.keys}, inputs,
                                       group.outputs)
                ready.extend(self._store(group, outputs, "manager"))
            else:
                self._submit(group, inputs)

    def _take_inputs(self, group: Group) -> dict[Any, Any]:
        """The values ``group`` needs; those no other group will need are dropped here."""
        inputs = {k: self.values[k] for k in group.inputs}
        for k in group.inputs:
            self.consumers[k] -= 1
            if not self.consumers[k] and k not in self.targets:
                del self.values[k]
        return inputs

    def _submit(self, group: Group, inputs: dict[Any, Any]) -> None:
        options = self.options
        t = PythonTask(run_subgraph, {k: self.tasks[k] for k in group.keys}, inputs,
                       list(group.outputs))
        t.specify_tag(self.tag)
        t.specify_category(self.m._dask_category(group.name, options))
        if options.retries:
            t.specify_max_retries(options.retries)
        if options.environment:
            t.specify_environment(options.environment)
        for local, remote in (options.extra_files or {}).items():
            t.specify_input_file(local, remote)
        for name, value in (options.env_vars or {}).items():
            t.specify_environment_variable(name, value(self.m, t) if callable(value) else value)
        self.m.submit(t)
        self.running[t.id] = group

    def _result_of(self, t: PythonTask, group: Group) -> dict[Any, Any]:
        """The values ``t`` computed; what it raised is raised, a Work Queue failure too."""
        if t.result != WORK_QUEUE_RESULT_SUCCESS:
            raise DaskWQExecutionError(
                f"task {t.id} for {group.name} {group.keys[-1]!r} failed: {t.result_str} "
                f"(exit code {t.return_status}): {t.std_output.strip()[-2000:]}")
        value = t.output
        if isinstance(value, BaseException):
            raise value
        if not isinstance(value, dict):
            raise DaskWQExecutionError(f"task {t.id} for {group.name} returned {value!r}")
        return value

    def _store(self, group: Group, outputs: dict[Any, Any], where: str | None) -> list[Group]:
        """Keep ``group``'s outputs; return the groups that now have all their inputs."""
        self.values.update(outputs)
        self.done += 1
        if self.options.verbose:
            print(f"dask: {group.name} ({len(group.keys)} tasks) done on {where}, "
                  f"{self.done}/{len(self.groups)}")
        ready = []
        for d in group.dependents:
            self.waiting[d] -= 1
            if not self.waiting[d]:
                ready.append(self.groups[d])
        return ready

    def _cancel(self) -> None:
        """Take back the graph's tasks still queued or running (after an error)."""
        if self.running:
            while self.m.cancel_by_tasktag(self.tag) is not None:
                pass
            self.running.clear()
