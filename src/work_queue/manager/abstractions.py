"""The manual's abstractions: ``q.map``, ``q.pair`` and ``q.tree_reduce`` as PythonTasks, and
``q.remote_map``, ``q.remote_pair`` and ``q.remote_tree_reduce`` as RemoteTasks that call a
function of a coprocess already running at the workers.

Each splits its input into chunks, runs one task per chunk and waits for all of them.  A chunk
whose task fails puts its exception (``PythonTaskNoResult``, or :class:`RemoteTaskError` for
the remote ones) in the results in place of each value it should have produced, as the manual
says; a reduction cannot go on without a value, so the remote one raises that error instead.

The tasks of one call share a tag of their own, and the call waits with ``wait_for_tag``: a
task the application submitted itself is left for its own ``wait`` (CCTools tags the chunks
``"0"``, ``"1"``..., which an application's tags can collide with).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

from ..constants import WORK_QUEUE_RESULT_SUCCESS
from .python_task import PythonTask
from .remote_task import RemoteTask, RemoteTaskError
from .task import Task

_calls = itertools.count(1)


def _map_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(x) for x in chunk]


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk size must be an integer of at least 1, not {size!r}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _remote_value(t: Task) -> Any:
    """The ``Result`` of a RemoteTask's answer, or the RemoteTaskError saying why there is none."""
    if t.result != WORK_QUEUE_RESULT_SUCCESS:
        return RemoteTaskError(f"remote task {t.id} ({t.command}) failed: {t.result_str}",
                               t.id, None)
    try:
        answer = json.loads(t.output)
        code, value = answer["StatusCode"], answer["Result"]
    except (ValueError, TypeError, KeyError):
        return RemoteTaskError(f"remote task {t.id} ({t.command}): the coprocess answered "
                               f"{t.output[:200]!r}, not a JSON Result and StatusCode", t.id, None)
    if code != 200:
        return RemoteTaskError(f"remote task {t.id} ({t.command}) failed in the coprocess "
                               f"(StatusCode {code}): {value}", t.id, code)
    return value


def _flatten(chunks: list[list[Any]], outputs: list[Any]) -> list[Any]:
    """One chunk's output per chunk -> one value per element.

    A list is that chunk's values; an exception stands for each of its values; anything else
    is one value (TaskVine's rule, for a remote function that returns a scalar)."""
    results: list[Any] = []
    for chunk, out in zip(chunks, outputs, strict=True):
        if isinstance(out, list):
            results.extend(out)
        elif isinstance(out, BaseException):
            results.extend([out] * len(chunk))
        else:
            results.append(out)
    return results


