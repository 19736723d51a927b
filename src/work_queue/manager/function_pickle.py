"""Pickle a PythonTask's function so that a remote traceback names the user's file and line.

cloudpickle pickles a function defined in ``__main__``, a notebook cell or a test module by
value, code object and all.  Since 3.1.3 it renames every such code object's file to
``<dynamic-code>``, and even before, the worker has no copy of the user's file, so a remote
exception showed neither the file nor the source line.  Two things fix that, whatever
cloudpickle version is installed:

* code objects are pickled with :mod:`marshal` (``marshal.loads`` is a builtin, so any pickle
  loader rebuilds them), which keeps ``co_filename`` and the line numbers as they are;
* the source lines those code objects span are appended to the pickle as a second, plain
  pickle ``{filename: {line number: text}}``.  Loaders that read one object ignore it; our
  runner (:mod:`work_queue.pytask_runner`) reads it and puts the lines in :mod:`linecache`,
  where :mod:`traceback` looks for them.

Both ends must run the same Python version (marshal's format, like the bytecode cloudpickle
sends, is version specific); the runner checks that before loading anything.
"""

from __future__ import annotations

import io
import linecache
import marshal
import pickle
import types
from typing import Any

import cloudpickle

#: The pickle protocol of both parts (cloudpickle's own default).
PROTOCOL = cloudpickle.DEFAULT_PROTOCOL


class _SourceKeepingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with code objects marshalled and the lines they span collected."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.sources: dict[str, dict[int, str]] = {}

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType:
            _collect_lines(obj, self.sources)
            return marshal.loads, (marshal.dumps(obj),)
        return super().reducer_override(obj)


def _collect_lines(code: types.CodeType, sources: dict[str, dict[int, str]]) -> None:
    """Add the source lines ``code`` (and the code nested in it) spans to ``sources``."""
    lines = linecache.getlines(code.co_filename)
    if not lines:
        return
    numbers = [line for _, _, line in code.co_lines() if line]
    last = max(numbers, default=code.co_firstlineno)
    wanted = sources.setdefault(code.co_filename, {})
    for number in range(code.co_firstlineno, min(last, len(lines)) + 1):
        wanted[number] = lines[number - 1]
    for const in code.co_consts:
        if type(const) is types.CodeType:
            _collect_lines(const, sources)


def dumps_function(func: Any) -> bytes:
    """The pickle of ``func``, followed by the pickle of the source lines its code spans."""
    buffer = io.BytesIO()
    pickler = _SourceKeepingPickler(buffer)
    pickler.dump(func)
    if pickler.sources:
        pickle.dump(pickler.sources, buffer, protocol=PROTOCOL)
    return buffer.getvalue()
