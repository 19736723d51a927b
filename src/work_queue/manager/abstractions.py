"""``q.map``, ``q.pair`` and ``q.tree_reduce``: whole computations as PythonTasks.

Each splits its input into chunks, runs one PythonTask per chunk and waits for all of them.
A chunk whose task fails puts its exception (or ``PythonTaskNoResult``) in the results in
place of each value it should have produced, as the manual says.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from .python_task import PythonTask


def _map_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(x) for x in chunk]


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


class AbstractionsMixin:
    """The Python abstractions of the manual, for :class:`WorkQueue`."""

    def _run_chunks(self, fn: Callable[..., Any], chunks: list[list[Any]],
                    per_chunk: Callable[[Callable[..., Any], list[Any]], Any] | None,
                    env: str | None = None) -> list[Any]:
        """One PythonTask per chunk; returns each chunk's output in order."""
        tasks = []
        for chunk in chunks:
            t = PythonTask(per_chunk, fn, chunk) if per_chunk else PythonTask(fn, chunk)
            self.submit(t)  # type: ignore[attr-defined]
            tasks.append(t)
        pending = {t.id for t in tasks}
        while pending:
            t = self.wait(5)  # type: ignore[attr-defined]
            if t is not None:
                pending.discard(t.id)
        return [t.output for t in tasks]

    def map(self, fn: Callable[[Any], Any], seq: Sequence[Any], chunksize: int = 1) -> list[Any]:
        """``[fn(x) for x in seq]``, computed by workers ``chunksize`` elements per task."""
        chunks = _chunks(list(seq), chunksize)
        results: list[Any] = []
        for chunk, out in zip(chunks, self._run_chunks(fn, chunks, _map_chunk), strict=True):
            results.extend(out if isinstance(out, list) else [out] * len(chunk))
        return results

    def pair(self, fn: Callable[[tuple[Any, Any]], Any], seq1: Sequence[Any],
             seq2: Sequence[Any], chunksize: int = 1, env: str | None = None) -> list[Any]:
        """``fn((a, b))`` for every pair of the cartesian product of ``seq1`` and ``seq2``."""
        return self.map(fn, list(itertools.product(seq1, seq2)), chunksize)

    def tree_reduce(self, fn: Callable[[list[Any]], Any], seq: Sequence[Any],
                    chunksize: int = 2) -> Any:
        """Reduce ``seq`` with ``fn`` (which takes a list and must be associative) in rounds
        of tasks over ``chunksize`` elements, until one value is left."""
        if chunksize < 2:
            raise ValueError("tree_reduce needs a chunk size of at least 2")
        values = list(seq)
        if not values:
            raise ValueError("tree_reduce of an empty sequence")
        while len(values) > 1:
            values = self._run_chunks(fn, _chunks(values, chunksize), None)
        return values[0]

    # CCTools spells it both ways in its documentation
    treeReduce = tree_reduce