class AbstractionsMixin:
    """The Python abstractions of the manual, for :class:`WorkQueue`."""

    def _gather(self, tasks: list[Task]) -> None:
        """Submit ``tasks`` under one fresh tag and wait until all of them are back."""
        tag = f"wq-abstraction-{next(_calls)}"
        for t in tasks:
            t.specify_tag(tag)
            self.submit(t)  # type: ignore[attr-defined]
        pending = {t.id for t in tasks}
        while pending:
            t = self.wait_for_tag(tag, 5)  # type: ignore[attr-defined]
            if t is not None:
                pending.discard(t.id)

    def _run_chunks(self, fn: Callable[..., Any], chunks: list[list[Any]],
                    per_chunk: Callable[[Callable[..., Any], list[Any]], Any] | None,
                    env: str | None = None) -> list[Any]:
        """One PythonTask per chunk; returns each chunk's output in order."""
        tasks = []
        for chunk in chunks:
            t = PythonTask(per_chunk, fn, chunk) if per_chunk else PythonTask(fn, chunk)
            if env:
                t.specify_environment(env)
            tasks.append(t)
        self._gather(list(tasks))
        return [t.output for t in tasks]

    def _run_remote_chunks(self, fn: str, chunks: list[list[Any]], coprocess: str,
                           name: str) -> list[Any]:
        """One RemoteTask per chunk, calling ``fn(name=chunk)``; each chunk's Result in order."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be the name of fn's parameter that takes the chunk "
                             f"(an identifier), not {name!r}")
        tasks: list[Task] = [RemoteTask(fn, coprocess, **{name: chunk}) for chunk in chunks]
        self._gather(tasks)
        return [_remote_value(t) for t in tasks]

    def map(self, fn: Callable[[Any], Any], seq: Sequence[Any], chunksize: int = 1) -> list[Any]:
        """``[fn(x) for x in seq]``, computed by workers ``chunksize`` elements per task."""
        chunks = _chunks(list(seq), chunksize)
        return _flatten(chunks, self._run_chunks(fn, chunks, _map_chunk))

    def pair(self, fn: Callable[[tuple[Any, Any]], Any], seq1: Sequence[Any],
             seq2: Sequence[Any], chunksize: int = 1, env: str | None = None) -> list[Any]:
        """``fn((a, b))`` for every pair of the cartesian product of ``seq1`` and ``seq2``;
        with ``env`` (a packed environment) the tasks run in it."""
        chunks = _chunks(list(itertools.product(seq1, seq2)), chunksize)
        return _flatten(chunks, self._run_chunks(fn, chunks, _map_chunk, env))

    def tree_reduce(self, fn: Callable[[list[Any]], Any], seq: Sequence[Any],
                    chunksize: int = 2) -> Any:
        """Reduce ``seq`` with ``fn`` (which takes a list and must be associative) in rounds
        of tasks over ``chunksize`` elements, until one value is left."""
        values = _reduction_input(seq, chunksize)
        while len(values) > 1:
            values = self._run_chunks(fn, _chunks(values, chunksize), None)
        return values[0]

    # CCTools spells it both ways in its documentation
    treeReduce = tree_reduce

    def remote_map(self, fn: str, seq: Sequence[Any], coprocess: str, name: str,
                   chunksize: int = 1) -> list[Any]:
        """Map with the function ``fn`` of the coprocess ``coprocess`` (started at workers by
        ``work_queue_worker --coprocess``): ``fn`` is called once per chunk of ``chunksize``
        elements, given the chunk as its keyword argument ``name`` (a list, sent as JSON), and
        returns a list of one value per element.  Returns those lists joined."""
        chunks = _chunks(list(seq), chunksize)
        return _flatten(chunks, self._run_remote_chunks(fn, chunks, coprocess, name))

    def remote_pair(self, fn: str, seq1: Sequence[Any], seq2: Sequence[Any], coprocess: str,
                    name: str, chunksize: int = 1) -> list[Any]:
        """Like ``remote_map`` over every pair ``[a, b]`` of the cartesian product of ``seq1``
        and ``seq2`` (pairs travel as JSON lists)."""
        chunks = _chunks(list(itertools.product(seq1, seq2)), chunksize)
        return _flatten(chunks, self._run_remote_chunks(fn, chunks, coprocess, name))

    def remote_tree_reduce(self, fn: str, seq: Sequence[Any], coprocess: str, name: str,
                           chunksize: int = 2) -> Any:
        """Reduce ``seq`` with the coprocess function ``fn``, given up to ``chunksize`` values
        as its keyword argument ``name`` and returning one, in rounds until one value is left.
        Raises :class:`RemoteTaskError` if a call gives no value."""
        values = _reduction_input(seq, chunksize)
        while len(values) > 1:
            values = self._run_remote_chunks(fn, _chunks(values, chunksize), coprocess, name)
            for v in values:
                if isinstance(v, RemoteTaskError):
                    raise v
        return values[0]


def _reduction_input(seq: Sequence[Any], chunksize: int) -> list[Any]:
    if not isinstance(chunksize, int) or chunksize < 2:
        raise ValueError(f"a tree reduction needs a chunk size of at least 2, not {chunksize!r}")
    values = list(seq)
    if not values:
        raise ValueError("a tree reduction of an empty sequence has no value")
    return values
